// Package warehousetest holds checks every load.Warehouse must pass, for
// the tests of its implementations (load/duckdb, and load.Memory, the
// fake the pipeline's tests run on), so that both keep one contract.
package warehousetest

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

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

// DeletedAndCarriedAgain commits, as source "s", a run "r1" of two
// resources of tables[0], then a run "r2" that deletes both and carries
// them again: one exactly as stored (the same meta.lastUpdated and
// content hash), one older than stored. The delete removes the stored
// versions, so both versions r2 carries are taken: the table holds both
// resources after it, none counted unchanged or skipped as older.
func DeletedAndCarriedAgain(t *testing.T, w load.Warehouse, tables []load.Table) {
	t.Helper()
	tb := tables[0]
	t1, t2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	commit := func(run string, deleted []string, vs ...version) load.Stats {
		t.Helper()
		l, err := w.Begin(t.Context(), "s", tables)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Rollback(t.Context())
		var ts []load.Tombstone
		for _, id := range deleted {
			ts = append(ts, load.Tombstone{ResourceType: tb.Resource, ID: id})
		}
		if err := l.Delete(t.Context(), ts); err != nil {
			t.Fatal(err)
		}
		for name, rec := range map[string]arrow.RecordBatch{load.Resources: index(t, tb.Resource, vs), tb.Name: rows(t, tb, vs)} {
			err := l.WriteBatch(t.Context(), name, rec)
			rec.Release()
			if err != nil {
				t.Fatal(err)
			}
		}
		st, err := l.Commit(t.Context(), load.Run{ID: run, Source: "s", Scope: "all", Started: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	commit("r1", nil, version{"a", t2, 7}, version{"b", t2, 8})
	st := commit("r2", []string{"a", "b"}, version{"a", t2, 7}, version{"b", t1, 9})
	if st.Deleted != 2 || st.Unchanged != 0 || st.SkippedOlder != 0 {
		t.Errorf("r2: %d deleted, %d unchanged, %d skipped as older; want 2, 0, 0", st.Deleted, st.Unchanged, st.SkippedOlder)
	}
	n, err := w.TableRows(t.Context(), []string{tb.Name})
	if err != nil {
		t.Fatal(err)
	}
	if n[tb.Name] != 2 {
		t.Errorf("%s holds %d rows after r2, want 2 (a and b, carried again)", tb.Name, n[tb.Name])
	}
}

// version is a resource of the Resources stream: id, meta.lastUpdated
// and content hash.
type version struct {
	id      string
	updated time.Time
	hash    int64
}

// index is the Resources batch of vs, of type typ.
func index(t *testing.T, typ string, vs []version) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, load.ResourcesSchema)
	defer b.Release()
	for i, v := range vs {
		b.Field(0).(*array.StringBuilder).Append(typ)
		b.Field(1).(*array.StringBuilder).Append(v.id)
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(v.updated.UnixMicro()))
		b.Field(3).AppendNull()
		b.Field(4).(*array.StringBuilder).Append("f.ndjson")
		b.Field(5).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(6).(*array.Int64Builder).Append(v.hash)
	}
	return b.NewRecordBatch()
}

// rows is one row of t per version: its key, every other column null
// (which t's schema must allow).
func rows(t *testing.T, tb load.Table, vs []version) arrow.RecordBatch {
	t.Helper()
	cols := make([]arrow.Array, tb.Schema.NumFields())
	for i, f := range tb.Schema.Fields() {
		switch {
		case f.Name == tb.Key:
			b := array.NewStringBuilder(memory.DefaultAllocator)
			for _, v := range vs {
				b.Append(v.id)
			}
			cols[i] = b.NewArray()
			b.Release()
		case f.Nullable:
			cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, f.Type, len(vs))
		default:
			t.Fatalf("%s: column %s is neither the key nor nullable", tb.Name, f.Name)
		}
	}
	defer func() {
		for _, c := range cols {
			c.Release()
		}
	}()
	return array.NewRecordBatch(tb.Schema, cols, int64(len(vs)))
}
