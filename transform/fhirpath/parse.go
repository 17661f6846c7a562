package fhirpath

import (
	"fmt"
	"strings"
)

// MaxDepth caps the nesting of an expression so that hostile input cannot
// exhaust the stack.
const MaxDepth = 100

// Error is a parse error at a position in the source.
type Error struct {
	Line, Col int // 1-based
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("fhirpath: %d:%d: %s", e.Line, e.Col, e.Msg)
}

// Expr is a parsed, checked FHIRPath expression. It is immutable and safe
// for concurrent use.
type Expr struct {
	root Node
	plan *plan // nil when the general evaluator is the only strategy
}

// Root returns the top node of the syntax tree.
func (e *Expr) Root() Node { return e.root }

// String returns the canonical source of e.
func (e *Expr) String() string { return e.root.String() }

// Parse parses src into an expression. Unknown functions and wrong argument
// counts are reported here, not at evaluation. Paths of the shapes views
// use most also get a compiled plan, a faster way of evaluating them with
// the same results (see Context.General).
func Parse(src string) (*Expr, error) {
	p := &parser{src: src, items: lex(src)}
	root, err := p.parseExpression()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.typ != itemEOF {
		return nil, p.unexpected(t)
	}
	return &Expr{root: root, plan: compilePlan(root)}, nil
}

// MustParse is like Parse but panics on error; for tests and fixed sources.
func MustParse(src string) *Expr {
	e, err := Parse(src)
	if err != nil {
		panic(err)
	}
	return e
}

type parser struct {
	src   string
	items []item
	i     int
	depth int
}

func (p *parser) peek() item { return p.items[p.i] }

func (p *parser) next() item {
	t := p.items[p.i]
	if p.i < len(p.items)-1 {
		p.i++
	}
	return t
}

