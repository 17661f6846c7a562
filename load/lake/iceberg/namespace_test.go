package iceberg

import (
	"errors"
	"slices"
	"testing"

	"github.com/apache/iceberg-go"

	"github.com/fhirlake/fhirlake/load"
)

// TestNamespaceOwnership: who may write which source, for a lake of an
// earlier release (one warehouse, legacy keys) and for a shared one, and
// how a publish records itself.
func TestNamespaceOwnership(t *testing.T) {
	lk := &Lake{location: "s3://lake/x", ns: []string{"fhirlake"}}
	legacy := namespace{iceberg.Properties{propWarehouseID: "w1", propWarehouse: "/w1.duckdb", propRuns: "3", propLastRun: "r3"}}
	shared := namespace{iceberg.Properties{
		propSourcePrefix + "a.warehouse-id": "w1", propSourcePrefix + "a.warehouse": "/w1.duckdb",
		propSourcePrefix + "b.warehouse-id": "w2", propSourcePrefix + "b.warehouse": "/w2.duckdb",
		propMirrorPrefix + "w1.runs": "2", propMirrorPrefix + "w1.last-run": "r2",
	}}
	for _, tc := range []struct {
		name       string
		ns         namespace
		id, source string
		refused    bool
	}{
		{"new lake", namespace{iceberg.Properties{}}, "w9", "a", false},
		{"legacy owner", legacy, "w1", "a", false},
		{"legacy, another warehouse, any source", legacy, "w2", "z", true},
		{"shared, own source", shared, "w2", "b", false},
		{"shared, another's source", shared, "w2", "a", true},
		{"shared, new source", shared, "w3", "c", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ns.check(lk, "/"+tc.id+".duckdb", tc.id, tc.source)
			if got := errors.Is(err, load.ErrLakeMismatch); got != tc.refused {
				t.Errorf("check: %v, want refused %v", err, tc.refused)
			}
		})
	}
	if shared.shared("w1") != true || (namespace{iceberg.Properties{propSourcePrefix + "a.warehouse-id": "w1"}}).shared("w1") {
		t.Error("shared: wrong")
	}
	if got := shared.owned("w2"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("owned(w2) = %v", got)
	}
	// Lag: the legacy keys count for the legacy owner until it migrates.
	for _, tc := range []struct {
		ns     namespace
		id     string
		runs   []string
		behind bool
	}{
		{legacy, "w1", []string{"r1", "r2", "r3", "r4"}, false},
		{legacy, "w1", []string{"r1", "r2", "r3", "r4", "r5"}, true},
		{shared, "w1", []string{"r1", "r2", "r3"}, false},
		{shared, "w1", []string{"r1", "r3"}, true}, // the lake mirrors a run the warehouse lost
		{shared, "w2", []string{"r1"}, true},       // never completed a publish
	} {
		if got := tc.ns.behind(tc.id, tc.runs); got != tc.behind {
			t.Errorf("behind(%s, %v) = %v", tc.id, tc.runs, got)
		}
	}
	removals, updates := legacy.record("w1", "/w1.duckdb", []string{"a", "b"}, []string{"r1", "r2", "r3", "r4"})
	if !slices.Equal(removals, []string{propWarehouseID, propWarehouse, propRuns, propLastRun}) {
		t.Errorf("removals %v", removals)
	}
	for k, want := range map[string]string{
		propMirrorPrefix + "w1.runs": "4", propMirrorPrefix + "w1.last-run": "r4",
		propSourcePrefix + "a.warehouse-id": "w1", propSourcePrefix + "b.warehouse": "/w1.duckdb",
	} {
		if updates[k] != want {
			t.Errorf("%s = %q, want %q", k, updates[k], want)
		}
	}
	if removals, _ := shared.record("w2", "/w2.duckdb", []string{"b"}, nil); removals != nil {
		t.Errorf("a shared lake's publish removes %v", removals)
	}
}
