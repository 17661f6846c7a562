// Package transform turns FHIR Bulk Data NDJSON into Arrow record batches,
// one table per SQL-on-FHIR v2 ViewDefinition. It reads only the input
// stream it is given; writing the batches is the Sink's business.
package transform

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fhirlake/fhirlake/internal/suggest"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// ErrInvalidView is wrapped by every error CompileView returns.
var ErrInvalidView = errors.New("invalid view definition")

// Tags of ViewDefinition columns that tell the warehouse and the lake what
// a column means, so that a view (built in or the user's) declares it in
// its JSON, not in Go. The transform itself ignores them.
const (
	// TagPartition on a date or dateTime column partitions the table in
	// the lake by the column's year, under the tag's value as the Hive key
	// (service_year=2024). At most one per view.
	TagPartition = "fhirlake/partition"
	// TagMember with the value "new" on a column of Patient ids says that
	// an id there the warehouse does not hold yet for the source is a
	// member new to the scope, whose whole history an incremental run
	// back-fills.
	TagMember = "fhirlake/member"
)

// Column describes one output column of a compiled view.
type Column struct {
	Name        string
	Type        string // FHIR type from the ViewDefinition ("string","boolean","integer","decimal","date","dateTime","instant",...), "" if untyped (-> string)
	Collection  bool
	Description string
	Path        string // canonical FHIRPath source (the compiled expression's String())
	// Tags are the column's ViewDefinition tags, name to value: ansi/type,
	// and the fhirlake/* tags that tell the warehouse and the lake what the
	// column means (see the README of schemas/).
	Tags map[string]string
}

// View is a compiled ViewDefinition: immutable, safe for concurrent use;
// paths are parsed once.
type View struct {
	name        string
	file        string // where LoadViews read it
	title       string
	description string
	resource    string
	columns     []Column
	kinds       []colKind
	schema      *arrow.Schema
	root        *selectPlan
	where       []*fhirpath.Expr
	constants   map[string]fhirpath.Collection
	key         string
	// usesRowIndex is set when a path refers to %rowIndex.
	usesRowIndex bool
	// fingerprint is the xxHash64 of the definition's bytes: a changed
	// view changes the content hashes of its resources (see
	// Engine.typeSeed).
	fingerprint uint64
	// keys are the members of the resource that the view's paths start
	// with, resolved in one pass per resource.
	keys *fhirpath.Keys
	// members are the member names the view's paths can read; whole is
	// set when a path can reach the whole resource (see
	// fhirpath.Expr.MemberNames).
	members []string
	whole   bool
	// flat holds every column of a view that yields exactly one row per
	// resource (no forEach, forEachOrNull, repeat or unionAll anywhere,
	// no collection column), in evaluation order; nil for other views.
	// The engine writes such rows straight into its builders.
	flat []colPlan
}

// selectPlan is one compiled select: its own columns, then the columns of
// its nested selects, then those of its unionAll branches, in view order.
type selectPlan struct {
	columns  []colPlan
	forEach  *fhirpath.Expr
	orNull   bool
	repeat   []*fhirpath.Expr
	selects  []*selectPlan
	unionAll []*selectPlan
}

type colPlan struct {
	idx        int // index in the view's columns
	expr       *fhirpath.Expr
	collection bool
}

// Name returns the view's name, which is also its table name.
func (v *View) Name() string { return v.name }

// Title returns the view's human title ("" when it has none).
func (v *View) Title() string { return v.title }

// Description returns the view's description ("" when it has none).
func (v *View) Description() string { return v.description }

// Resource returns the FHIR resource type the view reads.
func (v *View) Resource() string { return v.resource }

// Columns returns the view's columns in output order. The caller must not
// modify the slice.
func (v *View) Columns() []Column { return v.columns }

// Schema returns the Arrow schema of the view's record batches.
func (v *View) Schema() *arrow.Schema { return v.schema }

// File is the file LoadViews read the view from ("" for a view compiled
// from bytes).
func (v *View) File() string { return v.file }

// KeyColumn is the column holding the id of the resource each row came
// from: "id" when the view has a column named id, otherwise the first
// column whose path is exactly getResourceKey(); "" when there is none.
func (v *View) KeyColumn() string { return v.key }

// viewJSON is the subset of ViewDefinition this package reads.
type viewJSON struct {
	ResourceType string            `json:"resourceType"`
	Name         string            `json:"name"`
	Title        string            `json:"title"`
	Description  string            `json:"description"`
	Resource     string            `json:"resource"`
	Constant     []json.RawMessage `json:"constant"`
	Select       []selectJSON      `json:"select"`
	Where        []struct {
		Path string `json:"path"`
	} `json:"where"`
}

