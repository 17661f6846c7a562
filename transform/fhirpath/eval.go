package fhirpath

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// ErrEval is wrapped by every evaluation error.
var ErrEval = errors.New("fhirpath: evaluation")

// Context carries what an evaluation needs besides its focus. A Context is
// not safe for concurrent use; give each goroutine its own.
type Context struct {
	// Resource is %resource and %rootResource, and the resource whose key
	// getResourceKey() returns when the focus is not a resource.
	Resource Value
	// Constants holds %name values (without the %).
	Constants map[string]Collection
	// General turns off the compiled fast paths (see Parse): every
	// expression runs through the general evaluator. The results are the
	// same, only slower; tests use it to check the fast paths.
	General bool
	// Keys, when set, names the members of Resource that plans resolve
	// together (see Keys).
	Keys *Keys
	// Filter is the filter Resource was parsed with, if any: Keys bound
	// to it (Keys.Bind) read what the parser recorded of its members.
	Filter *jsondoc.Filter

	// scratch is carved into the collections Eval builds; see Reset.
	scratch []Value
	// text holds number texts read from JSON, aliased by Values.
	text []byte
	ev   *evaluator // reused by Eval
	run  runner     // reused by plans
	// choices remembers choice element lookups (value -> valueQuantity)
	// in the current document; used only after a Reset (oneDoc).
	choices []choiceMemo
	oneDoc  bool
	// top holds, by memberID, what resolveKeys found in the current
	// document (generation gen); topDone is set once it ran.
	top     []topSlot
	gen     uint32
	topDone bool
}

type choiceMemo struct {
	obj   *jsondoc.Value
	name  string
	child *jsondoc.Value // nil: no such choice element
	typ   string
}

// maxChoiceMemos bounds the choice lookups a Context remembers.
const maxChoiceMemos = 32

// scratchValues is the size of a Context's scratch block.
const scratchValues = 2048

// Reset lets later evaluations reuse the memory of the collections that
// earlier ones returned: those collections must no longer be used. Without
// Reset that memory is left to the garbage collector. Values read from a
// JSON document alias it, and are valid only while the document is.
//
// Reset also starts a document: the evaluations until the next Reset must
// all read the same JSON document (and constants), which lets them share
// the lookups of choice elements. Call Reset before moving to another
// document; a Context never Reset shares nothing.
func (c *Context) Reset() {
	c.scratch = c.scratch[:0]
	c.text = c.text[:0]
	clear(c.choices) // drop the document's pointers
	c.choices = c.choices[:0]
	c.oneDoc = true
	c.topDone = false
	if c.gen++; c.gen == 0 {
		clear(c.top) // generations wrapped: forget every old one
		c.gen = 1
	}
}

// member returns the child called name of the object o, or its choice
// element of that name (see choice) with the type the suffix names.
// Remembered choice elements of the resource are found without looking
// for the plain name again.
func (c *Context) member(o *jsondoc.Value, name string) (*jsondoc.Value, string) {
	if c.oneDoc && o == c.Resource.obj {
		for i := range c.choices {
			if m := &c.choices[i]; m.obj == o && m.name == name {
				return m.child, m.typ
			}
		}
	}
	if child := o.Get(name); child != nil {
		return child, ""
	}
	return c.choice(o, name)
}

// choice finds the choice element called name of o (see choice), through
// the context's memo when it has one.
func (c *Context) choice(o *jsondoc.Value, name string) (*jsondoc.Value, string) {
	if !c.oneDoc {
		return choice(o, name)
	}
	for i := range c.choices {
		if m := &c.choices[i]; m.obj == o && m.name == name {
			return m.child, m.typ
		}
	}
	child, typ := choice(o, name)
	if len(c.choices) < maxChoiceMemos {
		c.choices = append(c.choices, choiceMemo{obj: o, name: name, child: child, typ: typ})
	}
	return child, typ
}

// rest returns an empty collection whose capacity is the free scratch
// space, to append to without any evaluation in between; keep commits it.
func (ev *evaluator) rest() Collection {
	c := ev.ctx
	if cap(c.scratch)-len(c.scratch) < 32 {
		c.scratch = make([]Value, 0, scratchValues)
	}
	return c.scratch[len(c.scratch):len(c.scratch):cap(c.scratch)]
}

