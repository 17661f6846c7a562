package jsondoc

import "unsafe"

// A Filter names the members of a document's top-level object that
// ParseFiltered keeps. The others are still checked to be JSON, so a
// malformed document fails the same way, but they get no nodes: reading
// past a large member nobody asked for (a narrative, a component list a
// view does not use) costs a scan rather than a tree. Each kept member
// also records which name it matched (see Value.Match), so that a reader
// looking for several names finds them without comparing keys again. A
// Filter is immutable and safe for concurrent use.
type Filter struct {
	names   []string
	byFirst [256][]int32 // first byte -> indices in names
}

// NewFilter returns a Filter keeping the members called one of names, and
// the choice elements of those names: a member whose name is one of names
// followed by an upper-case ASCII letter ("valueQuantity" for "value").
// Empty and repeated names are dropped; Names lists the others.
func NewFilter(names ...string) *Filter {
	f := &Filter{}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		f.byFirst[n[0]] = append(f.byFirst[n[0]], int32(len(f.names)))
		f.names = append(f.names, n)
	}
	return f
}

// Names returns the names of f, in the order Value.Match numbers them.
func (f *Filter) Names() []string { return f.names }

// Keep reports whether the member called key is kept.
func (f *Filter) Keep(key string) bool { return f.match(key) != 0 }

// match returns the tag of key (see Value.Match), 0 when f does not keep
// it: the longest name key matches, exactly or as a choice element. Every
// other name it matches is then a choice-element prefix of that one.
func (f *Filter) match(key string) uint32 {
	if key == "" {
		return 0
	}
	var best uint32
	bestLen := -1
	for _, i := range f.byFirst[key[0]] {
		n := f.names[i]
		switch {
		case len(key) == len(n):
			if key == n {
				return uint32(i)<<1 | 1 + 2 // nothing is longer than key itself
			}
		case len(key) > len(n):
			if c := key[len(n)]; len(n) > bestLen && c >= 'A' && c <= 'Z' && key[:len(n)] == n {
				best, bestLen = uint32(i)<<1+2, len(n)
			}
		}
	}
	return best
}

// ParseFiltered is Parse keeping only the members of a top-level object
// that f keeps (all of them when f is nil). Members below the top level
// are always kept.
func (p *Parser) ParseFiltered(b []byte, f *Filter) (*Value, error) {
	if len(b) == 0 {
		return nil, ErrEmpty
	}
	p.filter = f
	v, err := p.parse(unsafe.String(&b[0], len(b)))
	p.filter = nil
	return v, err
}

// skip checks the value starting at s[i] (not white space) as parse would,
// with the same errors, and returns the offset after it, adding no nodes.
// It is a loop over an explicit stack of the open objects and arrays
// rather than a recursion: skipping is all tokens and no nodes, so the
// calls would be most of its cost.
func (p *Parser) skip(i, depth int) (int, error) {
	s := p.in
	open := p.open[:0] // '{' or '[' per open container, innermost last
	defer func() { p.open = open[:0] }()
	var err error
	for {
		// A value, or white space before one, starts at s[i].
		if i >= len(s) {
			return i, p.errorf(i, "unexpected end of input")
		}
		switch c := s[i]; c {
		case '{', '[':
			if depth+len(open)+1 > MaxDepth {
				return i + 1, p.errorf(i+1, "nesting deeper than %d", MaxDepth)
			}
			open = append(open, c)
			i = skipWS(s, i+1)
			if i < len(s) && s[i] == c+2 { // '}' and ']' are '{' and '[' plus 2
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if j := p.plainName(i); j >= 0 {
					i = j
				} else if i, err = p.skipName(i); err != nil {
					return i, err
				}
			}
			continue
		case '"':
			// The usual string, without an escape, inline; skipString
			// decodes escapes and reports errors.
			if j := p.quote(i + 1); j < len(s) && s[j] == '"' {
				i = j + 1
				break
			}
			i, err = p.skipString(i + 1)
		case 't':
			i, err = p.checkLiteral(i, "true")
		case 'f':
			i, err = p.checkLiteral(i, "false")
		case 'n':
			i, err = p.checkLiteral(i, "null")
		case ' ', '\t', '\n', '\r':
			// Compact JSON has none; the fast paths below leave it here.
			i = skipWS(s, i)
			continue
		default:
			if c != '-' && (c < '0' || c > '9') {
				return i, p.errorf(i, "expected a value")
			}
			i, err = p.number(i)
		}
		if err != nil {
			return i, err
		}
		// After a value: close what ends here, then go on to the next
		// member or element.
		for {
			if len(open) == 0 {
				return i, nil
			}
			top := open[len(open)-1]
			var more bool
			if i < len(s) && s[i] == ',' { // the usual case, inline
				i, more = i+1, true
			} else if i, more, err = p.next(i, top+2); err != nil {
				return i, err
			}
			if !more {
				open = open[:len(open)-1]
				continue
			}
			if top == '{' {
				if j := p.plainName(i); j >= 0 {
					i = j
				} else if i, err = p.skipName(skipWS(s, i)); err != nil {
					return i, err
				}
			}
			break
		}
	}
}

// plainName returns the offset after the usual member name at s[i],
// without an escape or white space, and the ':' right after it; -1 for
// any other, which skipName then reads, with its errors.
func (p *Parser) plainName(i int) int {
	s := p.in
	if i < len(s) && s[i] == '"' {
		if j := p.quote(i + 1); j+1 < len(s) && s[j] == '"' && s[j+1] == ':' {
			return j + 2
		}
	}
	return -1
}

// skipName checks a member name and its ':' starting at s[i] and returns
// the offset of the value.
func (p *Parser) skipName(i int) (int, error) {
	s := p.in
	if i >= len(s) || s[i] != '"' {
		return i, p.errorf(i, "expected a member name")
	}
	j, err := p.skipString(i + 1)
	if err != nil {
		return j, err
	}
	i = skipWS(s, j)
	if i >= len(s) || s[i] != ':' {
		return i, p.errorf(i, "expected ':' after a member name")
	}
	return skipWS(s, i+1), nil
}

// skipString is str without keeping the text.
func (p *Parser) skipString(i int) (int, error) {
	s := p.in
	j := p.quote(i)
	if j >= len(s) {
		return len(s), p.errorf(i-1, "unterminated string")
	}
	if s[j] == '"' {
		return j + 1, nil
	}
	mark := len(p.buf) // decode to check the escapes, then drop the text
	_, j, err := p.escaped(i)
	p.buf = p.buf[:mark]
	return j, err
}