type selectJSON struct {
	Column        []columnJSON `json:"column"`
	Select        []selectJSON `json:"select"`
	ForEach       string       `json:"forEach"`
	ForEachOrNull string       `json:"forEachOrNull"`
	Repeat        []string     `json:"repeat"`
	UnionAll      []selectJSON `json:"unionAll"`
}

type columnJSON struct {
	Name        string `json:"name"`
	Path        string `json:"path"`
	Type        string `json:"type"`
	Collection  bool   `json:"collection"`
	Description string `json:"description"`
	Tag         []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"tag"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// CompileView parses and checks a ViewDefinition. It rejects names that
// are not ^[A-Za-z][A-Za-z0-9_]*$ (view and columns), duplicate columns,
// unionAll branches whose columns differ, selects with more than one of
// forEach, forEachOrNull and repeat, unknown functions or constants, and
// FHIRPath syntax errors. Errors name the view and the column.
func CompileView(data []byte) (*View, error) {
	return compileView(data, true)
}

func compileView(data []byte, requireName bool) (*View, error) {
	var vj viewJSON
	if err := json.Unmarshal(data, &vj); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidView, err)
	}
	c := &compiler{view: &View{name: vj.Name, title: vj.Title, description: vj.Description, resource: vj.Resource, constants: map[string]fhirpath.Collection{}}}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: view %q: %s", ErrInvalidView, vj.Name, fmt.Sprintf(format, args...))
	}
	if err := checkKeys(data); err != nil {
		return nil, fail("%s", err)
	}
	if vj.ResourceType != "" && vj.ResourceType != "ViewDefinition" {
		return nil, fail("resourceType is %q, want ViewDefinition", vj.ResourceType)
	}
	if (requireName || vj.Name != "") && !nameRE.MatchString(vj.Name) {
		return nil, fail("name must match %s", nameRE)
	}
	if vj.Resource == "" || !nameRE.MatchString(vj.Resource) {
		return nil, fail("resource must be a FHIR resource type")
	}
	if len(vj.Select) == 0 {
		return nil, fail("no select")
	}
	for _, raw := range vj.Constant {
		name, val, err := parseConstant(raw)
		if err != nil {
			return nil, fail("%s", err)
		}
		c.view.constants[name] = fhirpath.Collection{val}
	}
	for _, w := range vj.Where {
		e, err := c.expr(w.Path)
		if err != nil {
			return nil, fail("where %q: %s", w.Path, err)
		}
		c.view.where = append(c.view.where, e)
	}
	root, err := c.compileSelect(selectJSON{Select: vj.Select})
	if err != nil {
		return nil, fail("%s", err)
	}
	c.view.root = root
	v := c.view
	v.keys = fhirpath.NewKeys(append(slices.Clone(v.where), resourcePaths(root, nil)...)...)
	v.flat = flatColumns(root, nil)
	for _, e := range append(slices.Clone(v.where), allPaths(root, nil)...) {
		names, whole := e.MemberNames()
		v.members = append(v.members, names...)
		v.whole = v.whole || whole
	}
	seen := map[string]bool{}
	for _, col := range v.columns {
		if seen[col.Name] {
			return nil, fail("column %q: duplicate name", col.Name)
		}
		seen[col.Name] = true
	}
	if v.schema, v.kinds, err = buildSchema(v.columns, c.tags); err != nil {
		return nil, fail("%s", err)
	}
	for _, col := range v.columns {
		if col.Name == "id" {
			v.key = "id"
			break
		}
	}
	if v.key == "" {
		for _, col := range v.columns {
			if col.Path == "getResourceKey()" {
				v.key = col.Name
				break
			}
		}
	}
	v.fingerprint = xxhash.Sum64(data)
	return v, nil
}

type compiler struct {
	view *View
	tags []map[string]string // per column: tag name -> value
}

func (c *compiler) expr(src string) (*fhirpath.Expr, error) {
	e, err := fhirpath.Parse(src)
	if err != nil {
		return nil, err
	}
	for _, name := range e.Constants() {
		switch name {
		case "rowIndex":
			c.view.usesRowIndex = true
			continue
		case "resource", "rootResource":
			continue
		}
		if _, ok := c.view.constants[name]; !ok {
			return nil, fmt.Errorf("undefined constant %%%s", name)
		}
	}
	return e, nil
}

