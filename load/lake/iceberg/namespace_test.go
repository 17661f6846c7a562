package iceberg

import (
	"errors"
	"slices"
	"testing"

	"github.com/apache/iceberg-go"

	"github.com/fhirlake/fhirlake/load"
)

// TestNamespace: which warehouse may write a lake of an earlier release
// (one warehouse, legacy keys), when a warehouse lacks a source's latest
// state, when the lake lags behind a source's runs, and how a publish
// records itself.
func TestNamespace(t *testing.T) {
	lk := &Lake{location: "s3://lake/x", ns: []string{"fhirlake"}}
	legacy := namespace{iceberg.Properties{propWarehouseID: "w1", propWarehouse: "/w1.duckdb", propRuns: "3", propLastRun: "r3"}}
	shared := namespace{iceberg.Properties{
		sourceKey("a", "warehouse-id"): "w1", sourceKey("a", "warehouse"): "/w1.duckdb", sourceKey("a", "runs"): "2", sourceKey("a", "last-run"): "r2",
		sourceKey("b", "warehouse-id"): "w2", sourceKey("b", "warehouse"): "/w2.duckdb", sourceKey("b", "runs"): "1", sourceKey("b", "last-run"): "r7",
		propMirrorPrefix + "w1.runs": "2", propMirrorPrefix + "w1.last-run": "r2",
	}}
	for _, tc := range []struct {
		name       string
		ns         namespace
		id, source string
		refused    bool
		stale      bool
	}{
		{"new lake", namespace{iceberg.Properties{}}, "w9", "a", false, false},
		{"legacy owner", legacy, "w1", "a", false, false},
		{"legacy, another warehouse", legacy, "w2", "z", true, true},
		{"shared, own source", shared, "w2", "b", false, false},
		{"shared, another's source", shared, "w2", "a", false, true},
		{"shared, a new warehouse", shared, "", "a", false, true},
		{"shared, new source", shared, "w3", "c", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ns.check(lk, "/"+tc.id+".duckdb", tc.id)
			if got := errors.Is(err, load.ErrLakeMismatch); got != tc.refused {
				t.Errorf("check: %v, want refused %v", err, tc.refused)
			}
			if got := tc.ns.stale(tc.id, tc.source); got != tc.stale {
				t.Errorf("stale = %v, want %v", got, tc.stale)
			}
		})
	}
	if shared.shared("w1") != true || (namespace{iceberg.Properties{sourceKey("a", "warehouse-id"): "w1"}}).shared("w1") {
		t.Error("shared: wrong")
	}
	if got := shared.owned("w2"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("owned(w2) = %v", got)
	}
	for _, tc := range []struct {
		ns      namespace
		source  string
		runs    []string
		current string
		behind  bool
	}{
		{shared, "a", []string{"r1", "r2", "r3"}, "r3", false},
		{shared, "a", []string{"r1", "r2"}, "", false},              // a full publish of what the lake has
		{shared, "a", []string{"r1", "r2", "r3", "r4"}, "r4", true}, // r3 was never published
		{shared, "a", []string{"r1", "r3"}, "r3", true},             // the lake mirrors a run the warehouse lost
		{shared, "b", []string{"r7", "r8"}, "r8", false},            // run ids need not sort by time
		{shared, "c", []string{"r1"}, "r1", true},                   // never published
		{legacy, "a", []string{"r1", "r2", "r3", "r4"}, "r4", true}, // the legacy keys are per warehouse
	} {
		if got := tc.ns.behind(tc.source, tc.runs, tc.current); got != tc.behind {
			t.Errorf("behind(%s, %v, %s) = %v", tc.source, tc.runs, tc.current, got)
		}
	}
	removals, updates := legacy.record("w1", "/w1.duckdb", map[string]mirror{"a": {4, "r4"}, "b": {0, ""}})
	if !slices.Equal(removals, []string{propWarehouseID, propWarehouse, propRuns, propLastRun}) {
		t.Errorf("removals %v", removals)
	}
	for k, want := range map[string]string{
		sourceKey("a", "runs"): "4", sourceKey("a", "last-run"): "r4", sourceKey("b", "runs"): "0",
		sourceKey("a", "warehouse-id"): "w1", sourceKey("b", "warehouse"): "/w1.duckdb",
	} {
		if updates[k] != want {
			t.Errorf("%s = %q, want %q", k, updates[k], want)
		}
	}
	if removals, _ := shared.record("w2", "/w2.duckdb", map[string]mirror{"b": {2, "r8"}}); removals != nil {
		t.Errorf("a shared lake's publish removes %v", removals)
	}
	if removals, _ := shared.record("w1", "/w1.duckdb", map[string]mirror{"a": {3, "r3"}}); !slices.Equal(removals, []string{propMirrorPrefix + "w1.runs", propMirrorPrefix + "w1.last-run"}) {
		t.Errorf("the previous release's keys are not removed: %v", removals)
	}
}
