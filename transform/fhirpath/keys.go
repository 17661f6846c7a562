package fhirpath

import (
	"slices"
	"sync"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// Keys is a set of member names that plans look up on the resource
// (Context.Resource), such as the first steps of a view's paths. With
// Context.Keys set, the first plan that reads one of them after a Reset
// resolves all of them, choice elements included, in one pass over the
// resource's object; later reads of any of them cost an index. A Keys is
// immutable and safe for concurrent use. Member names are compared
// decoded, as every lookup does, and the first of duplicate names wins.
type Keys struct {
	names   []string
	ids     []int32     // parallel to names: memberID(name)
	byFirst [256][]int8 // first byte -> indices in names
	maxID   int32
	has     []bool // by memberID: the name is one of names
	// filter and byMatch are set by Bind: byMatch lists, by the match of
	// a member (2*name+exact, see jsondoc.Value.Match), the names it
	// resolves.
	filter  *jsondoc.Filter
	byMatch [][]keyMatch
}

// keyMatch is one name of a Keys that a member resolves: exactly or as a
// choice element.
type keyMatch struct {
	i     int8 // index in names
	exact bool
}

// Bounds of the names of a Keys. Below minKeys names, looking them up one
// by one costs less than a pass over every member of the resource.
const (
	minKeys = 4
	maxKeys = 127
)

// NewKeys returns the Keys of the member names the plans of exprs start
// with, or nil when they are too few to be worth it. Names beyond the
// first maxKeys are left out (they are then looked up one by one).
func NewKeys(exprs ...*Expr) *Keys {
	k := &Keys{maxID: -1}
	seen := map[string]bool{}
	for _, e := range exprs {
		if e == nil || e.plan == nil {
			continue
		}
		for _, steps := range e.plan.branches {
			if len(steps) == 0 || steps[0].kind != stepMember || seen[steps[0].name] || len(k.names) == maxKeys {
				continue
			}
			s := &steps[0]
			seen[s.name] = true
			k.byFirst[s.name[0]] = append(k.byFirst[s.name[0]], int8(len(k.names)))
			k.names = append(k.names, s.name)
			k.ids = append(k.ids, s.id)
			k.maxID = max(k.maxID, s.id)
		}
	}
	if len(k.names) < minKeys {
		return nil
	}
	k.has = make([]bool, k.maxID+1)
	for _, id := range k.ids {
		k.has[id] = true
	}
	return k
}

// Bind returns k for documents parsed with f (jsondoc.Parser.ParseFiltered):
// with Context.Filter set to f too, resolving the names reads what the
// parser recorded of each member (jsondoc.Value.Match) and compares no
// key. When a name of k is not one of f's, a member's match cannot tell
// whether it is that name, and Bind returns k as it is.
func (k *Keys) Bind(f *jsondoc.Filter) *Keys {
	if k == nil || f == nil {
		return k
	}
	fnames := f.Names()
	for _, n := range k.names {
		if !slices.Contains(fnames, n) {
			return k
		}
	}
	b := *k
	b.filter = f
	b.byMatch = make([][]keyMatch, 2*len(fnames))
	for j, fn := range fnames {
		for i, n := range k.names {
			// A member matching fn exactly is called fn; one matching it
			// as a choice element is called fn followed by an upper-case
			// letter. Either resolves n exactly when it is called n, and
			// as a choice element when its key is n followed by an
			// upper-case letter.
			if exact := n == fn; exact || isChoiceOf(fn, n) {
				b.byMatch[2*j+1] = append(b.byMatch[2*j+1], keyMatch{i: int8(i), exact: exact})
				b.byMatch[2*j] = append(b.byMatch[2*j], keyMatch{i: int8(i)})
			}
		}
	}
	return &b
}

// isChoiceOf reports whether key names a choice element of name: name
// followed by an upper-case letter.
func isChoiceOf(key, name string) bool {
	return len(key) > len(name) && key[len(name)] >= 'A' && key[len(name)] <= 'Z' && key[:len(name)] == name
}

// memberIDs numbers the member names of plan steps, so that a Context can
// keep what it resolved for a name in a slice rather than a map. Only Parse
// adds names.
var memberIDs = struct {
	sync.Mutex // guards m
	m          map[string]int32
}{m: map[string]int32{}}

func memberID(name string) int32 {
	memberIDs.Lock()
	defer memberIDs.Unlock()
	id, ok := memberIDs.m[name]
	if !ok {
		id = int32(len(memberIDs.m))
		memberIDs.m[name] = id
	}
	return id
}

// topSlot is what a Context resolved for one name of its Keys in the
// current document: valid when gen is the Context's.
type topSlot struct {
	gen   uint32
	exact bool // child is the member itself, not a choice element
	child *jsondoc.Value
	typ   string
}

// memberOf is member for a plan step: names of c.Keys read on the
// resource come from the one pass of resolveKeys.
func (c *Context) memberOf(o *jsondoc.Value, s *step) (*jsondoc.Value, string) {
	if c.Keys != nil && c.oneDoc && o == c.Resource.obj {
		if int(s.id) < len(c.top) {
			if t := &c.top[s.id]; t.gen == c.gen {
				return t.child, t.typ
			}
		}
		if !c.topDone {
			c.resolveKeys()
			if int(s.id) < len(c.top) {
				if t := &c.top[s.id]; t.gen == c.gen {
					return t.child, t.typ
				}
			}
		}
		if int(s.id) < len(c.Keys.has) && c.Keys.has[s.id] {
			return nil, "" // one of the Keys the resource does not have
		}
	}
	return c.member(o, s.name)
}

// resolveKeys fills c.top for the names of c.Keys from the resource's
// object, finding what member would: the first member of that name, else
// the first choice element (name followed by an upper-case letter).
func (c *Context) resolveKeys() {
	c.topDone = true
	k := c.Keys
	if int(k.maxID) >= len(c.top) {
		c.top = append(c.top, make([]topSlot, int(k.maxID)+1-len(c.top))...)
	}
	if c.Resource.obj.Type() != jsondoc.TypeObject {
		return
	}
	if k.filter != nil && k.filter == c.Filter {
		for v := c.Resource.obj.First(); v != nil; v = v.Next() {
			name, exact := v.Match()
			if name < 0 {
				continue
			}
			m := 2 * name
			if exact {
				m++
			}
			for _, km := range k.byMatch[m] {
				c.found(int(km.i), v, km.exact)
			}
		}
		return
	}
	for v := c.Resource.obj.First(); v != nil; v = v.Next() {
		key := v.Key()
		if len(key) == 0 {
			continue
		}
		for _, i := range k.byFirst[key[0]] {
			name := k.names[i]
			if exact := key == name; exact || isChoiceOf(key, name) {
				c.found(int(i), v, exact)
			}
		}
	}
}

// found records that member v of the resource is name i of c.Keys, exactly
// or as a choice element: the first exact member wins, else the first
// choice element.
func (c *Context) found(i int, v *jsondoc.Value, exact bool) {
	t := &c.top[c.Keys.ids[i]]
	if t.gen != c.gen { // first sight in this document
		*t = topSlot{gen: c.gen}
	}
	switch {
	case exact && !t.exact:
		t.exact, t.child, t.typ = true, v, ""
	case !exact && t.child == nil:
		t.child, t.typ = v, choiceType(v.Key()[len(c.Keys.names[i]):])
	}
}

// MemberNames returns the member names e can read, in order of first
// appearance: every name navigated, plus "extension" when e calls
// extension(). whole is true when e can reach the resource object itself
// (through %resource, %rootResource, $this or a type name such as
// "Patient.name"), and with it members it never names, such as in a
// comparison or a rendering of the whole object. A reader may leave out of
// a resource every top-level member an expression does not name, or
// choice elements of one it names, unless whole is true.
func (e *Expr) MemberNames() (names []string, whole bool) {
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	walk(e.root, func(n Node) {
		switch n := n.(type) {
		case *MemberNode:
			if n.Target == nil && (n.Name == "" || n.Name[0] >= 'A' && n.Name[0] <= 'Z') {
				whole = true // may name the resource type
			}
			add(n.Name)
		case *FunctionNode:
			if n.Name == "extension" {
				add("extension")
			}
		case *ConstantNode:
			if n.Name == "resource" || n.Name == "rootResource" {
				whole = true
			}
		case *SpecialNode:
			whole = true
		}
	})
	return names, whole
}