func (c *compiler) compileSelect(sj selectJSON) (*selectPlan, error) {
	sp := &selectPlan{}
	n := 0
	for _, p := range []bool{sj.ForEach != "", sj.ForEachOrNull != "", len(sj.Repeat) > 0} {
		if p {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("a select may have only one of forEach, forEachOrNull and repeat")
	}
	var err error
	switch {
	case sj.ForEach != "":
		if sp.forEach, err = c.expr(sj.ForEach); err != nil {
			return nil, fmt.Errorf("forEach %q: %w", sj.ForEach, err)
		}
	case sj.ForEachOrNull != "":
		sp.orNull = true
		if sp.forEach, err = c.expr(sj.ForEachOrNull); err != nil {
			return nil, fmt.Errorf("forEachOrNull %q: %w", sj.ForEachOrNull, err)
		}
	}
	for _, r := range sj.Repeat {
		e, err := c.expr(r)
		if err != nil {
			return nil, fmt.Errorf("repeat %q: %w", r, err)
		}
		sp.repeat = append(sp.repeat, e)
	}
	for _, cj := range sj.Column {
		if !nameRE.MatchString(cj.Name) {
			return nil, fmt.Errorf("column %q: name must match %s", cj.Name, nameRE)
		}
		e, err := c.expr(cj.Path)
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", cj.Name, err)
		}
		tags := map[string]string{}
		for _, t := range cj.Tag {
			tags[t.Name] = t.Value
		}
		sp.columns = append(sp.columns, colPlan{idx: len(c.view.columns), expr: e, collection: cj.Collection})
		c.view.columns = append(c.view.columns, Column{
			Name: cj.Name, Type: cj.Type, Collection: cj.Collection, Description: cj.Description, Path: e.String(), Tags: tags,
		})
		c.tags = append(c.tags, tags)
	}
	for _, sub := range sj.Select {
		s, err := c.compileSelect(sub)
		if err != nil {
			return nil, err
		}
		sp.selects = append(sp.selects, s)
	}
	if len(sj.UnionAll) > 0 {
		start := len(c.view.columns)
		var first []Column
		for i, branch := range sj.UnionAll {
			// Every branch fills the same columns: compile it, check its
			// columns against the first branch's, then drop the copies.
			s, err := c.compileSelect(branch)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				first = slices.Clone(c.view.columns[start:])
			} else {
				got := c.view.columns[start+len(first):]
				if !slices.EqualFunc(first, got, func(a, b Column) bool { return a.Name == b.Name }) {
					return nil, fmt.Errorf("unionAll branch %d: columns %s differ from branch 1 columns %s", i+1, colNames(got), colNames(first))
				}
				c.view.columns = c.view.columns[:start+len(first)]
				c.tags = c.tags[:start+len(first)]
				renumber(s, start)
			}
			sp.unionAll = append(sp.unionAll, s)
		}
	}
	return sp, nil
}

// resourcePaths appends to out the paths of sp and its nested selects
// that are evaluated with the resource as their focus: columns outside
// any forEach or repeat, and the outermost forEach and repeat paths.
func resourcePaths(sp *selectPlan, out []*fhirpath.Expr) []*fhirpath.Expr {
	out = append(out, sp.repeat...)
	if sp.forEach != nil {
		return append(out, sp.forEach)
	}
	if len(sp.repeat) > 0 {
		return out
	}
	for _, cp := range sp.columns {
		out = append(out, cp.expr)
	}
	for _, sub := range append(slices.Clone(sp.selects), sp.unionAll...) {
		out = resourcePaths(sub, out)
	}
	return out
}

// flatColumns appends the columns of sp and its nested selects in the
// order run evaluates them, or returns nil when sp can yield other than
// one row per focus.
func flatColumns(sp *selectPlan, out []colPlan) []colPlan {
	if sp.forEach != nil || len(sp.repeat) > 0 || len(sp.unionAll) > 0 {
		return nil
	}
	for _, cp := range sp.columns {
		if cp.collection {
			return nil
		}
		out = append(out, cp)
	}
	for _, sub := range sp.selects {
		if out = flatColumns(sub, out); out == nil {
			return nil
		}
	}
	return out
}

// allPaths appends every path of sp and of the selects nested in it.
func allPaths(sp *selectPlan, out []*fhirpath.Expr) []*fhirpath.Expr {
	out = append(out, sp.repeat...)
	if sp.forEach != nil {
		out = append(out, sp.forEach)
	}
	for _, cp := range sp.columns {
		out = append(out, cp.expr)
	}
	for _, sub := range append(slices.Clone(sp.selects), sp.unionAll...) {
		out = allPaths(sub, out)
	}
	return out
}

// renumber gives the columns of a later unionAll branch the indices of the
// first branch's columns, which appear in the same order from start.
func renumber(s *selectPlan, start int) {
	next := start
	var walk func(s *selectPlan)
	walk = func(s *selectPlan) {
		for i := range s.columns {
			s.columns[i].idx = next
			next++
		}
		for _, sub := range s.selects {
			walk(sub)
		}
		if len(s.unionAll) > 0 {
			first := next
			for _, u := range s.unionAll {
				next = first
				walk(u)
			}
		}
	}
	walk(s)
}

