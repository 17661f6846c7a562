// Package jsondoc parses one JSON document into a flat, reusable tree,
// built for reading NDJSON resources fast: a Parser keeps its nodes in one
// slice that the next Parse overwrites, so parsing a line allocates
// nothing once the slice has grown to the largest line, and releasing a
// document costs nothing.
//
// Why not a library: valyala/fastjson (which this replaced) builds a
// pointer tree of per-object slices that it must clear before every
// parse, and unescapes every key and string again on first access. Here
// the nodes of a document are contiguous, members are found by walking
// siblings, and escapes are decoded once, during the parse, only where a
// backslash occurs (rare in FHIR data). In fhirlake's transform benchmark
// that is most of the difference between the two. Before the parse, one
// pass over the document marks its quotes and backslashes (quotes.go), so
// the end of every string is found without scanning the string.
//
// Strictness: the grammar of RFC 8259 is enforced (structure, literals,
// number syntax, escape sequences, no trailing data), with two exceptions
// shared with fastjson: raw control characters inside strings and invalid
// UTF-8 are accepted as they are. Checking them would mean reading every
// byte of every string one at a time.
package jsondoc

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Type is the JSON type of a Value.
type Type uint8

// JSON types.
const (
	TypeNull Type = iota + 1
	TypeObject
	TypeArray
	TypeString
	TypeNumber
	TypeTrue
	TypeFalse
)

func (t Type) String() string {
	switch t {
	case TypeNull:
		return "null"
	case TypeObject:
		return "object"
	case TypeArray:
		return "array"
	case TypeString:
		return "string"
	case TypeNumber:
		return "number"
	case TypeTrue:
		return "true"
	case TypeFalse:
		return "false"
	}
	return "invalid"
}

// MaxDepth is the deepest nesting of objects and arrays Parse accepts.
const MaxDepth = 300

// Value is a node of a parsed document: the document itself, an array
// element or an object member. It is valid until the next Parse on the
// Parser that returned it. A nil *Value is accepted by every method and
// behaves as an absent value.
//
// The nodes of a document lie in one slice in document order, so the
// children of a node follow it and a node finds its first child and its
// next sibling by pointer arithmetic within that slice (see First and
// Next). A node holds no pointer to its parser: that keeps nodes small and
// their writes cheap, which is most of what parsing costs.
type Value struct {
	s    string // TypeString: the decoded text; TypeNumber: the number's text
	key  string // the decoded member name when the parent is an object
	n    int32  // TypeObject, TypeArray: number of children
	next int32  // nodes from this one to its next sibling, 0 when last
	t    Type
	// tag is what the filter matched for a top-level member (see Match):
	// 2 + (index of the name)<<1 | exact; 0 when parsed without a filter.
	// It fits in the padding after t.
	tag uint32
}

// Parser parses documents. The zero Parser is ready to use. A Parser is
// not safe for concurrent use; each goroutine needs its own.
type Parser struct {
	nodes  []Value
	buf    []byte   // decoded escaped strings of the current document
	in     string   // the document being parsed
	filter *Filter  // the members of a top-level object to keep; nil: all
	open   []byte   // skip's stack, reused
	qbits  []uint64 // the quote index of the document (see indexQuotes)
}

// SyntaxError is a document that is not JSON. It holds the byte offset of
// the problem, never the document's content.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// ErrEmpty is returned by Parse for a document of only white space.
var ErrEmpty = errors.New("empty JSON document")

// Parse parses b and returns its root. The values alias b, which must not
// change while they are in use; they are valid until the next Parse.
func (p *Parser) Parse(b []byte) (*Value, error) {
	if len(b) == 0 {
		return nil, ErrEmpty
	}
	return p.ParseString(unsafe.String(&b[0], len(b)))
}

// ParseString is Parse for a string.
func (p *Parser) ParseString(s string) (*Value, error) {
	p.filter = nil
	return p.parse(s)
}

func (p *Parser) parse(s string) (*Value, error) {
	p.nodes = p.nodes[:0]
	p.buf = p.buf[:0]
	p.in = s
	p.indexQuotes(s)
	i := skipWS(s, 0)
	if i == len(s) {
		return nil, ErrEmpty
	}
	i, err := p.value(i, 0)
	if err != nil {
		return nil, err
	}
	if i = skipWS(s, i); i != len(s) {
		return nil, p.errorf(i, "unexpected data after the top-level value")
	}
	return &p.nodes[0], nil
}