// keep commits a collection built on rest: when appending did not move it
// off the scratch block, its items become used. The result has no spare
// capacity, so appending to it never writes into scratch.
func (ev *evaluator) keep(out Collection) Collection {
	if len(out) == 0 {
		return nil
	}
	c := ev.ctx
	l := len(c.scratch)
	if l < cap(c.scratch) && cap(out) == cap(c.scratch)-l && &c.scratch[l:cap(c.scratch)][0] == &out[0] {
		c.scratch = c.scratch[:l+len(out)]
	}
	return out[:len(out):len(out)]
}

// alloc reserves n items of scratch space: an empty collection of
// capacity n that nothing else uses.
func (ev *evaluator) alloc(n int) Collection {
	if n > scratchValues/8 {
		return make(Collection, 0, n)
	}
	c := ev.ctx
	if cap(c.scratch)-len(c.scratch) < n {
		c.scratch = make([]Value, 0, scratchValues)
	}
	l := len(c.scratch)
	c.scratch = c.scratch[:l+n]
	return c.scratch[l : l : l+n]
}

// Eval evaluates e with the given focus, which is also $this.
func (e *Expr) Eval(ctx *Context, focus Collection) (Collection, error) {
	if e.plan != nil && !ctx.General {
		if c, ok := e.plan.eval(ctx, focus); ok {
			return c, nil
		}
	}
	return e.evalGeneral(ctx, focus)
}

// EvalOne is Eval for a caller that wants one item, such as a column
// that is not a collection: n is the number of items, counted no
// further than 2, and v the first of them when n > 0, valid until the
// next evaluation with ctx. It saves building the collection, and stops
// early at a second item where no later step could have failed; the
// error is Eval's.
func (e *Expr) EvalOne(ctx *Context, focus Collection) (v *Value, n int, err error) {
	if e.plan != nil && !ctx.General {
		if v, n, ok := e.plan.evalOne(ctx, focus); ok {
			return v, n, nil
		}
	}
	c, err := e.evalGeneral(ctx, focus)
	if err != nil || len(c) == 0 {
		return nil, 0, err
	}
	return &c[0], min(len(c), 2), nil
}

// evalGeneral is Eval without the plan.
func (e *Expr) evalGeneral(ctx *Context, focus Collection) (Collection, error) {
	// The evaluator lives in the context so that it is not allocated on
	// every call (calls through function values would move it to the heap).
	ev := ctx.ev
	if ev == nil {
		ev = new(evaluator)
		ctx.ev = ev
	}
	saved := *ev
	*ev = evaluator{ctx: ctx, this: focus}
	c, err := ev.eval(e.root, focus)
	*ev = saved
	return c, err
}

// Constants returns the names of the %constants e refers to, in order of
// appearance, without duplicates.
func (e *Expr) Constants() []string {
	var names []string
	seen := map[string]bool{}
	walk(e.root, func(n Node) {
		if c, ok := n.(*ConstantNode); ok && !seen[c.Name] {
			seen[c.Name] = true
			names = append(names, c.Name)
		}
	})
	return names
}

func walk(n Node, f func(Node)) {
	if n == nil {
		return
	}
	f(n)
	switch n := n.(type) {
	case *MemberNode:
		walk(n.Target, f)
	case *FunctionNode:
		walk(n.Target, f)
		for _, a := range n.Args {
			walk(a, f)
		}
	case *IndexNode:
		walk(n.Target, f)
		walk(n.Index, f)
	case *UnaryNode:
		walk(n.Operand, f)
	case *BinaryNode:
		walk(n.Left, f)
		walk(n.Right, f)
	case *TypeOpNode:
		walk(n.Operand, f)
	case *ParenNode:
		walk(n.Expr, f)
	}
}

type evaluator struct {
	ctx   *Context
	this  Collection
	index int
}

func evalErrorf(n Node, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrEval, n, fmt.Sprintf(format, args...))
}

