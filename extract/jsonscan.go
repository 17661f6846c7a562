package extract

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads NDJSON lines without building a tree. A server decides
// what a line holds, and a line may be up to maxLine (256 MiB) long: a
// parser that keeps a value per JSON value (fastjson keeps 80 bytes for
// each "0," of 2 bytes) would need tens of GB for a hostile line, and a
// recursive validator would overflow the stack on "[[[[...". The scanner
// here checks the syntax in one pass with a stack of open containers
// bounded by maxDepth, and the walkers below slice members and elements out
// of a line it has accepted; only unescaped strings are copied, into a
// buffer reused from line to line.

// maxDepth bounds the nesting the scanner accepts, as encoding/json does:
// FHIR resources nest a few dozen levels.
const maxDepth = 10000

// jsonScanner checks JSON syntax (RFC 8259) and finds the top-level
// resourceType. Its memory is its stack (at most maxDepth bytes) and its
// unescape buffer (at most the longest string it unescaped), both reused.
// The zero value is ready to use; it is not safe for concurrent use.
type jsonScanner struct {
	stack []byte
	buf   []byte
}

// scan reports whether b is one JSON value, with whitespace around it at
// most, and, when it is an object whose first top-level "resourceType"
// member is a string, that string unescaped (hasType true). The string may
// share memory with b or with the scanner's buffer: it is valid until the
// next call.
func (s *jsonScanner) scan(b []byte) (ok bool, resourceType []byte, hasType bool) {
	s.stack = s.stack[:0]
	var rtRaw []byte
	seenRT, wantRT := false, false // a top-level resourceType key was seen; the value at hand is its value
	i := skipWS(b, 0)
value:
	for {
		if i >= len(b) {
			return false, nil, false
		}
		isRT := wantRT
		wantRT = false
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(s.stack) >= maxDepth { // an empty container counts too, as in encoding/json
				return false, nil, false
			}
			j := skipWS(b, i+1)
			if j < len(b) && b[j] == c+2 { // '{'+2 is '}', '['+2 is ']'
				i = j + 1
				break
			}
			s.stack = append(s.stack, c)
			i = j
			if c == '{' {
				var key []byte
				if i, key, ok = member(b, i); !ok {
					return false, nil, false
				}
				if len(s.stack) == 1 && !seenRT && s.keyIs(key, "resourceType") {
					seenRT, wantRT = true, true
				}
			}
			continue value
		case c == '"':
			end, ok := scanString(b, i)
			if !ok {
				return false, nil, false
			}
			if isRT {
				rtRaw, hasType = b[i+1:end-1], true
			}
			i = end
		case c == 't':
			if i, ok = literal(b, i, "true"); !ok {
				return false, nil, false
			}
		case c == 'f':
			if i, ok = literal(b, i, "false"); !ok {
				return false, nil, false
			}
		case c == 'n':
			if i, ok = literal(b, i, "null"); !ok {
				return false, nil, false
			}
		default:
			if i, ok = scanNumber(b, i); !ok {
				return false, nil, false
			}
		}
		// After a value: close containers, or go on to the next value.
		for {
			i = skipWS(b, i)
			n := len(s.stack)
			if n == 0 {
				if i != len(b) {
					return false, nil, false
				}
				if hasType {
					return true, s.unescape(rtRaw), true
				}
				return true, nil, false
			}
			if i >= len(b) {
				return false, nil, false
			}
			top := s.stack[n-1]
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
				if top == '{' {
					var key []byte
					if i, key, ok = member(b, i); !ok {
						return false, nil, false
					}
					if n == 1 && !seenRT && s.keyIs(key, "resourceType") {
						seenRT, wantRT = true, true
					}
				}
				continue value
			case top + 2:
				s.stack = s.stack[:n-1]
				i++
			default:
				return false, nil, false
			}
		}
	}
}

// keyIs reports whether the raw (still escaped) key is name.
func (s *jsonScanner) keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key) == name
	}
	return string(s.unescape(key)) == name
}