// errorf returns a SyntaxError at off; past the end of the input, every
// problem is that the input ended too soon.
func (p *Parser) errorf(off int, format string, args ...any) error {
	if off >= len(p.in) {
		return &SyntaxError{Offset: len(p.in), Msg: "unexpected end of input"}
	}
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func skipWS(s string, i int) int {
	if i < len(s) && s[i] > ' ' {
		return i // the usual case: no white space at all
	}
	for i < len(s) {
		switch s[i] {
		case ' ', '\n', '\r', '\t':
			i++
		default:
			return i
		}
	}
	return i
}

// add appends a node and returns its index.
func (p *Parser) add(t Type) int32 {
	k := int32(len(p.nodes))
	if len(p.nodes) < cap(p.nodes) {
		p.nodes = p.nodes[:k+1]
		p.nodes[k] = Value{t: t}
	} else {
		p.nodes = append(p.nodes, Value{t: t})
	}
	return k
}

// value parses the value starting at s[i], after any white space, into a
// new node and returns the offset after it. Compact JSON, the usual
// NDJSON, has no white space between tokens, so the callers do not look
// for it before a value: the switch here finds it when there is some.
func (p *Parser) value(i, depth int) (int, error) {
	s := p.in
	if i >= len(s) {
		return i, p.errorf(i, "unexpected end of input")
	}
	switch c := s[i]; c {
	case '{':
		return p.object(i+1, depth+1)
	case '[':
		return p.array(i+1, depth+1)
	case '"':
		k := p.add(TypeString)
		str, j, err := p.str(i + 1)
		if err != nil {
			return j, err
		}
		p.nodes[k].s = str
		return j, nil
	case 't':
		return p.literal(i, "true", TypeTrue)
	case 'f':
		return p.literal(i, "false", TypeFalse)
	case 'n':
		return p.literal(i, "null", TypeNull)
	case ' ', '\t', '\n', '\r':
		return p.value(skipWS(s, i), depth)
	default:
		if c == '-' || c >= '0' && c <= '9' {
			j, err := p.number(i)
			if err != nil {
				return j, err
			}
			k := p.add(TypeNumber)
			p.nodes[k].s = s[i:j]
			return j, nil
		}
		return i, p.errorf(i, "expected a value")
	}
}

func (p *Parser) literal(i int, lit string, t Type) (int, error) {
	j, err := p.checkLiteral(i, lit)
	if err == nil {
		p.add(t)
	}
	return j, err
}

func (p *Parser) checkLiteral(i int, lit string) (int, error) {
	if len(p.in)-i < len(lit) || p.in[i:i+len(lit)] != lit {
		return i, p.errorf(i, "invalid literal")
	}
	return i + len(lit), nil
}

// number checks the number starting at s[i] and returns its end.
func (p *Parser) number(i int) (int, error) {
	s := p.in
	start := i
	if s[i] == '-' {
		i++
	}
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return i, p.errorf(start, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return i, p.errorf(start, "invalid number")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return i, p.errorf(start, "invalid number")
		}
	}
	return i, nil
}

// str reads the string whose content starts at s[i] (after the opening
// quote) and returns its decoded text and the offset after the closing
// quote.
func (p *Parser) str(i int) (string, int, error) {
	s := p.in
	j := p.quote(i)
	if j >= len(s) {
		return "", len(s), p.errorf(i-1, "unterminated string")
	}
	if s[j] == '\\' {
		return p.escaped(i)
	}
	return s[i:j], j + 1, nil
}

