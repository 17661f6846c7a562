package fhirpath

import (
	"strings"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// A plan is a faster evaluation strategy for the shapes of path that views
// use most, compiled by Parse next to the syntax tree:
//
//	a.b.c                         member chains
//	x.where(pred).y.first()       where, first, ofType(T), extension('url'),
//	                              getReferenceKey(T), getResourceKey() steps
//	(chain | chain | ...).first() unions read for their first item
//	chain.exists(), chain.exists(pred)
//
// where pred is built from member chains compared with a string literal
// (=, !=), startsWith('lit'), exists(), exists(pred) and empty(), joined by
// and/or and negated by not().
//
// A plan walks the JSON document directly, item by item, and stops as soon
// as a first() has its item, instead of building every intermediate
// collection. It never decides anything the general evaluator would decide
// differently: where the data is not of the shape it handles (several
// items where a function wants one, a non-string where a string function
// wants one), it gives up and Eval runs the general evaluator, which then
// reports the same result or error it always did. Early exit is used only
// when no step could have failed on the items it skips.
type plan struct {
	branches [][]step // one chain, or the branches of a union read with first()
	union    bool     // (b1 | b2 | ...).first(): the first item of the first non-empty branch
	exists   bool     // the chain ends in exists(): a boolean
	stopOK   bool     // no step can give up, so the walk may stop early
	firsts   int      // first() steps, each with its own slot in runner.done
}

type stepKind uint8

const (
	stepMember       stepKind = iota + 1 // children called name, arrays flattened, choice elements found
	stepWhere                            // items for which pred is true
	stepOfType                           // items of type ns.name
	stepFirst                            // the first item
	stepExtension                        // objects whose url is name (after an extension member step)
	stepReferenceKey                     // getReferenceKey(name), name "" for any type
	stepResourceKey                      // getResourceKey()
)

type step struct {
	kind     stepKind
	name, ns string
	pred     *pred
	slot     int   // stepFirst: index in runner.done
	id       int32 // stepMember: memberID(name)
}

// needsObject reports steps that pass over every item but an object.
func (s *step) needsObject() bool {
	switch s.kind {
	case stepMember, stepExtension, stepReferenceKey, stepResourceKey:
		return true
	}
	return false
}

type predOp uint8

const (
	predEq         predOp = iota + 1 // path = 'lit'
	predNe                           // path != 'lit'
	predStartsWith                   // path.startsWith('lit')
	predExists                       // path.exists() or path.exists(sub)
	predEmpty                        // path.empty()
	predNot                          // sub.not()
	predAnd
	predOr
)

// pred is a compiled where or exists criterion.
type pred struct {
	op      predOp
	path    []string // member names from the item
	lit     string
	sub     *pred // predExists with a criterion; predAnd, predOr: left
	right   *pred // predAnd, predOr
	mayFail bool  // evaluation may give up (and the general evaluator fail)
}

// maxFirsts bounds the first() steps of a plan.
const maxFirsts = 8

// runner is the state of one plan evaluation. It lives in the Context and
// is reused.
type runner struct {
	ev     evaluator
	stopOK bool
	bail   bool
	done   [maxFirsts]bool
	js     []*jsondoc.Value // the values of predicate paths, used as a stack
	out    Collection       // what the plan produced so far
	// With one set (evalOne), the items are counted in n rather than
	// collected in out, and only the first is kept.
	one   bool
	n     int
	first Value
}

// compilePlan returns a plan for root, or nil when root has another shape.
func compilePlan(root Node) *plan {
	p := &plan{}
	c := &planCompiler{p: p}
	if f, ok := root.(*FunctionNode); ok && f.Name == "first" && f.Target != nil {
		if par, ok := f.Target.(*ParenNode); ok {
			if b, ok := par.Expr.(*BinaryNode); ok && b.Op == "|" {
				var operands []Node
				if !unionOperands(b, &operands) {
					return nil
				}
				for _, o := range operands {
					steps, ok := c.chain(o)
					if !ok {
						return nil
					}
					steps = append(steps, step{kind: stepFirst, slot: c.slot()})
					p.branches = append(p.branches, steps)
				}
				p.union = true
				if c.mayFail || p.firsts > maxFirsts {
					return nil // a skipped branch could have failed
				}
				p.stopOK = true
				return p
			}
		}
	}
	if f, ok := root.(*FunctionNode); ok && f.Name == "exists" {
		var steps []step
		if f.Target != nil {
			var ok bool
			if steps, ok = c.chain(f.Target); !ok {
				return nil
			}
		}
		if len(f.Args) == 1 {
			pr, ok := c.pred(f.Args[0])
			if !ok {
				return nil
			}
			steps = append(steps, step{kind: stepWhere, pred: pr})
		}
		steps = append(steps, step{kind: stepFirst, slot: c.slot()})
		p.branches, p.exists = [][]step{steps}, true
	} else {
		steps, ok := c.chain(root)
		if !ok {
			return nil
		}
		p.branches = [][]step{steps}
	}
	if p.firsts > maxFirsts {
		return nil
	}
	p.stopOK = !c.mayFail
	return p
}

func unionOperands(n Node, out *[]Node) bool {
	if b, ok := n.(*BinaryNode); ok && b.Op == "|" {
		return unionOperands(b.Left, out) && unionOperands(b.Right, out)
	}
	*out = append(*out, n)
	return true
}

type planCompiler struct {
	p       *plan
	mayFail bool
}

func (c *planCompiler) slot() int {
	c.p.firsts++
	return c.p.firsts - 1
}

// chain compiles a path of member and supported function steps.
func (c *planCompiler) chain(n Node) ([]step, bool) {
	switch n := n.(type) {
	case *ParenNode:
		return c.chain(n.Expr)
	case *MemberNode:
		if n.Target == nil {
			if n.Name == "" || n.Name[0] >= 'A' && n.Name[0] <= 'Z' {
				return nil, false // may name the resource type
			}
			return []step{memberStep(n.Name)}, true
		}
		steps, ok := c.chain(n.Target)
		return append(steps, memberStep(n.Name)), ok
	case *FunctionNode:
		var steps []step
		if n.Target != nil {
			var ok bool
			if steps, ok = c.chain(n.Target); !ok {
				return nil, false
			}
		}
		switch n.Name {
		case "first":
			return append(steps, step{kind: stepFirst, slot: c.slot()}), true
		case "where":
			pr, ok := c.pred(n.Args[0])
			return append(steps, step{kind: stepWhere, pred: pr}), ok
		case "ofType":
			t := n.Args[0].(*TypeNode)
			return append(steps, step{kind: stepOfType, ns: t.Namespace, name: t.Name}), true
		case "extension":
			lit, ok := n.Args[0].(*LiteralNode)
			if !ok || lit.Kind != LitString {
				return nil, false
			}
			return append(steps, memberStep("extension"), step{kind: stepExtension, name: lit.Text}), true
		case "getReferenceKey":
			s := step{kind: stepReferenceKey}
			if len(n.Args) == 1 {
				s.name = n.Args[0].(*TypeNode).Name
			}
			return append(steps, s), true
		case "getResourceKey":
			return append(steps, step{kind: stepResourceKey}), true
		}
	}
	return nil, false
}

func memberStep(name string) step {
	return step{kind: stepMember, name: name, id: memberID(name)}
}

// members compiles a plain member chain, as used inside predicates.
func members(n Node) ([]string, bool) {
	switch n := n.(type) {
	case *ParenNode:
		return members(n.Expr)
	case *MemberNode:
		if n.Target == nil {
			if n.Name == "" || n.Name[0] >= 'A' && n.Name[0] <= 'Z' {
				return nil, false
			}
			return []string{n.Name}, true
		}
		names, ok := members(n.Target)
		return append(names, n.Name), ok
	}
	return nil, false
}

func (c *planCompiler) pred(n Node) (*pred, bool) {
	pr, ok := compilePred(n)
	if ok && pr.mayFail {
		c.mayFail = true
	}
	return pr, ok
}

func compilePred(n Node) (*pred, bool) {
	switch n := n.(type) {
	case *ParenNode:
		return compilePred(n.Expr)
	case *BinaryNode:
		switch n.Op {
		case "and", "or":
			l, ok1 := compilePred(n.Left)
			r, ok2 := compilePred(n.Right)
			if !ok1 || !ok2 {
				return nil, false
			}
			op := predAnd
			if n.Op == "or" {
				op = predOr
			}
			return &pred{op: op, sub: l, right: r, mayFail: l.mayFail || r.mayFail}, true
		case "=", "!=":
			path, ok := members(n.Left)
			lit, isLit := n.Right.(*LiteralNode)
			if !ok || !isLit || lit.Kind != LitString {
				return nil, false
			}
			op := predEq
			if n.Op == "!=" {
				op = predNe
			}
			return &pred{op: op, path: path, lit: lit.Text}, true
		}
	case *FunctionNode:
		if n.Name == "not" {
			if n.Target == nil {
				return nil, false
			}
			sub, ok := compilePred(n.Target)
			if !ok {
				return nil, false
			}
			return &pred{op: predNot, sub: sub, mayFail: sub.mayFail}, true
		}
		var path []string
		if n.Target != nil {
			var ok bool
			if path, ok = members(n.Target); !ok {
				return nil, false
			}
		}
		switch n.Name {
		case "startsWith":
			lit, ok := n.Args[0].(*LiteralNode)
			if !ok || lit.Kind != LitString || n.Target == nil {
				return nil, false
			}
			return &pred{op: predStartsWith, path: path, lit: lit.Text, mayFail: true}, true
		case "exists":
			p := &pred{op: predExists, path: path}
			if len(n.Args) == 1 {
				sub, ok := compilePred(n.Args[0])
				if !ok {
					return nil, false
				}
				p.sub, p.mayFail = sub, sub.mayFail
			}
			return p, true
		case "empty":
			return &pred{op: predEmpty, path: path}, true
		}
	}
	return nil, false
}

// eval runs the plan over focus; ok is false when the general evaluator
// must decide.
func (p *plan) eval(ctx *Context, focus Collection) (Collection, bool) {
	r := &ctx.run
	r.ev = evaluator{ctx: ctx}
	r.one = false
	r.out = r.ev.rest()
	if !p.run(ctx, focus) {
		r.out = nil
		return nil, false
	}
	out := r.out
	r.out = nil
	if p.exists {
		return boolColl(len(out) > 0), true
	}
	return r.ev.keep(out), true
}

// evalOne is eval for a caller that wants one item (see Expr.EvalOne):
// it returns the first item, held by the runner, and the number of
// items, counting no further than 2.
func (p *plan) evalOne(ctx *Context, focus Collection) (v *Value, n int, ok bool) {
	r := &ctx.run
	r.ev.ctx = ctx // the runner reads only the evaluator's context
	r.one, r.n = true, 0
	if !p.run(ctx, focus) {
		return nil, 0, false
	}
	if p.exists {
		r.first = Boolean(r.n > 0)
		return &r.first, 1, true
	}
	return &r.first, min(r.n, 2), true
}

// run feeds focus to the plan's branches; it returns false when the plan
// gave up.
func (p *plan) run(ctx *Context, focus Collection) bool {
	r := &ctx.run
	r.stopOK, r.bail = p.stopOK, false
	clear(r.done[:p.firsts])
	r.js = r.js[:0]
	if len(p.branches) == 1 && len(focus) == 1 { // a column of the resource
		r.push(p.branches[0], &focus[0])
		return !r.bail
	}
	for _, steps := range p.branches {
		for i := range focus {
			if r.push(steps, &focus[i]) {
				break
			}
		}
		if r.bail {
			return false
		}
		if p.union && r.found() {
			break
		}
	}
	return true
}

// found reports whether the plan produced an item.
func (r *runner) found() bool {
	if r.one {
		return r.n > 0
	}
	return len(r.out) > 0
}

// push feeds v to steps, appending what comes out of the last one to
// r.out. It returns true when nothing more should be fed: a first() has
// its item and early exit is allowed, or the plan gave up (r.bail). v is
// only read.
func (r *runner) push(steps []step, v *Value) bool {
	if len(steps) == 0 {
		if r.one {
			if r.n == 0 {
				r.first = *v
			}
			r.n++
			// A second item settles it: several.
			return r.n > 1 && r.stopOK
		}
		r.out = append(r.out, *v)
		return false
	}
	s := &steps[0]
	switch s.kind {
	case stepMember:
		if v.kind != KindObject {
			return false
		}
		child, typ := r.ev.ctx.memberOf(v.obj, s)
		if child == nil {
			return false
		}
		// When the next step reads only objects, other items need no Value.
		objects := len(steps) > 1 && steps[1].needsObject()
		var item Value
		if child.Type() == jsondoc.TypeArray {
			for e := child.First(); e != nil; e = e.Next() {
				if objects {
					if e.Type() != jsondoc.TypeObject {
						continue
					}
					item = Value{kind: KindObject, obj: e}
				} else {
					var ok bool
					if item, ok = r.ev.fromJSON(e); !ok {
						continue
					}
				}
				item.typ = typ
				if r.push(steps[1:], &item) {
					return true
				}
			}
			return false
		}
		if objects {
			if child.Type() != jsondoc.TypeObject {
				return false
			}
			item = Value{kind: KindObject, obj: child, typ: typ}
			return r.push(steps[1:], &item)
		}
		var ok bool
		if item, ok = r.ev.fromJSON(child); !ok {
			return false
		}
		item.typ = typ
		return r.push(steps[1:], &item)
	case stepWhere:
		if v.kind != KindObject {
			r.bail = true // rare: let the general evaluator read it
			return true
		}
		b, ok := r.test(s.pred, v.obj)
		if r.bail {
			return true
		}
		if ok && b {
			return r.push(steps[1:], v)
		}
	case stepOfType:
		if v.isType(s.ns, s.name) {
			return r.push(steps[1:], v)
		}
	case stepFirst:
		if r.done[s.slot] {
			return false // only reached when early exit is not allowed
		}
		r.done[s.slot] = true
		return r.push(steps[1:], v) || r.stopOK
	case stepExtension:
		if v.kind == KindObject && v.obj.Get("url").Str() == s.name {
			return r.push(steps[1:], v)
		}
	case stepReferenceKey:
		if v.kind != KindObject {
			return false
		}
		typ, id, ok := SplitReference(v.obj.Get("reference").Str())
		if ok && (s.name == "" || typ == s.name) {
			item := String(id)
			return r.push(steps[1:], &item)
		}
	case stepResourceKey:
		if v.kind != KindObject {
			return false
		}
		if v.obj.Get("resourceType") == nil && r.ev.ctx.Resource.kind == KindObject {
			v = &r.ev.ctx.Resource
		}
		if id, ok := v.obj.GetString("id"); ok {
			item := String(id)
			return r.push(steps[1:], &item)
		}
	}
	return false
}

// leaves appends to r.js the JSON values that path reaches from j, the
// way member navigation finds them (arrays flattened, nulls and nested
// arrays skipped, choice elements found), stopping after limit values (0:
// no limit); it returns how many it appended. Predicates need no Values:
// what they compare is read from the JSON directly.
func (r *runner) leaves(j *jsondoc.Value, path []string, limit int) int {
	if len(path) == 0 {
		if t := j.Type(); t == jsondoc.TypeNull || t == jsondoc.TypeArray {
			return 0
		}
		r.js = append(r.js, j)
		return 1
	}
	if j.Type() != jsondoc.TypeObject {
		return 0
	}
	child, _ := r.ev.ctx.member(j, path[0])
	if child == nil {
		return 0
	}
	if child.Type() != jsondoc.TypeArray {
		return r.leaves(child, path[1:], limit)
	}
	n := 0
	for e := child.First(); e != nil; e = e.Next() {
		if limit > 0 && n >= limit {
			break
		}
		n += r.leaves(e, path[1:], limit-n)
	}
	return n
}

// test evaluates pr with focus j the way a where or exists argument is
// read: ok is false for an empty result. It sets r.bail when the general
// evaluator must decide.
func (r *runner) test(pr *pred, j *jsondoc.Value) (b, ok bool) {
	switch pr.op {
	case predAnd, predOr:
		lb, lok := r.test(pr.sub, j)
		rb, rok := r.test(pr.right, j)
		if r.bail {
			return false, false
		}
		if pr.op == predAnd {
			if (lok && !lb) || (rok && !rb) {
				return false, true
			}
			return true, lok && rok
		}
		if (lok && lb) || (rok && rb) {
			return true, true
		}
		return false, lok && rok
	case predNot:
		b, ok := r.test(pr.sub, j)
		return !b && ok, ok
	}
	base := len(r.js)
	switch pr.op {
	case predEq, predNe:
		if len(pr.path) == 1 && j.Type() == jsondoc.TypeObject {
			// The usual case, system = 'x': one string child.
			if child := j.Get(pr.path[0]); child != nil && child.Type() == jsondoc.TypeString {
				return (child.Str() == pr.lit) == (pr.op == predEq), true
			}
		}
		n := r.leaves(j, pr.path, 2)
		if n == 0 {
			return false, false
		}
		// Only JSON strings are textual; numbers, booleans and objects
		// never equal a string.
		leaf := r.js[base]
		r.js = r.js[:base]
		eq := n == 1 && leaf.Type() == jsondoc.TypeString && leaf.Str() == pr.lit
		return eq == (pr.op == predEq), true
	case predStartsWith:
		n := r.leaves(j, pr.path, 2)
		if n == 0 {
			return false, false
		}
		leaf := r.js[base]
		r.js = r.js[:base]
		if n > 1 || leaf.Type() != jsondoc.TypeString {
			r.bail = true
			return false, false
		}
		return strings.HasPrefix(leaf.Str(), pr.lit), true
	case predEmpty:
		n := r.leaves(j, pr.path, 1)
		r.js = r.js[:base]
		return n == 0, true
	case predExists:
		if pr.sub == nil {
			n := r.leaves(j, pr.path, 1)
			r.js = r.js[:base]
			return n > 0, true
		}
		n := r.leaves(j, pr.path, 0)
		found := false
		for i := range n {
			sb, sok := r.test(pr.sub, r.js[base+i])
			if r.bail {
				break
			}
			if sok && sb {
				found = true
				if !pr.mayFail {
					break
				}
			}
		}
		r.js = r.js[:base]
		return found, !r.bail
	}
	return false, false
}
