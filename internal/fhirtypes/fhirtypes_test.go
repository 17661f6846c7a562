package fhirtypes

import (
	"slices"
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
