package fhirpath

import (
	"fmt"
	"strings"
)

// itemType identifies the kind of a lexical token.
type itemType int

const (
	itemError      itemType = iota // error; val is the message
	itemEOF                        // end of input
	itemIdent                      // identifier, also keywords such as and, or, true
	itemDelimIdent                 // `delimited identifier`; val is unquoted
	itemString                     // 'string'; val is unescaped
	itemNumber                     // 12 or 1.5
	itemDateTime                   // @2020-01-01T10:00:00Z; val excludes the @
	itemConstant                   // %name; val excludes the %
	itemSpecial                    // $this, $index, $total; val excludes the $
	itemOp                         // punctuation and symbolic operators
)

// item is one token with its byte offset in the input.
type item struct {
	typ itemType
	pos Pos
	val string
}

func (i item) String() string {
	switch i.typ {
	case itemEOF:
		return "end of input"
	case itemString:
		return quote(i.val)
	case itemDelimIdent:
		return "`" + i.val + "`"
	case itemDateTime:
		return "@" + i.val
	case itemConstant:
		return "%" + i.val
	case itemSpecial:
		return "$" + i.val
	}
	return i.val
}

// lexer turns FHIRPath source into tokens. It is run to completion by lex
// because expressions are short; the parser then walks the token slice.
type lexer struct {
	input string
	pos   int
	items []item
}

// lex tokenises input. The last item is itemEOF or itemError.
func lex(input string) []item {
	l := &lexer{input: input}
	for {
		it := l.next()
		l.items = append(l.items, it)
		if it.typ == itemEOF || it.typ == itemError {
			return l.items
		}
	}
}

func (l *lexer) errorf(pos int, format string, args ...any) item {
	return item{typ: itemError, pos: Pos(pos), val: fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentChar(c byte) bool { return isIdentStart(c) || isDigit(c) }

func (l *lexer) next() item {
	// Skip white space and comments.
	for l.pos < len(l.input) {
		c := l.input[l.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.pos++
			continue
		case strings.HasPrefix(l.input[l.pos:], "//"):
			end := strings.IndexByte(l.input[l.pos:], '\n')
			if end < 0 {
				l.pos = len(l.input)
			} else {
				l.pos += end
			}
			continue
		case strings.HasPrefix(l.input[l.pos:], "/*"):
			end := strings.Index(l.input[l.pos+2:], "*/")
			if end < 0 {
				return l.errorf(l.pos, "unterminated comment")
			}
			l.pos += end + 4
			continue
		}
		break
	}
	start := l.pos
	if l.pos >= len(l.input) {
		return item{typ: itemEOF, pos: Pos(start)}
	}
	c := l.input[l.pos]
	switch {
	case isIdentStart(c):
		for l.pos < len(l.input) && isIdentChar(l.input[l.pos]) {
			l.pos++
		}
		return item{typ: itemIdent, pos: Pos(start), val: l.input[start:l.pos]}
	case isDigit(c):
		for l.pos < len(l.input) && isDigit(l.input[l.pos]) {
			l.pos++
		}
		if l.pos+1 < len(l.input) && l.input[l.pos] == '.' && isDigit(l.input[l.pos+1]) {
			l.pos++
			for l.pos < len(l.input) && isDigit(l.input[l.pos]) {
				l.pos++
			}
		}
		return item{typ: itemNumber, pos: Pos(start), val: l.input[start:l.pos]}
	case c == '\'' || c == '`':
		s, err := l.quoted(c)
		if err != "" {
			return l.errorf(start, "%s", err)
		}
		if c == '`' {
			return item{typ: itemDelimIdent, pos: Pos(start), val: s}
		}
		return item{typ: itemString, pos: Pos(start), val: s}
	case c == '@':
		l.pos++
		for l.pos < len(l.input) {
			d := l.input[l.pos]
			if isDigit(d) || d == '-' || d == ':' || d == 'T' || d == 'Z' || d == '+' ||
				(d == '.' && l.pos+1 < len(l.input) && isDigit(l.input[l.pos+1])) {
				l.pos++
				continue
			}
			break
		}
		val := l.input[start+1 : l.pos]
		if val == "" || !validDateTimeLiteral(val) {
			return l.errorf(start, "invalid date/time literal")
		}
		return item{typ: itemDateTime, pos: Pos(start), val: val}
	case c == '%' || c == '$':
		l.pos++
		var name string
		switch {
		case l.pos < len(l.input) && isIdentStart(l.input[l.pos]):
			s := l.pos
			for l.pos < len(l.input) && isIdentChar(l.input[l.pos]) {
				l.pos++
			}
			name = l.input[s:l.pos]
		case c == '%' && l.pos < len(l.input) && (l.input[l.pos] == '`' || l.input[l.pos] == '\''):
			s, err := l.quoted(l.input[l.pos])
			if err != "" {
				return l.errorf(start, "%s", err)
			}
			name = s
		default:
			return l.errorf(start, "bad %q name", string(c))
		}
		if c == '%' {
			return item{typ: itemConstant, pos: Pos(start), val: name}
		}
		return item{typ: itemSpecial, pos: Pos(start), val: name}
	}
	for _, op := range []string{"!=", "!~", "<=", ">=", ".", ",", "(", ")", "[", "]", "{", "}", "=", "~", "<", ">", "+", "-", "*", "/", "&", "|"} {
		if strings.HasPrefix(l.input[l.pos:], op) {
			l.pos += len(op)
			return item{typ: itemOp, pos: Pos(start), val: op}
		}
	}
	return l.errorf(start, "unexpected character %q", rune(c))
}

// quoted reads a string delimited by q starting at l.pos and returns it
// unescaped, or an error message.
func (l *lexer) quoted(q byte) (string, string) {
	l.pos++ // opening quote
	var b strings.Builder
	for l.pos < len(l.input) {
		c := l.input[l.pos]
		switch {
		case c == q:
			l.pos++
			return b.String(), ""
		case c == '\\':
			if l.pos+1 >= len(l.input) {
				return "", "unterminated string"
			}
			e := l.input[l.pos+1]
			l.pos += 2
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'f':
				b.WriteByte('\f')
			case 'u':
				if l.pos+4 > len(l.input) {
					return "", "bad unicode escape"
				}
				var r rune
				for _, h := range l.input[l.pos : l.pos+4] {
					r <<= 4
					switch {
					case h >= '0' && h <= '9':
						r |= h - '0'
					case h >= 'a' && h <= 'f':
						r |= h - 'a' + 10
					case h >= 'A' && h <= 'F':
						r |= h - 'A' + 10
					default:
						return "", "bad unicode escape"
					}
				}
				b.WriteRune(r)
				l.pos += 4
			default:
				b.WriteByte(e) // \' \" \` \\ \/
			}
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return "", "unterminated string"
}

// validDateTimeLiteral reports whether s (without @) has the shape of a
// FHIRPath date, dateTime or time literal.
func validDateTimeLiteral(s string) bool {
	if s[0] == 'T' {
		return isTime(s[1:])
	}
	return isDate(s) || isDateTime(s)
}

// quote renders s as a FHIRPath string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}
