package fhirpath

import (
	"strings"
)

// Pos is a byte offset in the source of an expression.
type Pos int

// Position returns p; embedding Pos gives every node its Position method.
func (p Pos) Position() Pos { return p }

// Node is an element of the syntax tree. String prints canonical FHIRPath
// source that parses back to an equal tree.
type Node interface {
	Position() Pos
	String() string
	writeTo(b *strings.Builder)
}

// LiteralKind says which kind of literal a LiteralNode holds.
type LiteralKind int

// Literal kinds.
const (
	LitEmpty    LiteralKind = iota // {}
	LitBoolean                     // true, false
	LitString                      // 'text'
	LitInteger                     // 12
	LitDecimal                     // 1.5
	LitDateTime                    // @2020-01-01, @2020-01-01T10:00:00Z, @T10:00
)

// LiteralNode is a literal value. Text is the unescaped string for strings,
// the source text otherwise (without @ for date/time literals).
type LiteralNode struct {
	Pos
	Kind LiteralKind
	Text string
	val  Value      // precomputed value, unset for LitEmpty
	coll Collection // {val}, shared by every evaluation
}

func (n *LiteralNode) String() string { return nodeString(n) }
func (n *LiteralNode) writeTo(b *strings.Builder) {
	switch n.Kind {
	case LitEmpty:
		b.WriteString("{}")
	case LitString:
		b.WriteString(quote(n.Text))
	case LitDateTime:
		b.WriteByte('@')
		b.WriteString(n.Text)
	default:
		b.WriteString(n.Text)
	}
}

// ConstantNode is an external constant, %name.
type ConstantNode struct {
	Pos
	Name string
}

func (n *ConstantNode) String() string { return nodeString(n) }
func (n *ConstantNode) writeTo(b *strings.Builder) {
	b.WriteByte('%')
	writeIdent(b, n.Name)
}

// SpecialNode is $this, $index or $total.
type SpecialNode struct {
	Pos
	Name string
}

func (n *SpecialNode) String() string { return nodeString(n) }
func (n *SpecialNode) writeTo(b *strings.Builder) {
	b.WriteByte('$')
	b.WriteString(n.Name)
}

// MemberNode navigates to the child elements called Name of each item of
// Target, or of the focus when Target is nil.
type MemberNode struct {
	Pos
	Target Node
	Name   string
}

func (n *MemberNode) String() string { return nodeString(n) }
func (n *MemberNode) writeTo(b *strings.Builder) {
	if n.Target != nil {
		n.Target.writeTo(b)
		b.WriteByte('.')
	}
	writeIdent(b, n.Name)
}

// FunctionNode calls the function Name on Target (the focus when nil).
type FunctionNode struct {
	Pos
	Target Node
	Name   string
	Args   []Node
	fn     *funcDef
}

func (n *FunctionNode) String() string { return nodeString(n) }
func (n *FunctionNode) writeTo(b *strings.Builder) {
	if n.Target != nil {
		n.Target.writeTo(b)
		b.WriteByte('.')
	}
	writeIdent(b, n.Name)
	b.WriteByte('(')
	for i, a := range n.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		a.writeTo(b)
	}
	b.WriteByte(')')
}

// IndexNode is Target[Index].
type IndexNode struct {
	Pos
	Target Node
	Index  Node
}

func (n *IndexNode) String() string { return nodeString(n) }
func (n *IndexNode) writeTo(b *strings.Builder) {
	n.Target.writeTo(b)
	b.WriteByte('[')
	n.Index.writeTo(b)
	b.WriteByte(']')
}

// UnaryNode is a prefix + or - applied to Operand.
type UnaryNode struct {
	Pos
	Op      string
	Operand Node
}

func (n *UnaryNode) String() string { return nodeString(n) }
func (n *UnaryNode) writeTo(b *strings.Builder) {
	b.WriteString(n.Op)
	n.Operand.writeTo(b)
}

// BinaryNode is Left Op Right for every infix operator except is and as.
type BinaryNode struct {
	Pos
	Op          string
	Left, Right Node
}

func (n *BinaryNode) String() string { return nodeString(n) }
func (n *BinaryNode) writeTo(b *strings.Builder) {
	n.Left.writeTo(b)
	b.WriteByte(' ')
	b.WriteString(n.Op)
	b.WriteByte(' ')
	n.Right.writeTo(b)
}

// TypeOpNode is Operand is Type or Operand as Type.
type TypeOpNode struct {
	Pos
	Op      string // "is" or "as"
	Operand Node
	Type    *TypeNode
}

func (n *TypeOpNode) String() string { return nodeString(n) }
func (n *TypeOpNode) writeTo(b *strings.Builder) {
	n.Operand.writeTo(b)
	b.WriteByte(' ')
	b.WriteString(n.Op)
	b.WriteByte(' ')
	n.Type.writeTo(b)
}

// TypeNode is a type specifier such as Quantity or FHIR.Quantity.
type TypeNode struct {
	Pos
	Namespace string // "" when unqualified
	Name      string
}

func (n *TypeNode) String() string { return nodeString(n) }
func (n *TypeNode) writeTo(b *strings.Builder) {
	if n.Namespace != "" {
		writeIdent(b, n.Namespace)
		b.WriteByte('.')
	}
	writeIdent(b, n.Name)
}

// ParenNode is a parenthesised expression, kept so that String reproduces
// the grouping of the source.
type ParenNode struct {
	Pos
	Expr Node
}

func (n *ParenNode) String() string { return nodeString(n) }
func (n *ParenNode) writeTo(b *strings.Builder) {
	b.WriteByte('(')
	n.Expr.writeTo(b)
	b.WriteByte(')')
}

func nodeString(n Node) string {
	var b strings.Builder
	n.writeTo(&b)
	return b.String()
}

// keywords cannot be used as plain identifiers; String delimits them.
var keywords = map[string]bool{
	"and": true, "or": true, "xor": true, "implies": true, "is": true, "as": true,
	"in": true, "contains": true, "div": true, "mod": true, "true": true, "false": true,
}

func writeIdent(b *strings.Builder, name string) {
	plain := name != "" && isIdentStart(name[0]) && !keywords[name]
	for i := 0; plain && i < len(name); i++ {
		plain = isIdentChar(name[i])
	}
	if plain {
		b.WriteString(name)
		return
	}
	b.WriteByte('`')
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), "`", "\\`"))
	b.WriteByte('`')
}
