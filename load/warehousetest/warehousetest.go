// Package warehousetest holds checks every load.Warehouse must pass, for
// the tests of its implementations (load/duckdb, and load.Memory, the
// fake the pipeline's tests run on), so that both keep one contract.
package warehousetest

import (
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
)

// RunOfSeveralExports commits, as source "s", a run "r-parts" that
// carries three exports (load.Run.Parts) and nothing else, and checks
// that each export's watermark moved in its own scope to its own
// transaction time (none without one, none in the run's own scope) and
// that CommittedJobs finds every export's job. tables are the ones w
// loads.
func RunOfSeveralExports(t *testing.T, w load.Warehouse, tables []load.Table) {
	t.Helper()
	l, err := w.Begin(t.Context(), "s", tables)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(t.Context())
	t1, t2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	types := []string{tables[0].Resource}
	run := load.Run{ID: "r-parts", Source: "s", Scope: "roster (3 exports)", Started: time.Now(), TransactionTime: t1,
		WatermarkTypes: types, Parts: []load.Part{
			{Scope: "patient/1of4", TransactionTime: t1, WatermarkTypes: types, Job: "j1"},
			{Scope: "patient/2of4", TransactionTime: t2, WatermarkTypes: types, Job: "j2"},
			{Scope: "patient/3of4", Job: "j3"}, // no transaction time: no watermark
		}}
	if _, err := l.Commit(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	for scope, want := range map[string]time.Time{"patient/1of4": t1, "patient/2of4": t2, "patient/3of4": {}, "roster (3 exports)": {}} {
		got, ok, err := w.Watermark(t.Context(), "s", scope, types)
		if err != nil || ok != !want.IsZero() || !got.Equal(want) {
			t.Errorf("watermark of %s: %v %v %v, want %v", scope, got, ok, err, want)
		}
	}
	jobs, err := w.CommittedJobs(t.Context(), []string{"j1", "j2", "j3", "j4"})
	if err != nil || len(jobs) != 3 || !jobs["j1"] || !jobs["j2"] || !jobs["j3"] {
		t.Errorf("committed jobs %v, %v; want j1, j2, j3", jobs, err)
	}
}
