package transform

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fhirlake/fhirlake/internal/fhirtypes"
	"github.com/fhirlake/fhirlake/internal/suggest"
	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// PathProblem is a view path that names an element its resource type does
// not have (Error), or one that may, through an extension or a choice
// element whose type the path does not fix (a warning).
type PathProblem struct {
	Error   bool
	Message string // names the view's file, the column or select, and the element
}

// CheckPaths follows every path of v through the FHIR R4 elements of v's
// resource type (fhirtypes), so that a misspelt element (name.famly) is
// found before a run rather than read as nothing in every row. A path is
// followed as far as its types are known: through members, where, select,
// first and the other functions that keep or pick elements, ofType, as and
// iif; a function whose result is not an element (exists, join,
// getReferenceKey) ends it, and so does a contained resource until ofType
// names its type. Past a choice element without ofType (value.unit), or an
// extension's value, a member no candidate type has is a warning: the
// data decide which type it is.
func (v *View) CheckPaths() []PathProblem {
	if !fhirtypes.IsType(v.resource) {
		return nil
	}
	pc := &pathChecker{view: v}
	root := typeSet{types: []string{v.resource}}
	for _, w := range v.where {
		pc.at = "where"
		pc.check(w, root)
	}
	pc.selectPlan(v.root, root)
	return pc.problems
}

// typeSet is what a path yields, as far as it is known: the element types
// (fhirtypes.Child's names, Primitive, AnyResource); unknown stops the
// checks below it; choice is set when the types are a choice element's
// candidates, not one certain type.
type typeSet struct {
	types   []string
	unknown bool
	choice  bool
}

var unknownSet = typeSet{unknown: true}

func (t typeSet) union(o typeSet) typeSet {
	if t.unknown || o.unknown {
		return unknownSet
	}
	types := slices.Clone(t.types)
	for _, x := range o.types {
		if !slices.Contains(types, x) {
			types = append(types, x)
		}
	}
	return typeSet{types: types, choice: t.choice || o.choice}
}

type pathChecker struct {
	view     *View
	at       string // the column or select the path is part of
	src      string // the path, as written canonically
	quiet    bool   // follow paths without recording problems
	problems []PathProblem
}

func (pc *pathChecker) selectPlan(sp *selectPlan, focus typeSet) {
	if sp.forEach != nil {
		pc.at = "forEach"
		focus = pc.check(sp.forEach, focus)
	}
	if len(sp.repeat) > 0 {
		// repeat follows its paths from the focus, then from what they
		// yield, again and again: a path is checked against every type it
		// can start from, and the columns see everything the steps yield.
		reach, steps := focus, typeSet{}
		pc.quiet = true
		for range 16 {
			for _, r := range sp.repeat {
				steps = steps.union(pc.check(r, reach))
			}
			next := reach.union(steps)
			if next.unknown || len(next.types) == len(reach.types) {
				break
			}
			reach = next
		}
		pc.quiet = false
		for _, r := range sp.repeat {
			pc.at = "repeat"
			pc.check(r, reach)
		}
		focus = steps
		if len(steps.types) == 0 {
			focus = unknownSet // the paths yield nothing: reported above
		}
	}
	for _, c := range sp.columns {
		pc.at = fmt.Sprintf("column %q", pc.view.columns[c.idx].Name)
		pc.check(c.expr, focus)
	}
	for _, s := range sp.selects {
		pc.selectPlan(s, focus)
	}
	for _, s := range sp.unionAll {
		pc.selectPlan(s, focus)
	}
}

func (pc *pathChecker) check(e *fhirpath.Expr, focus typeSet) typeSet {
	pc.src = e.String()
	return pc.node(e.Root(), focus)
}

// node returns what n yields from focus, and records the problems of the
// members it names.
func (pc *pathChecker) node(n fhirpath.Node, focus typeSet) typeSet {
	switch n := n.(type) {
	case *fhirpath.MemberNode:
		base := focus
		if n.Target != nil {
			base = pc.node(n.Target, focus)
		} else if n.Name == pc.view.resource && slices.Equal(focus.types, []string{pc.view.resource}) {
			return focus // Patient.name: the type name starts the path
		}
		return pc.member(base, n.Name)
	case *fhirpath.FunctionNode:
		base := focus
		if n.Target != nil {
			base = pc.node(n.Target, focus)
		}
		return pc.function(n, base, focus)
	case *fhirpath.IndexNode:
		t := pc.node(n.Target, focus)
		pc.node(n.Index, focus)
		return t
	case *fhirpath.BinaryNode:
		l, r := pc.node(n.Left, focus), pc.node(n.Right, focus)
		if n.Op == "|" {
			return l.union(r)
		}
		return typeSet{types: []string{fhirtypes.Primitive}}
	case *fhirpath.UnaryNode:
		pc.node(n.Operand, focus)
		return typeSet{types: []string{fhirtypes.Primitive}}
	case *fhirpath.TypeOpNode:
		pc.node(n.Operand, focus)
		if n.Op == "as" {
			return namedType(n.Type.Name)
		}
		return typeSet{types: []string{fhirtypes.Primitive}}
	case *fhirpath.ParenNode:
		return pc.node(n.Expr, focus)
	case *fhirpath.LiteralNode:
		return typeSet{types: []string{fhirtypes.Primitive}}
	case *fhirpath.ConstantNode:
		if n.Name == "resource" || n.Name == "rootResource" {
			return typeSet{types: []string{pc.view.resource}}
		}
		return unknownSet
	case *fhirpath.SpecialNode:
		if n.Name == "this" {
			return focus
		}
		return typeSet{types: []string{fhirtypes.Primitive}}
	}
	return unknownSet
}