// escaped decodes the string whose content starts at s[i] and holds an
// escape, into p.buf.
func (p *Parser) escaped(i int) (string, int, error) {
	s := p.in
	start := len(p.buf)
	for j := i; j < len(s); {
		c := s[j]
		switch c {
		case '"':
			p.buf = append(p.buf, s[i:j]...)
			b := p.buf[start:]
			if len(b) == 0 {
				return "", j + 1, nil
			}
			return unsafe.String(&b[0], len(b)), j + 1, nil
		case '\\':
			p.buf = append(p.buf, s[i:j]...)
			if j+1 >= len(s) {
				return "", j, p.errorf(j, "unterminated string")
			}
			esc := s[j+1]
			j += 2
			switch esc {
			case '"', '\\', '/':
				p.buf = append(p.buf, esc)
			case 'b':
				p.buf = append(p.buf, '\b')
			case 'f':
				p.buf = append(p.buf, '\f')
			case 'n':
				p.buf = append(p.buf, '\n')
			case 'r':
				p.buf = append(p.buf, '\r')
			case 't':
				p.buf = append(p.buf, '\t')
			case 'u':
				r, ok := hex4(s, j)
				if !ok {
					return "", j, p.errorf(j-2, "invalid \\u escape")
				}
				j += 4
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by \u low surrogate
					// is one code point; a lone one becomes U+FFFD.
					if len(s)-j >= 6 && s[j] == '\\' && s[j+1] == 'u' {
						if r2, ok := hex4(s, j+2); ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								r = d
								j += 6
							}
						}
					}
					if utf16.IsSurrogate(r) {
						r = utf8.RuneError
					}
				}
				p.buf = utf8.AppendRune(p.buf, r)
			default:
				return "", j, p.errorf(j-2, "invalid escape")
			}
			i = j
		default:
			j++
		}
	}
	return "", len(s), p.errorf(i, "unterminated string")
}

func hex4(s string, i int) (rune, bool) {
	if len(s)-i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(n), true
}

// object parses the members of an object whose '{' is before s[i].
// Members of a top-level object that p.filter does not keep are checked
// but get no nodes.
func (p *Parser) object(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, p.errorf(i, "nesting deeper than %d", MaxDepth)
	}
	s := p.in
	k := p.add(TypeObject)
	i = skipWS(s, i)
	if i < len(s) && s[i] == '}' {
		return i + 1, nil
	}
	var n, prev int32 = 0, -1
	for more := true; more; {
		if i >= len(s) || s[i] != '"' {
			if i = skipWS(s, i); i >= len(s) || s[i] != '"' {
				return i, p.errorf(i, "expected a member name")
			}
		}
		key, j, err := p.str(i + 1)
		if err != nil {
			return j, err
		}
		if j < len(s) && s[j] == ':' { // the usual case, inline
			i = j + 1
		} else {
			if i = skipWS(s, j); i >= len(s) || s[i] != ':' {
				return i, p.errorf(i, "expected ':' after a member name")
			}
			i++
		}
		var tag uint32 // what the filter matched; 0 with none or none matched
		dropped := false
		if depth == 1 && p.filter != nil {
			tag = p.filter.match(key)
			dropped = tag == 0
		}
		if dropped {
			if i, err = p.skip(skipWS(s, i), depth); err != nil {
				return i, err
			}
		} else {
			child := int32(len(p.nodes))
			if i, err = p.value(i, depth); err != nil {
				return i, err
			}
			c := &p.nodes[child]
			c.key, c.tag = key, tag
			prev = p.link(prev, child)
			n++
		}
		if i < len(s) && s[i] == ',' { // the usual case, inline
			i++ // white space before the next name is skipped above
			continue
		}
		if i, more, err = p.next(i, '}'); err != nil {
			return i, err
		}
	}
	p.nodes[k].n = n
	return i, nil
}

// link makes child the sibling after prev (-1 for none) and returns it.
func (p *Parser) link(prev, child int32) int32 {
	if prev >= 0 {
		p.nodes[prev].next = child - prev
	}
	return child
}

// next reads what follows a member or an element up to the next one: it
// returns the offset of the next one and more after a ',', or the offset
// after close (the '}' of an object, the ']' of an array).
func (p *Parser) next(i int, close byte) (j int, more bool, err error) {
	s := p.in
	if i = skipWS(s, i); i < len(s) {
		switch s[i] {
		case ',':
			return skipWS(s, i+1), true, nil
		case close:
			return i + 1, false, nil
		}
	}
	if close == '}' {
		return i, false, p.errorf(i, "expected ',' or '}' in an object")
	}
	return i, false, p.errorf(i, "expected ',' or ']' in an array")
}

