package fhirpath

import (
	"strconv"
	"strings"

	"github.com/fhirlake/fhirlake/transform/jsondoc"
)

// Kind is the runtime kind of a Value.
type Kind uint8

// Value kinds. Objects are JSON objects (resources and complex types);
// the others are primitives, either read from JSON or computed.
const (
	KindObject Kind = iota + 1
	KindString
	KindBoolean
	KindInteger
	KindDecimal
	KindDate
	KindDateTime
	KindTime
)

// Value is one item of a collection. The zero Value is invalid.
type Value struct {
	// kind and b share a word (56 bytes in all): Values are copied a lot.
	kind Kind
	b    bool           // KindBoolean
	typ  string         // FHIR type when known from a choice element ("Quantity", "dateTime")
	obj  *jsondoc.Value // KindObject
	str  string         // strings, decimal text, date/time text
	i    int64          // KindInteger
}

// Collection is an ordered FHIRPath collection; empty means "no value".
type Collection []Value

// String returns a string value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Integer returns an integer value.
func Integer(i int64) Value { return Value{kind: KindInteger, i: i} }

// Boolean returns a boolean value.
func Boolean(b bool) Value { return Value{kind: KindBoolean, b: b} }

// Decimal returns a decimal value from its text, e.g. "12.50". The text is
// kept so that no precision is lost on the way to a decimal column.
func Decimal(text string) Value { return Value{kind: KindDecimal, str: text} }

// Date returns a date value such as "2001-03" or "2001-03-04".
func Date(text string) Value { return Value{kind: KindDate, str: text} }

// DateTime returns a dateTime value such as "2001-03-04T10:00:00Z".
func DateTime(text string) Value { return Value{kind: KindDateTime, str: text} }

// Time returns a time value such as "10:00:00".
func Time(text string) Value { return Value{kind: KindTime, str: text} }

// WithType returns v tagged with a FHIR type name, as when read from a
// choice element (valueCode -> "code").
func (v Value) WithType(t string) Value { v.typ = t; return v }

// Object wraps a JSON object.
func Object(o *jsondoc.Value) Value { return Value{kind: KindObject, obj: o} }

func numberValue(text string) (Value, bool) {
	if !strings.ContainsAny(text, ".eE") {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return Value{kind: KindInteger, i: i}, true
		}
	}
	return Value{kind: KindDecimal, str: text}, true
}

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// Type returns the FHIR type of v: the tag from a choice element when
// known, the resourceType of a resource, otherwise the type implied by the
// kind ("string", "integer", ...), or "" for other objects.
func (v Value) Type() string {
	if v.typ != "" {
		return v.typ
	}
	switch v.kind {
	case KindObject:
		return v.obj.Get("resourceType").Str()
	case KindString:
		return "string"
	case KindBoolean:
		return "boolean"
	case KindInteger:
		return "integer"
	case KindDecimal:
		return "decimal"
	case KindDate:
		return "date"
	case KindDateTime:
		return "dateTime"
	case KindTime:
		return "time"
	}
	return ""
}

// JSON returns the object of a KindObject value, else nil.
func (v Value) JSON() *jsondoc.Value { return v.obj }

// Str returns the text of a string, decimal, date, dateTime or time value,
// and the decimal text of an integer.
func (v Value) Str() string {
	if v.kind == KindInteger {
		return strconv.FormatInt(v.i, 10)
	}
	if v.kind == KindBoolean {
		return strconv.FormatBool(v.b)
	}
	return v.str
}

// Int returns the value of an integer.
func (v Value) Int() int64 { return v.i }

// Bool returns the value of a boolean.
func (v Value) Bool() bool { return v.b }

// Float returns a numeric value as float64.
func (v Value) Float() float64 {
	if v.kind == KindInteger {
		return float64(v.i)
	}
	f, _ := strconv.ParseFloat(v.str, 64)
	return f
}

func (v Value) isNumber() bool { return v.kind == KindInteger || v.kind == KindDecimal }

// isTextual reports kinds compared by their text.
func (v Value) isTextual() bool {
	return v.kind == KindString || v.kind == KindDate || v.kind == KindDateTime || v.kind == KindTime
}

// primitiveTypes maps FHIR primitive type names, lowercased, to their
// spelling; choice suffixes (valueDateTime) are matched against it.
var primitiveTypes = map[string]string{}

func init() {
	for _, t := range []string{"boolean", "integer", "integer64", "string", "decimal", "uri", "url",
		"canonical", "base64Binary", "instant", "date", "dateTime", "time", "code", "oid", "id",
		"markdown", "unsignedInt", "positiveInt", "uuid", "xhtml"} {
		primitiveTypes[strings.ToLower(t)] = t
	}
}

// choiceType turns a choice suffix ("DateTime", "Quantity") into a FHIR
// type name ("dateTime", "Quantity").
func choiceType(suffix string) string {
	if t, ok := choiceTypes[suffix]; ok {
		return t
	}
	if t, ok := primitiveTypes[strings.ToLower(suffix)]; ok {
		return t
	}
	return suffix
}

// choiceTypes maps the choice suffixes of primitive and common complex
// types to their type name, so that reading them allocates nothing.
var choiceTypes = map[string]string{}

func init() {
	for _, t := range primitiveTypes {
		choiceTypes[strings.ToUpper(t[:1])+t[1:]] = t
	}
	for _, t := range []string{"Quantity", "CodeableConcept", "Coding", "Period", "Range", "Ratio", "Reference",
		"Identifier", "Attachment", "SampledData", "Age", "Duration", "Money", "Timing", "Annotation", "Address",
		"HumanName", "ContactPoint", "Signature", "Meta", "Dosage", "Count", "Distance", "Expression"} {
		choiceTypes[t] = t
	}
}

// isType reports whether v is of the type ns.name. Unqualified names and
// the FHIR and System namespaces are accepted; System types are matched by
// kind.
func (v Value) isType(ns, name string) bool {
	if ns == "System" {
		switch name {
		case "String":
			return v.kind == KindString
		case "Boolean":
			return v.kind == KindBoolean
		case "Integer":
			return v.kind == KindInteger
		case "Decimal":
			return v.kind == KindDecimal
		case "Date":
			return v.kind == KindDate
		case "DateTime":
			return v.kind == KindDateTime
		case "Time":
			return v.kind == KindTime
		}
		return false
	}
	if v.typ != "" {
		return v.typ == name
	}
	if v.kind == KindObject {
		rt := v.Type()
		return rt != "" && (rt == name || name == "Resource" || name == "DomainResource")
	}
	t := v.Type()
	return t == name || strings.EqualFold(t, name) && ns == ""
}
