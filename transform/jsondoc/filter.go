package jsondoc

import "unsafe"

// A Filter names the members of a document's top-level object that
// ParseFiltered keeps. The others are still checked to be JSON, so a
// malformed document fails the same way, but they get no nodes: reading
// past a large member nobody asked for (a narrative, a component list a
// view does not use) costs a scan rather than a tree. A Filter is
// immutable and safe for concurrent use.
type Filter struct {
	byFirst [256][]string // first byte -> names
}

// NewFilter returns a Filter keeping the members called one of names, and
// the choice elements of those names: a member whose name is one of names
// followed by an upper-case ASCII letter ("valueQuantity" for "value").
func NewFilter(names ...string) *Filter {
	f := &Filter{}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		f.byFirst[n[0]] = append(f.byFirst[n[0]], n)
	}
	return f
}

// Keep reports whether the member called key is kept.
func (f *Filter) Keep(key string) bool {
	if key == "" {
		return false
	}
	for _, n := range f.byFirst[key[0]] {
		switch {
		case len(key) == len(n):
			if key == n {
				return true
			}
		case len(key) > len(n):
			if c := key[len(n)]; c >= 'A' && c <= 'Z' && key[:len(n)] == n {
				return true
			}
		}
	}
	return false
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

// skip checks the value starting at s[i] (not white space) as parse would
// and returns the offset after it, adding no nodes.
func (p *Parser) skip(i, depth int) (int, error) {
	s := p.in
	if i >= len(s) {
		return i, p.errorf(i, "unexpected end of input")
	}
	switch c := s[i]; c {
	case '{':
		return p.skipObject(i+1, depth+1)
	case '[':
		return p.skipArray(i+1, depth+1)
	case '"':
		return p.skipString(i + 1)
	case 't':
		return p.checkLiteral(i, "true")
	case 'f':
		return p.checkLiteral(i, "false")
	case 'n':
		return p.checkLiteral(i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return p.number(i)
		}
		return i, p.errorf(i, "expected a value")
	}
}

// skipString is str without keeping the text.
func (p *Parser) skipString(i int) (int, error) {
	s := p.in
	j := quoteOrBackslash(s, i)
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

func (p *Parser) skipObject(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, p.errorf(i, "nesting deeper than %d", MaxDepth)
	}
	s := p.in
	i = skipWS(s, i)
	if i < len(s) && s[i] == '}' {
		return i + 1, nil
	}
	for {
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
		if i, err = p.skip(skipWS(s, i+1), depth); err != nil {
			return i, err
		}
		var more bool
		if i, more, err = p.next(i, '}'); err != nil || !more {
			return i, err
		}
	}
}

func (p *Parser) skipArray(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, p.errorf(i, "nesting deeper than %d", MaxDepth)
	}
	s := p.in
	i = skipWS(s, i)
	if i < len(s) && s[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = p.skip(i, depth); err != nil {
			return i, err
		}
		var more bool
		if i, more, err = p.next(i, ']'); err != nil || !more {
			return i, err
		}
	}
}