// member follows name from every type of base.
func (pc *pathChecker) member(base typeSet, name string) typeSet {
	if base.unknown || len(base.types) == 0 {
		return base // nothing known, or nothing at all, to check against
	}
	var out typeSet
	found := false
	for _, t := range base.types {
		if t == fhirtypes.AnyResource {
			return unknownSet
		}
		child, ok, known := fhirtypes.Child(t, name)
		if !known {
			return unknownSet
		}
		if !ok {
			continue
		}
		found = true
		kinds := strings.Split(child, "|")
		out = out.union(typeSet{types: kinds, choice: len(kinds) > 1})
	}
	if !found {
		if pc.quiet {
			return typeSet{} // nothing, while repeat finds where its paths start
		}
		pc.report(base, name)
		return unknownSet
	}
	return out
}

// report records that no type of base has an element called name: an
// error when base is certain, a warning when it is a choice's candidates.
func (pc *pathChecker) report(base typeSet, name string) {
	if pc.quiet {
		return
	}
	names := make([]string, len(base.types))
	for i, t := range base.types {
		names[i] = t
		if t == fhirtypes.Primitive {
			names[i] = "a primitive value"
		}
	}
	owner := strings.Join(names, " or ")
	if len(names) == 1 && base.types[0] == fhirtypes.Primitive {
		owner += " (it has only id and extension)"
	}
	msg := fmt.Sprintf("%s: view %q, %s, path %q: %s has no element %q", pc.view.file, pc.view.name, pc.at, pc.src, owner, name)
	if len(base.types) == 1 {
		if s := suggest.Closest(name, fhirtypes.Members(base.types[0])); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	if base.choice {
		msg += "; it is a choice element or an extension's value: fix its type with ofType() to have the path checked"
	}
	pc.problems = append(pc.problems, PathProblem{Error: !base.choice, Message: msg})
}

// function returns what a call of n yields from base (its target, or the
// focus), and checks its arguments: those of where, select, exists and
// all against the elements of base, the others against focus.
func (pc *pathChecker) function(n *fhirpath.FunctionNode, base, focus typeSet) typeSet {
	switch n.Name {
	case "where", "exists", "all":
		for _, a := range n.Args {
			pc.node(a, base)
		}
		if n.Name == "where" {
			return base
		}
		return typeSet{types: []string{fhirtypes.Primitive}}
	case "select":
		if len(n.Args) == 1 {
			return pc.node(n.Args[0], base)
		}
	case "first", "last", "tail", "skip", "take", "single", "distinct":
		for _, a := range n.Args {
			pc.node(a, focus)
		}
		return base
	case "ofType":
		if len(n.Args) == 1 {
			switch a := n.Args[0].(type) {
			case *fhirpath.MemberNode:
				if a.Target == nil {
					return namedType(a.Name)
				}
			case *fhirpath.TypeNode:
				return namedType(a.Name)
			}
		}
		return unknownSet
	case "extension":
		for _, a := range n.Args {
			pc.node(a, focus)
		}
		if base.unknown {
			return unknownSet
		}
		return typeSet{types: []string{"Extension"}}
	case "iif":
		if len(n.Args) >= 2 {
			pc.node(n.Args[0], base)
			out := pc.node(n.Args[1], base)
			if len(n.Args) == 3 {
				out = out.union(pc.node(n.Args[2], base))
			}
			return out
		}
	}
	for _, a := range n.Args {
		if m, ok := a.(*fhirpath.MemberNode); ok && m.Target == nil && (fhirtypes.Is(m.Name) || fhirtypes.IsType(m.Name)) {
			continue // a type name, as in getReferenceKey(Patient)
		}
		pc.node(a, focus)
	}
	return unknownSet
}

// namedType is the type ofType or as names: a FHIR type of the table
// (Quantity, a resource type), a primitive (dateTime, string), or unknown.
func namedType(name string) typeSet {
	if fhirtypes.IsType(name) {
		return typeSet{types: []string{name}}
	}
	if name != "" && name[0] >= 'a' && name[0] <= 'z' {
		return typeSet{types: []string{fhirtypes.Primitive}}
	}
	return unknownSet
}