func (p *parser) errorf(pos Pos, format string, args ...any) error {
	line, col := 1, 1
	for i := 0; i < int(pos) && i < len(p.src); i++ {
		if p.src[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &Error{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) unexpected(t item) error {
	if t.typ == itemError {
		return p.errorf(t.pos, "%s", t.val)
	}
	if t.typ == itemEOF {
		return p.errorf(t.pos, "unexpected end of input")
	}
	if t.typ == itemString {
		return p.errorf(t.pos, "unexpected string %s", t.String())
	}
	return p.errorf(t.pos, "unexpected '%s'", t.String())
}

func (p *parser) isOp(t item, ops ...string) bool {
	if t.typ != itemOp && t.typ != itemIdent {
		return false
	}
	for _, op := range ops {
		if t.val == op {
			// Word operators must be identifiers, symbols must be ops.
			if (t.typ == itemIdent) == isIdentStart(op[0]) {
				return true
			}
		}
	}
	return false
}

func (p *parser) expect(op string) (item, error) {
	t := p.next()
	if !p.isOp(t, op) {
		return t, p.unexpected(t)
	}
	return t, nil
}

func (p *parser) enter(pos Pos) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf(pos, "expression nested too deeply")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

// levels lists the binary operators from lowest to highest precedence.
var levels = [][]string{
	{"implies"},
	{"or", "xor"},
	{"and"},
	{"in", "contains"},
	{"=", "~", "!=", "!~"},
	{"<", "<=", ">", ">="},
	{"|"},
	{"is", "as"},
	{"+", "-", "&"},
	{"*", "/", "div", "mod"},
}

// parseExpression parses
//
//	expression = implies
func (p *parser) parseExpression() (Node, error) {
	if err := p.enter(p.peek().pos); err != nil {
		return nil, err
	}
	defer p.leave()
	return p.parseLevel(0)
}

// parseLevel parses one precedence level, all left associative:
//
//	implies        = or ('implies' or)*
//	or             = and (('or' | 'xor') and)*
//	and            = membership ('and' membership)*
//	membership     = equality (('in' | 'contains') equality)*
//	equality       = inequality (('=' | '~' | '!=' | '!~') inequality)*
//	inequality     = union (('<' | '<=' | '>' | '>=') union)*
//	union          = type ('|' type)*
//	type           = additive (('is' | 'as') typeSpecifier)*
//	additive       = multiplicative (('+' | '-' | '&') multiplicative)*
//	multiplicative = unary (('*' | '/' | 'div' | 'mod') unary)*
func (p *parser) parseLevel(level int) (Node, error) {
	if level == len(levels) {
		return p.parseUnary()
	}
	left, err := p.parseLevel(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !p.isOp(t, levels[level]...) {
			return left, nil
		}
		p.next()
		if t.val == "is" || t.val == "as" {
			ts, err := p.parseTypeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &TypeOpNode{Pos: t.pos, Op: t.val, Operand: left, Type: ts}
			continue
		}
		right, err := p.parseLevel(level + 1)
		if err != nil {
			return nil, err
		}
		left = &BinaryNode{Pos: t.pos, Op: t.val, Left: left, Right: right}
	}
}

// parseTypeSpecifier parses
//
//	typeSpecifier = identifier ('.' identifier)?
func (p *parser) parseTypeSpecifier() (*TypeNode, error) {
	t := p.next()
	if t.typ != itemIdent && t.typ != itemDelimIdent {
		return nil, p.unexpected(t)
	}
	ts := &TypeNode{Pos: t.pos, Name: t.val}
	if p.isOp(p.peek(), ".") {
		p.next()
		u := p.next()
		if u.typ != itemIdent && u.typ != itemDelimIdent {
			return nil, p.unexpected(u)
		}
		ts.Namespace, ts.Name = ts.Name, u.val
	}
	return ts, nil
}

// parseUnary parses
//
//	unary = ('+' | '-') unary | postfix
func (p *parser) parseUnary() (Node, error) {
	t := p.peek()
	if p.isOp(t, "+", "-") {
		p.next()
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &UnaryNode{Pos: t.pos, Op: t.val, Operand: x}, nil
	}
	return p.parsePostfix()
}

// parsePostfix parses
//
//	postfix = term ('.' invocation | '[' expression ']')*
func (p *parser) parsePostfix() (Node, error) {
	x, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case p.isOp(t, "."):
			p.next()
			n := p.next()
			if n.typ != itemIdent && n.typ != itemDelimIdent {
				return nil, p.unexpected(n)
			}
			if x, err = p.parseInvocation(x, n); err != nil {
				return nil, err
			}
		case p.isOp(t, "["):
			p.next()
			idx, err := p.parseExpression()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect("]"); err != nil {
				return nil, err
			}
			x = &IndexNode{Pos: t.pos, Target: x, Index: idx}
		default:
			return x, nil
		}
	}
}

// parseTerm parses
//
//	term = literal | '%' identifier | '$' ('this' | 'index' | 'total')
//	     | '(' expression ')' | invocation
//	literal = '{' '}' | 'true' | 'false' | STRING | NUMBER | DATETIME
func (p *parser) parseTerm() (Node, error) {
	t := p.next()
	switch t.typ {
	case itemNumber:
		n := &LiteralNode{Pos: t.pos, Kind: LitInteger, Text: t.val}
		if strings.Contains(t.val, ".") {
			n.Kind = LitDecimal
		}
		if err := n.init(); err != nil {
			return nil, p.errorf(t.pos, "bad number %s", t.val)
		}
		return n, nil
	case itemString:
		n := &LiteralNode{Pos: t.pos, Kind: LitString, Text: t.val}
		return n, n.init()
	case itemDateTime:
		n := &LiteralNode{Pos: t.pos, Kind: LitDateTime, Text: t.val}
		return n, n.init()
	case itemConstant:
		return &ConstantNode{Pos: t.pos, Name: t.val}, nil
	case itemSpecial:
		switch t.val {
		case "this", "index", "total":
			return &SpecialNode{Pos: t.pos, Name: t.val}, nil
		}
		return nil, p.errorf(t.pos, "unknown variable $%s", t.val)
	case itemDelimIdent:
		return p.parseInvocation(nil, t)
	case itemIdent:
		switch t.val {
		case "true", "false":
			n := &LiteralNode{Pos: t.pos, Kind: LitBoolean, Text: t.val}
			return n, n.init()
		}
		if keywords[t.val] && !p.isOp(p.peek(), "(") {
			return nil, p.unexpected(t)
		}
		return p.parseInvocation(nil, t)
	case itemOp:
		switch t.val {
		case "{":
			if _, err := p.expect("}"); err != nil {
				return nil, err
			}
			return &LiteralNode{Pos: t.pos, Kind: LitEmpty}, nil
		case "(":
			x, err := p.parseExpression()
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(")"); err != nil {
				return nil, err
			}
			return &ParenNode{Pos: t.pos, Expr: x}, nil
		}
	}
	return nil, p.unexpected(t)
}

// parseInvocation parses, after the identifier name,
//
//	invocation = identifier ('(' (expression (',' expression)*)? ')')?
func (p *parser) parseInvocation(target Node, name item) (Node, error) {
	if !p.isOp(p.peek(), "(") || name.typ == itemDelimIdent {
		return &MemberNode{Pos: name.pos, Target: target, Name: name.val}, nil
	}
	p.next()
	fn := &FunctionNode{Pos: name.pos, Target: target, Name: name.val}
	if !p.isOp(p.peek(), ")") {
		for {
			a, err := p.parseExpression()
			if err != nil {
				return nil, err
			}
			fn.Args = append(fn.Args, a)
			if !p.isOp(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	if _, err := p.expect(")"); err != nil {
		return nil, err
	}
	def, ok := functions[fn.Name]
	if !ok {
		return nil, p.errorf(name.pos, "unknown function %s", fn.Name)
	}
	if len(fn.Args) < def.minArgs || len(fn.Args) > def.maxArgs {
		return nil, p.errorf(name.pos, "%s takes %s, got %d", fn.Name, def.arity(), len(fn.Args))
	}
	if def.typeArg && len(fn.Args) > 0 {
		ts, ok := asTypeNode(fn.Args[0])
		if !ok {
			return nil, p.errorf(fn.Args[0].Position(), "%s: expected a type name", fn.Name)
		}
		fn.Args[0] = ts
	}
	fn.fn = def
	return fn, nil
}

// asTypeNode reinterprets an argument parsed as a path (Quantity,
// FHIR.Quantity) as a type specifier.
func asTypeNode(n Node) (*TypeNode, bool) {
	m, ok := n.(*MemberNode)
	if !ok {
		return nil, false
	}
	if m.Target == nil {
		return &TypeNode{Pos: m.Pos, Name: m.Name}, true
	}
	if ns, ok := m.Target.(*MemberNode); ok && ns.Target == nil {
		return &TypeNode{Pos: ns.Pos, Namespace: ns.Name, Name: m.Name}, true
	}
	return nil, false
}