func (ev *evaluator) eval(n Node, focus Collection) (Collection, error) {
	switch n := n.(type) {
	case *LiteralNode:
		if n.Kind == LitEmpty {
			return nil, nil
		}
		return n.coll, nil
	case *ConstantNode:
		switch n.Name {
		case "resource", "rootResource":
			if ev.ctx.Resource.kind != 0 {
				return Collection{ev.ctx.Resource}, nil
			}
		}
		if c, ok := ev.ctx.Constants[n.Name]; ok {
			return c, nil
		}
		return nil, evalErrorf(n, "undefined constant")
	case *SpecialNode:
		switch n.Name {
		case "this":
			return ev.this, nil
		case "index":
			return Collection{Integer(int64(ev.index))}, nil
		}
		return nil, nil
	case *ParenNode:
		return ev.eval(n.Expr, focus)
	case *MemberNode:
		base := focus
		if n.Target != nil {
			var err error
			if base, err = ev.eval(n.Target, focus); err != nil {
				return nil, err
			}
		} else if len(base) == 1 && base[0].kind == KindObject && n.Name != "" && n.Name[0] >= 'A' && n.Name[0] <= 'Z' &&
			base[0].obj.Get("resourceType").Str() == n.Name {
			return base, nil // Patient.name: the type name selects the resource itself
		}
		return ev.navigate(base, n.Name), nil
	case *FunctionNode:
		base := focus
		if n.Target != nil {
			var err error
			if base, err = ev.eval(n.Target, focus); err != nil {
				return nil, err
			}
		}
		return n.fn.impl(ev, n, base, focus)
	case *IndexNode:
		base, err := ev.eval(n.Target, focus)
		if err != nil {
			return nil, err
		}
		idx, err := ev.eval(n.Index, focus)
		if err != nil {
			return nil, err
		}
		if len(idx) != 1 || idx[0].kind != KindInteger {
			return nil, evalErrorf(n, "index must be an integer")
		}
		if i := idx[0].i; i >= 0 && i < int64(len(base)) {
			return Collection{base[i]}, nil
		}
		return nil, nil
	case *UnaryNode:
		x, err := ev.eval(n.Operand, focus)
		if err != nil || n.Op == "+" || len(x) == 0 {
			return x, err
		}
		if len(x) != 1 || !x[0].isNumber() {
			return nil, evalErrorf(n, "unary minus needs a number")
		}
		if x[0].kind == KindInteger {
			return Collection{Integer(-x[0].i)}, nil
		}
		if s := x[0].str; strings.HasPrefix(s, "-") {
			return Collection{Decimal(s[1:])}, nil
		}
		return Collection{Decimal("-" + x[0].str)}, nil
	case *TypeOpNode:
		x, err := ev.eval(n.Operand, focus)
		if err != nil {
			return nil, err
		}
		if n.Op == "is" {
			if len(x) == 0 {
				return nil, nil
			}
			if len(x) > 1 {
				return nil, evalErrorf(n, "is needs a single item")
			}
			return Collection{Boolean(x[0].isType(n.Type.Namespace, n.Type.Name))}, nil
		}
		return ofType(x, n.Type), nil
	case *BinaryNode:
		return ev.binary(n, focus)
	}
	return nil, evalErrorf(n, "cannot evaluate")
}

// navigate returns the children called name of the objects in base,
// flattening arrays. A missing element is looked up as a choice element:
// value finds valueQuantity and tags it "Quantity".
func (ev *evaluator) navigate(base Collection, name string) Collection {
	out := ev.rest()
	for _, it := range base {
		if it.kind != KindObject {
			continue
		}
		child, typ := ev.ctx.member(it.obj, name)
		if child == nil {
			continue
		}
		out = ev.appendJSON(out, child, typ)
	}
	return ev.keep(out)
}

func (ev *evaluator) appendJSON(out Collection, j *jsondoc.Value, typ string) Collection {
	if j.Type() == jsondoc.TypeArray {
		for e := j.First(); e != nil; e = e.Next() {
			if v, ok := ev.fromJSON(e); ok {
				v.typ = typ
				out = append(out, v)
			}
		}
		return out
	}
	if v, ok := ev.fromJSON(j); ok {
		v.typ = typ
		out = append(out, v)
	}
	return out
}

// fromJSON converts a JSON value; strings and number texts alias the
// document. ok is false for null and for arrays, which are never items
// themselves.
func (ev *evaluator) fromJSON(j *jsondoc.Value) (Value, bool) {
	switch j.Type() {
	case jsondoc.TypeObject:
		return Value{kind: KindObject, obj: j}, true
	case jsondoc.TypeString:
		return Value{kind: KindString, str: j.Str()}, true
	case jsondoc.TypeNumber:
		return numberValue(j.Str())
	case jsondoc.TypeTrue:
		return Value{kind: KindBoolean, b: true}, true
	case jsondoc.TypeFalse:
		return Value{kind: KindBoolean}, true
	}
	return Value{}, false
}

