package extract

import (
	"encoding/json"
	"errors"
	"testing"
)

// TestTypeFilterMatch: the search semantics fhirlake applies itself when a
// server refuses _typeFilter: tokens (code, system|code, system|, |code)
// on codes, Codings, CodeableConcepts and lists of them; dates with
// prefixes against dates, instants and Periods, through choice types;
// every condition must hold, any of a condition's values may.
func TestTypeFilterMatch(t *testing.T) {
	obs := `{"resourceType":"Observation","id":"o1","status":"final","meta":{"lastUpdated":"2026-02-03T10:00:00Z"},
		"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
		"code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"effectiveDateTime":"2025-06-15T08:30:00Z"}`
	enc := `{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER"},
		"period":{"start":"2025-01-10T10:00:00Z","end":"2025-01-11T12:00:00Z"}}`
	eob := `{"resourceType":"ExplanationOfBenefit","id":"x","status":"active","billablePeriod":{"start":"2024-12-30"},
		"item":[{"sequence":1,"servicedDate":"2025-03-01"}]}`
	for _, tc := range []struct {
		filter, resource string
		want             bool
	}{
		{"Observation?category=laboratory", obs, true},
		{"Observation?category=vital-signs", obs, false},
		{"Observation?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", obs, true},
		{"Observation?category=http://other|laboratory", obs, false},
		{"Observation?code=http://loinc.org|", obs, true},
		{"Observation?code=|4548-4", obs, false}, // the coding has a system
		{"Observation?status=final,amended", obs, true},
		{"Observation?status=preliminary", obs, false},
		{"Observation?date=2025", obs, true},
		{"Observation?date=2025-06", obs, true},
		{"Observation?date=2025-07", obs, false},
		{"Observation?date=ge2025-06-15", obs, true},
		{"Observation?date=gt2025-06-15", obs, false},
		{"Observation?date=lt2025-06-16&category=laboratory", obs, true},
		{"Observation?date=lt2025-06-16&category=imaging", obs, false},
		{"Observation?_lastUpdated=ge2026-02-01", obs, true},
		{"Observation?_lastUpdated=lt2026-02-01", obs, false},
		{"Observation?_id=o2,o1", obs, true},
		{"Encounter?class=EMER", enc, true},
		{"Encounter?date=2025-01-11", enc, false}, // the stay is not within that day
		{"Encounter?date=ge2025-01-11", enc, true},
		{"Encounter?date=le2025-01-10", enc, true},
		{"Encounter?date=sa2025-01-09", enc, true},
		{"Encounter?date=eb2025-01-12", enc, true},
		{"Encounter?date=eb2025-01-11", enc, false},
		{"ExplanationOfBenefit?service-date=ge2025-01-01", eob, true}, // the item's date; the open period too
		{"ExplanationOfBenefit?service-date=lt2024-01-01", eob, false},
	} {
		f, err := ParseTypeFilter(tc.filter)
		if err != nil {
			t.Fatalf("%s: %v", tc.filter, err)
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(tc.resource), &res); err != nil {
			t.Fatal(err)
		}
		if got := f.Match(res); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.filter, got, tc.want)
		}
	}
	for _, bad := range []string{"Observation?value-quantity=5", "Observation?code:not=1", "Observation?date=xx2025", "Observation?date=soon", "observation?status=final", "Observation"} {
		if _, err := ParseTypeFilter(bad); !errors.Is(err, ErrUnsupportedFilter) {
			t.Errorf("%s: %v, want ErrUnsupportedFilter", bad, err)
		}
	}
}
