package fhirtypes

import (
	"slices"
	"strings"
	"testing"
)

func TestIs(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"Patient", true}, {"ExplanationOfBenefit", true}, {"SubscriptionTopic", true},
		{"Patinet", false}, {"patient", false}, {"", false},
	} {
		if got := Is(tt.name); got != tt.want {
			t.Errorf("Is(%q) = %v", tt.name, got)
		}
	}
	all := All()
	if !slices.IsSorted(all) || !slices.Contains(all, "Coverage") || len(all) < 145 {
		t.Errorf("All: %d types, sorted %v", len(all), slices.IsSorted(all))
	}
}

func TestChild(t *testing.T) {
	tests := []struct {
		typ, member, child string
		ok, known          bool
	}{
		{"Patient", "name", "HumanName", true, true},
		{"HumanName", "family", Primitive, true, true},
		{"HumanName", "famly", "", false, true},
		{"Patient", "contact", "PatientContact", true, true},
		{"PatientContact", "name", "HumanName", true, true},
		{"Observation", "valueQuantity", "Quantity", true, true},
		{"Observation", "contained", AnyResource, true, true},
		{"ExplanationOfBenefit", "resourceType", Primitive, true, true},
		{"ExplanationOfBenefitSupportingInfo", "timing", "p|Period", true, true},
		{Primitive, "extension", "Extension", true, true},
		{Primitive, "value", "", false, true},
		{"NoSuchType", "x", "", false, false},
	}
	for _, tt := range tests {
		child, ok, known := Child(tt.typ, tt.member)
		if child != tt.child || ok != tt.ok || known != tt.known {
			t.Errorf("Child(%q, %q) = %q, %v, %v; want %q, %v, %v", tt.typ, tt.member, child, ok, known, tt.child, tt.ok, tt.known)
		}
	}
	// Every resource type of R4 is in the table, and every type a member
	// names is too.
	for _, r := range []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Observation", "Group", "Organization", "Practitioner"} {
		if !IsType(r) {
			t.Errorf("%s is not in the table", r)
		}
		for _, m := range Members(r) {
			c, _, _ := Child(r, m)
			for _, ct := range strings.Split(c, "|") {
				if ct != Primitive && ct != AnyResource && !IsType(ct) {
					t.Errorf("%s.%s is of type %s, which the table lacks", r, m, ct)
				}
			}
		}
	}
}
