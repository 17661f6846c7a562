package fhirtypes

import (
	_ "embed"
	"slices"
	"strings"
	"sync"
)

// elementsR4 is the table of FHIR R4 elements: one line per resource, data
// type and backbone element (ExplanationOfBenefitItem), "Type member:Child
// ...", Child being the member's type, p for a primitive, Resource for a
// resource of any type, or the types of a choice element (value[x]) joined
// by |; a choice element is there under its own name (value) and under
// each of its JSON names (valueQuantity).
//
//go:generate sh -c "cd gen && go run . -out ../elements_r4.txt"
//go:embed elements_r4.txt
var elementsR4 string

// Kinds of Child beside type names.
const (
	Primitive   = "p"        // a primitive: only id and extension below it
	AnyResource = "Resource" // a contained resource, of any type
)

var elements = sync.OnceValue(func() map[string]map[string]string {
	types := map[string]map[string]string{}
	for _, line := range strings.Split(elementsR4, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		members := map[string]string{}
		for _, m := range strings.Fields(rest) {
			k, v, _ := strings.Cut(m, ":")
			members[k] = v
		}
		if Is(name) {
			// The model leaves these out of every resource.
			members["resourceType"] = Primitive
			members["contained"] = AnyResource
		}
		types[name] = members
	}
	return types
})

// Child returns the type of the element called member of typ (a resource,
// data type or backbone element name from a previous Child): a type name,
// Primitive, AnyResource, or a choice element's types joined by |. ok is
// false when typ has no such element; known is false when typ is not in
// the table (then nothing can be said).
func Child(typ, member string) (child string, ok, known bool) {
	if typ == Primitive {
		// A primitive's value has only its id and extensions below it.
		switch member {
		case "id":
			return Primitive, true, true
		case "extension":
			return "Extension", true, true
		}
		return "", false, true
	}
	members, known := elements()[typ]
	if !known {
		return "", false, false
	}
	child, ok = members[member]
	return child, ok, true
}

// Members lists the element names of typ, sorted; nil when typ is not in
// the table.
func Members(typ string) []string {
	members := elements()[typ]
	names := make([]string, 0, len(members))
	for m := range members {
		names = append(names, m)
	}
	slices.Sort(names)
	return names
}

// IsType reports whether typ is a resource, data type or backbone element
// of the table.
func IsType(typ string) bool {
	_, ok := elements()[typ]
	return ok
}