// choice finds the first member of object o whose name is name followed
// by an upper-case letter (valueQuantity for value), and returns it with
// its FHIR type.
func choice(o *jsondoc.Value, name string) (*jsondoc.Value, string) {
	if o.Type() != jsondoc.TypeObject {
		return nil, ""
	}
	for m := o.First(); m != nil; m = m.Next() {
		k := m.Key()
		if isChoiceOf(k, name) {
			return m, choiceType(k[len(name):])
		}
	}
	return nil, ""
}

// singletonBool applies FHIRPath singleton evaluation in a boolean
// context: ok is false for an empty collection, and a single non-boolean
// item counts as true.
func singletonBool(n Node, c Collection) (b, ok bool, err error) {
	switch len(c) {
	case 0:
		return false, false, nil
	case 1:
		if c[0].kind == KindBoolean {
			return c[0].b, true, nil
		}
		return true, true, nil
	}
	return false, false, evalErrorf(n, "expected a single boolean, got %d items", len(c))
}

var (
	trueColl  = Collection{Boolean(true)}
	falseColl = Collection{Boolean(false)}
)

// boolColl returns a shared collection: callers never write into
// collections they did not build.
func boolColl(b bool) Collection {
	if b {
		return trueColl[:1:1]
	}
	return falseColl[:1:1]
}

func (ev *evaluator) binary(n *BinaryNode, focus Collection) (Collection, error) {
	l, err := ev.eval(n.Left, focus)
	if err != nil {
		return nil, err
	}
	r, err := ev.eval(n.Right, focus)
	if err != nil {
		return nil, err
	}
	switch n.Op {
	case "and", "or", "xor", "implies":
		lb, lok, err := singletonBool(n.Left, l)
		if err != nil {
			return nil, err
		}
		rb, rok, err := singletonBool(n.Right, r)
		if err != nil {
			return nil, err
		}
		switch n.Op {
		case "and":
			if (lok && !lb) || (rok && !rb) {
				return boolColl(false), nil
			}
			if lok && rok {
				return boolColl(true), nil
			}
		case "or":
			if (lok && lb) || (rok && rb) {
				return boolColl(true), nil
			}
			if lok && rok {
				return boolColl(false), nil
			}
		case "xor":
			if lok && rok {
				return boolColl(lb != rb), nil
			}
		case "implies":
			if lok && !lb || rok && rb {
				return boolColl(true), nil
			}
			if lok && rok {
				return boolColl(false), nil
			}
		}
		return nil, nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equal(l[i], r[i])
		}
		return boolColl(eq == (n.Op == "=")), nil
	case "~", "!~":
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equivalent(l[i], r[i])
		}
		return boolColl(eq == (n.Op == "~")), nil
	case "<", "<=", ">", ">=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, evalErrorf(n, "comparison needs single items")
		}
		c, ok := compare(l[0], r[0])
		if !ok {
			return nil, evalErrorf(n, "cannot compare %s with %s", l[0].Type(), r[0].Type())
		}
		switch n.Op {
		case "<":
			return boolColl(c < 0), nil
		case "<=":
			return boolColl(c <= 0), nil
		case ">":
			return boolColl(c > 0), nil
		}
		return boolColl(c >= 0), nil
	case "|":
		out := append(Collection(nil), l...)
		for _, v := range r {
			if !contains(out, v) {
				out = append(out, v)
			}
		}
		return distinct(out), nil
	case "in", "contains":
		item, coll := l, r
		if n.Op == "contains" {
			item, coll = r, l
		}
		if len(item) == 0 {
			return nil, nil
		}
		if len(item) > 1 {
			return nil, evalErrorf(n, "%s needs a single item", n.Op)
		}
		return boolColl(contains(coll, item[0])), nil
	case "&":
		var b strings.Builder
		for _, c := range []Collection{l, r} {
			if len(c) > 1 {
				return nil, evalErrorf(n, "& needs single items")
			}
			if len(c) == 1 {
				b.WriteString(c[0].Str())
			}
		}
		return Collection{String(b.String())}, nil
	}
	// Arithmetic.
	if len(l) == 0 || len(r) == 0 {
		return nil, nil
	}
	if len(l) > 1 || len(r) > 1 {
		return nil, evalErrorf(n, "%s needs single items", n.Op)
	}
	a, b := l[0], r[0]
	if n.Op == "+" && a.kind == KindString && b.kind == KindString {
		return Collection{String(a.str + b.str)}, nil
	}
	if !a.isNumber() || !b.isNumber() {
		return nil, evalErrorf(n, "%s needs numbers, got %s and %s", n.Op, a.Type(), b.Type())
	}
	if a.kind == KindInteger && b.kind == KindInteger {
		x, y := a.i, b.i
		switch n.Op {
		case "+":
			return Collection{Integer(x + y)}, nil
		case "-":
			return Collection{Integer(x - y)}, nil
		case "*":
			return Collection{Integer(x * y)}, nil
		case "div", "mod":
			if y == 0 {
				return nil, nil
			}
			if n.Op == "div" {
				return Collection{Integer(x / y)}, nil
			}
			return Collection{Integer(x % y)}, nil
		}
	}
	x, y := a.Float(), b.Float()
	var z float64
	switch n.Op {
	case "+":
		z = x + y
	case "-":
		z = x - y
	case "*":
		z = x * y
	case "/":
		if y == 0 {
			return nil, nil
		}
		z = x / y
	case "div":
		if y == 0 {
			return nil, nil
		}
		return Collection{Integer(int64(math.Trunc(x / y)))}, nil
	case "mod":
		if y == 0 {
			return nil, nil
		}
		z = math.Mod(x, y)
	}
	return Collection{Decimal(formatDecimal(z))}, nil
}