// unescape returns the content of a JSON string (raw, without its quotes)
// with its escapes decoded: raw itself when it has none, else the
// scanner's buffer, valid until the next call.
func (s *jsonScanner) unescape(raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	s.buf = appendUnescaped(s.buf[:0], raw)
	return s.buf
}

// member reads `"key" :` at b[i] (i at the opening quote) and returns the
// index of the value that follows and the raw key.
func member(b []byte, i int) (next int, key []byte, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, nil, false
	}
	end, ok := scanString(b, i)
	if !ok {
		return 0, nil, false
	}
	key = b[i+1 : end-1]
	i = skipWS(b, end)
	if i >= len(b) || b[i] != ':' {
		return 0, nil, false
	}
	return skipWS(b, i+1), key, true
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// plainString marks the bytes a JSON string holds as they are: neither
// the closing quote, a backslash nor a control character.
var plainString = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString returns the index after the JSON string that starts at b[i]
// (the opening quote). Bytes of 0x80 and above are taken as they are, as
// encoding/json does.
func scanString(b []byte, i int) (end int, ok bool) {
	i++
	for i < len(b) {
		for i < len(b) && plainString[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return 0, false
				}
				i += 6
			default:
				return 0, false
			}
		default: // a control character
			return 0, false
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber returns the index after the JSON number at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return 0, false
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return 0, false
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	return i, true
}

// literal returns the index after word (true, false, null) at b[i].
func literal(b []byte, i int, word string) (int, bool) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return 0, false
	}
	return i + len(word), true
}

// appendUnescaped appends the content of a JSON string, raw and without its
// quotes, with its escapes decoded. Like encoding/json, it turns a lone
// surrogate into U+FFFD. Malformed escapes (which the scanner rejects) are
// copied as they are.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(raw, i+2)
			if !ok {
				dst = append(dst, c)
				i++
				continue
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2, ok = hex4(raw, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/' and anything malformed
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

// hex4 decodes the four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// The walkers below take a value the scanner accepted. On anything else
// they stop early or yield what they can, but never loop or panic.

// skipValue returns the index after the JSON value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		if end, ok := scanString(b, i); ok {
			return end
		}
		return len(b)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := scanString(b, i)
				if !ok {
					return len(b)
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // a number or a literal
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
			i++
		}
		return i
	}
}

// eachMember calls fn with the raw key (escapes kept) and the value of
// each member of the object v, in order, until fn returns false. It calls
// nothing when v is not an object.
func eachMember(v []byte, fn func(key, val []byte) bool) {
	if len(v) == 0 || v[0] != '{' {
		return
	}
	i := skipWS(v, 1)
	for {
		next, key, ok := member(v, i)
		if !ok || next >= len(v) {
			return
		}
		end := skipValue(v, next)
		if !fn(key, v[next:end]) {
			return
		}
		if i = skipWS(v, end); i >= len(v) || v[i] != ',' {
			return
		}
		i = skipWS(v, i+1)
	}
}

// eachElement calls fn with each element of the array v, in order, until
// fn returns false. It calls nothing when v is not an array.
func eachElement(v []byte, fn func(val []byte) bool) {
	if len(v) == 0 || v[0] != '[' {
		return
	}
	i := skipWS(v, 1)
	if i >= len(v) || v[i] == ']' {
		return
	}
	for {
		end := skipValue(v, i)
		if end <= i || !fn(v[i:end]) {
			return
		}
		if i = skipWS(v, end); i >= len(v) || v[i] != ',' {
			return
		}
		i = skipWS(v, i+1)
	}
}

// field returns the value of the first member of the object v whose key
// is name; nil when there is none or v is not an object.
func (s *jsonScanner) field(v []byte, name string) []byte {
	var out []byte
	eachMember(v, func(key, val []byte) bool {
		if s.keyIs(key, name) {
			out = val
			return false
		}
		return true
	})
	return out
}

// str returns the content of v unescaped when v is a JSON string (valid
// until the scanner's next unescape), and false otherwise.
func (s *jsonScanner) str(v []byte) ([]byte, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return nil, false
	}
	return s.unescape(v[1 : len(v)-1]), true
}