func colNames(cols []Column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// parseConstant reads {"name": ..., "valueX": ...}.
func parseConstant(raw json.RawMessage) (string, fhirpath.Value, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fhirpath.Value{}, fmt.Errorf("constant: %w", err)
	}
	var name string
	if err := json.Unmarshal(m["name"], &name); err != nil || !nameRE.MatchString(name) {
		return "", fhirpath.Value{}, fmt.Errorf("constant %q: bad name", name)
	}
	for k, v := range m {
		suffix, ok := strings.CutPrefix(k, "value")
		if !ok || suffix == "" {
			continue
		}
		typ := suffix
		if typ[0] >= 'A' && typ[0] <= 'Z' {
			typ = strings.ToLower(typ[:1]) + typ[1:]
		}
		switch typ {
		case "boolean":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				return "", fhirpath.Value{}, fmt.Errorf("constant %q: %w", name, err)
			}
			return name, fhirpath.Boolean(b), nil
		case "integer", "positiveInt", "unsignedInt", "integer64":
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return "", fhirpath.Value{}, fmt.Errorf("constant %q: %w", name, err)
			}
			i, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return "", fhirpath.Value{}, fmt.Errorf("constant %q: %w", name, err)
			}
			return name, fhirpath.Integer(i).WithType(typ), nil
		case "decimal":
			var n json.Number
			if err := json.Unmarshal(v, &n); err != nil {
				return "", fhirpath.Value{}, fmt.Errorf("constant %q: %w", name, err)
			}
			return name, fhirpath.Decimal(n.String()), nil
		default:
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", fhirpath.Value{}, fmt.Errorf("constant %q: %s must be a string", name, k)
			}
			return name, fhirpath.String(s).WithType(typ), nil
		}
	}
	return "", fhirpath.Value{}, fmt.Errorf("constant %q: no value", name)
}

// LoadViews compiles every *.json file in fsys (sorted by name); errors
// name the file.
func LoadViews(fsys fs.FS) ([]*View, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("load views: %w", err)
	}
	slices.Sort(names)
	views := make([]*View, 0, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("load views: %w", err)
		}
		v, err := CompileView(data)
		if err != nil {
			return nil, fmt.Errorf("load views: %s: %w", path.Base(name), err)
		}
		v.file = name
		views = append(views, v)
	}
	return views, nil
}

// The keys of a ViewDefinition, of its selects and of their columns that
// checkKeys knows (the specification's, and FHIR's common elements).
var (
	viewKeys = []string{"resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
		"extension", "modifierExtension", "url", "identifier", "version", "name", "title", "status",
		"experimental", "date", "publisher", "contact", "description", "useContext", "copyright",
		"resource", "resourceVersion", "profile", "fhirVersion", "constant", "select", "where"}
	selectKeys = []string{"id", "extension", "modifierExtension", "column", "select", "forEach",
		"forEachOrNull", "repeat", "unionAll"}
	columnKeys = []string{"id", "extension", "modifierExtension", "name", "path", "description",
		"collection", "type", "tag"}
)

// checkKeys finds misspelt keys in a ViewDefinition: a key that is one
// edit from a key of its object that the object lacks ("selct" without
// "select") would otherwise be ignored, and the view would silently lose
// what it meant. Keys near no known one are left alone (a user's own).
func checkKeys(data []byte) error {
	var root map[string]json.RawMessage
	if json.Unmarshal(data, &root) != nil {
		return nil // the typed decode reports it
	}
	var walk func(obj map[string]json.RawMessage, known []string, where string) error
	walkList := func(raw json.RawMessage, known []string, where string) error {
		var list []map[string]json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			return nil
		}
		for i, o := range list {
			if err := walk(o, known, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
		return nil
	}
	walk = func(obj map[string]json.RawMessage, known []string, where string) error {
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if slices.Contains(known, k) || strings.HasPrefix(k, "_") {
				continue
			}
			if s := suggest.Closest(k, known); s != "" {
				if _, has := obj[s]; !has {
					return fmt.Errorf("%s: unknown key %q: did you mean %q?", where, k, s)
				}
			}
		}
		for _, k := range []string{"select", "unionAll"} {
			if raw, ok := obj[k]; ok {
				if err := walkList(raw, selectKeys, where+"."+k); err != nil {
					return err
				}
			}
		}
		if raw, ok := obj["column"]; ok {
			if err := walkList(raw, columnKeys, where+".column"); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, viewKeys, "ViewDefinition")
}