func formatDecimal(f float64) string {
	// Round away binary noise (0.1+0.2) at 15 significant digits.
	s := strconv.FormatFloat(f, 'g', 15, 64)
	f, _ = strconv.ParseFloat(s, 64)
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func equal(a, b Value) bool {
	switch {
	case a.isNumber() && b.isNumber():
		if a.kind == KindInteger && b.kind == KindInteger {
			return a.i == b.i
		}
		return a.Float() == b.Float()
	case a.isTextual() && b.isTextual():
		return a.str == b.str
	case a.kind == KindBoolean && b.kind == KindBoolean:
		return a.b == b.b
	case a.kind == KindObject && b.kind == KindObject:
		return a.obj == b.obj || string(a.obj.AppendJSON(nil)) == string(b.obj.AppendJSON(nil))
	}
	return false
}

func equivalent(a, b Value) bool {
	if a.kind == KindString && b.kind == KindString {
		return strings.EqualFold(strings.Join(strings.Fields(a.str), " "), strings.Join(strings.Fields(b.str), " "))
	}
	return equal(a, b)
}

func compare(a, b Value) (int, bool) {
	switch {
	case a.isNumber() && b.isNumber():
		if a.kind == KindInteger && b.kind == KindInteger {
			return cmpOrdered(a.i, b.i), true
		}
		return cmpOrdered(a.Float(), b.Float()), true
	case a.isTextual() && b.isTextual():
		return strings.Compare(a.str, b.str), true
	}
	return 0, false
}

func cmpOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func contains(c Collection, v Value) bool {
	for _, x := range c {
		if equal(x, v) {
			return true
		}
	}
	return false
}

func distinct(c Collection) Collection {
	var out Collection
	for _, v := range c {
		if !contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func ofType(c Collection, t *TypeNode) Collection {
	var out Collection
	for _, v := range c {
		if v.isType(t.Namespace, t.Name) {
			out = append(out, v)
		}
	}
	return out
}

// init precomputes the value of a literal.
func (n *LiteralNode) init() error {
	switch n.Kind {
	case LitBoolean:
		n.val = Boolean(n.Text == "true")
	case LitString:
		n.val = String(n.Text)
	case LitInteger:
		i, err := strconv.ParseInt(n.Text, 10, 64)
		if err != nil {
			return err
		}
		n.val = Integer(i)
	case LitDecimal:
		n.val = Decimal(n.Text)
	case LitDateTime:
		switch {
		case strings.HasPrefix(n.Text, "T"):
			n.val = Time(n.Text[1:])
		case strings.Contains(n.Text, "T"):
			n.val = DateTime(n.Text)
		default:
			n.val = Date(n.Text)
		}
	}
	if n.Kind != LitEmpty {
		n.coll = Collection{n.val}
	}
	return nil
}