// array parses the elements of an array whose '[' is before s[i].
func (p *Parser) array(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, p.errorf(i, "nesting deeper than %d", MaxDepth)
	}
	s := p.in
	k := p.add(TypeArray)
	i = skipWS(s, i)
	if i < len(s) && s[i] == ']' {
		return i + 1, nil
	}
	var n, prev int32 = 0, -1
	for more := true; more; {
		child := int32(len(p.nodes))
		var err error
		if i, err = p.value(i, depth); err != nil {
			return i, err
		}
		prev = p.link(prev, child)
		n++
		if i < len(s) && s[i] == ',' { // the usual case, inline
			i++ // value skips white space before the next element
			continue
		}
		if i, more, err = p.next(i, ']'); err != nil {
			return i, err
		}
	}
	p.nodes[k].n = n
	return i, nil
}

// Type returns v's JSON type, 0 for a nil v.
func (v *Value) Type() Type {
	if v == nil {
		return 0
	}
	return v.t
}

// Str returns the decoded text of a string, the text of a number, and ""
// for anything else.
func (v *Value) Str() string {
	if v == nil {
		return ""
	}
	return v.s
}

// Key returns the member name of v when its parent is an object.
func (v *Value) Key() string {
	if v == nil {
		return ""
	}
	return v.key
}

// Match tells, for a member of the top-level object of a document parsed
// with a Filter, which of the filter's names kept it: name is the index in
// Filter.Names of the longest name its key matches, and exact is false
// when the key is a choice element of that name ("valueQuantity" for
// "value"). Every other name the key matches as a choice element is then
// a prefix of that name followed by an upper-case letter. name is -1 for
// any other value.
func (v *Value) Match() (name int, exact bool) {
	if v == nil || v.tag == 0 {
		return -1, false
	}
	return int(v.tag-2) >> 1, v.tag&1 == 1
}

// Len returns the number of members of an object or elements of an
// array, 0 for anything else.
func (v *Value) Len() int {
	if v == nil {
		return 0
	}
	return int(v.n)
}

// First returns the first member of an object or element of an array, nil
// when there is none.
func (v *Value) First() *Value {
	if v == nil || v.n == 0 {
		return nil
	}
	return (*Value)(unsafe.Add(unsafe.Pointer(v), unsafe.Sizeof(Value{})))
}

// Next returns the member or element after v, nil for the last.
func (v *Value) Next() *Value {
	if v == nil || v.next == 0 {
		return nil
	}
	return (*Value)(unsafe.Add(unsafe.Pointer(v), uintptr(v.next)*unsafe.Sizeof(Value{})))
}

// Get returns the first member of object v called key, nil when v is not
// an object or has no such member.
func (v *Value) Get(key string) *Value {
	if v == nil || v.t != TypeObject {
		return nil
	}
	for m := v.First(); m != nil; m = m.Next() {
		if m.key == key {
			return m
		}
	}
	return nil
}

// GetString returns the text of the string member key of object v, and
// false when there is no such member or it is not a string.
func (v *Value) GetString(key string) (string, bool) {
	m := v.Get(key)
	if m == nil || m.t != TypeString {
		return "", false
	}
	return m.s, true
}

// AppendJSON appends v as compact JSON to dst.
func (v *Value) AppendJSON(dst []byte) []byte {
	if v == nil {
		return dst
	}
	switch v.t {
	case TypeNull:
		return append(dst, "null"...)
	case TypeTrue:
		return append(dst, "true"...)
	case TypeFalse:
		return append(dst, "false"...)
	case TypeNumber:
		return append(dst, v.s...)
	case TypeString:
		return appendQuoted(dst, v.s)
	case TypeObject:
		dst = append(dst, '{')
		for m := v.First(); m != nil; m = m.Next() {
			if m != v.First() {
				dst = append(dst, ',')
			}
			dst = appendQuoted(dst, m.key)
			dst = append(dst, ':')
			dst = m.AppendJSON(dst)
		}
		return append(dst, '}')
	case TypeArray:
		dst = append(dst, '[')
		for e := v.First(); e != nil; e = e.Next() {
			if e != v.First() {
				dst = append(dst, ',')
			}
			dst = e.AppendJSON(dst)
		}
		return append(dst, ']')
	}
	return dst
}

// appendQuoted appends s as a JSON string: quotes, backslashes and
// control characters escaped, everything else as it is.
func appendQuoted(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
