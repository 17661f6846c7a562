package pipeline

import (
	"fmt"
	"slices"
	"testing"

	"github.com/fhirlake/fhirlake/extract"
)

// TestRosterSpreadOverExports: a roster whose matches name more patients
// than one export may ask for is spread over buckets, each within the
// limit, each with a scope of its own; every patient is in exactly one,
// with its match; the same roster gives the same buckets, and adding a
// member moves nobody else.
func TestRosterSpreadOverExports(t *testing.T) {
	matches := func(n int) []Match {
		var out []Match
		for i := range n {
			out = append(out, Match{Member: extract.Member{MemberID: fmt.Sprintf("m%d", i)},
				Result: extract.MatchResult{Status: extract.Matched, PatientRef: fmt.Sprintf("Patient/p%d", i)}})
		}
		return out
	}
	base := extract.Request{Types: []string{"Patient", "Coverage"}}
	if runs := RosterRequests(matches(900), base, 1000); len(runs) != 1 || runs[0].Scope != "" || len(runs[0].Request.Patients) != 900 {
		t.Fatalf("900 patients, limit 1000: %d runs", len(runs))
	}
	placement := func(runs []RosterRun) map[string]string {
		out := map[string]string{}
		for _, r := range runs {
			if len(r.Request.Patients) > 1000 || len(r.Request.Patients) != len(r.Matches) || !r.Request.Post || !r.Request.Patient {
				t.Errorf("%s: %d patients, %d matches", r.Scope, len(r.Request.Patients), len(r.Matches))
			}
			if !slices.Equal(r.Request.Types, base.Types) {
				t.Errorf("%s: types %v", r.Scope, r.Request.Types)
			}
			for i, p := range r.Request.Patients {
				if _, dup := out[p]; dup {
					t.Errorf("%s in two buckets", p)
				}
				out[p] = r.Scope
				if "Patient/"+r.Matches[i].PatientID != p {
					t.Errorf("%s carries the match of %s", p, r.Matches[i].PatientID)
				}
			}
		}
		return out
	}
	first := placement(RosterRequests(matches(2500), base, 1000))
	if len(first) != 2500 {
		t.Fatalf("%d patients placed, want 2500", len(first))
	}
	if first["Patient/p0"] == "" || first["Patient/p0"][:8] != "patient/" {
		t.Errorf("scope %q", first["Patient/p0"])
	}
	again := placement(RosterRequests(matches(2501), base, 1000))
	for p, scope := range first {
		if again[p] != scope {
			t.Errorf("%s moved from %s to %s when one member joined", p, scope, again[p])
		}
	}
}
