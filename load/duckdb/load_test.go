//go:build duckdb_arrow

package duckdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

var (
	parentSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
		{Name: "updated", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	childSchema = arrow.NewSchema([]arrow.Field{
		{Name: "parent_id", Type: arrow.BinaryTypes.String},
		{Name: "seq", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	tables = []load.Table{
		{Name: "parent", Resource: "Claim", Key: "id", Schema: parentSchema, PrimaryKey: []string{"id"}},
		{Name: "child", Resource: "Claim", Key: "parent_id", Schema: childSchema, PrimaryKey: []string{"parent_id", "seq"}},
	}
)

func parents(ids ...string) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, parentSchema)
	defer b.Release()
	for i, id := range ids {
		b.Field(0).(*array.StringBuilder).Append(id)
		b.Field(1).(*array.Decimal128Builder).Append(decimalCents(int64(100*i + 25)))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixMicro()))
	}
	return b.NewRecordBatch()
}

func decimalCents(c int64) decimal128.Num { return decimal128.FromI64(c) }

func children(pairs ...any) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, childSchema)
	defer b.Release()
	for i := 0; i < len(pairs); i += 2 {
		b.Field(0).(*array.StringBuilder).Append(pairs[i].(string))
		b.Field(1).(*array.Int32Builder).Append(int32(pairs[i+1].(int)))
	}
	return b.NewRecordBatch()
}

// resources lists Claim resources, all last updated at the same instant.
func resources(ids ...string) arrow.RecordBatch {
	vs := make([]version, len(ids))
	for i, id := range ids {
		vs[i] = version{id: id, updated: "2025-01-02T03:04:05Z"}
	}
	return versions(vs...)
}

// version is one resource of the Resources stream.
type version struct {
	id, updated, versionID string
}

func versions(vs ...version) arrow.RecordBatch {
	b := array.NewRecordBuilder(memory.DefaultAllocator, load.ResourcesSchema)
	defer b.Release()
	for i, v := range vs {
		b.Field(0).(*array.StringBuilder).Append("Claim")
		b.Field(1).(*array.StringBuilder).Append(v.id)
		if v.updated == "" {
			b.Field(2).AppendNull()
		} else {
			ts, _ := time.Parse(time.RFC3339, v.updated)
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
		}
		if v.versionID == "" {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.StringBuilder).Append(v.versionID)
		}
		b.Field(4).(*array.StringBuilder).Append("Claim.001.ndjson")
		b.Field(5).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(6).AppendNull()
	}
	return b.NewRecordBatch()
}

type batch struct {
	table string
	rec   arrow.RecordBatch
}

func loadRun(t *testing.T, w *Warehouse, id string, batches ...batch) load.Stats {
	t.Helper()
	ctx := t.Context()
	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: id, Source: "test", Scope: "all", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func query(t *testing.T, w *Warehouse, q string) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestReloadReplacesResourcesAndTheirChildren(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	loadRun(t, w, "r1",
		batch{load.Resources, resources("a", "b")},
		batch{"parent", parents("a", "b")},
		batch{"child", children("a", 1, "a", 2, "b", 1)})
	// Run 2 carries b again with one child fewer, and a new c; a is untouched.
	st := loadRun(t, w, "r2",
		batch{load.Resources, resources("b", "c")},
		batch{"parent", parents("b", "c")},
		batch{"child", children("c", 1)})

	if diff := cmp.Diff(map[string]int64{"parent": 2, "child": 1}, st.Rows); diff != "" {
		t.Errorf("stats rows (-want +got):\n%s", diff)
	}
	got := query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")
	if diff := cmp.Diff([]string{"a:1", "a:2", "c:1"}, got); diff != "" {
		t.Errorf("child rows (-want +got):\n%s", diff)
	}
	got = query(t, w, "SELECT id || ' ' || amount || ' ' || typeof(amount) || ' ' || typeof(updated) FROM parent ORDER BY 1")
	want := []string{"a 0.25 DECIMAL(12,2) TIMESTAMP WITH TIME ZONE", "b 0.25 DECIMAL(12,2) TIMESTAMP WITH TIME ZONE", "c 1.25 DECIMAL(12,2) TIMESTAMP WITH TIME ZONE"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parent rows (-want +got):\n%s", diff)
	}
	got = query(t, w, "SELECT run_id || ' ' || resources || ' ' || rows_per_table['parent'] FROM fhirlake_runs ORDER BY 1")
	if diff := cmp.Diff([]string{"r1 2 2", "r2 2 2"}, got); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}

	lake := t.TempDir()
	if err := w.WriteLake(t.Context(), lake, tables, nil); err != nil {
		t.Fatal(err)
	}
	got = query(t, w, "SELECT count(*)::VARCHAR FROM read_parquet("+sqlString(filepath.Join(lake, "child", "data_source=test", LakeFile))+")")
	if diff := cmp.Diff([]string{"3"}, got); diff != "" {
		t.Errorf("lake child rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"data_source=test/" + LakeFile}, lakeFiles(t, filepath.Join(lake, "parent"))); diff != "" {
		t.Errorf("lake/parent (-want +got):\n%s", diff)
	}
}

func TestRollbackLeavesWarehouseUntouched(t *testing.T) {
	ctx := context.Background()
	w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	loadRun(t, w, "r1", batch{load.Resources, resources("a")}, batch{"parent", parents("a")})

	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	rec := parents("x", "y")
	if err := l.WriteBatch(ctx, "parent", rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	l.Rollback(ctx)
	if got := query(t, w, "SELECT string_agg(id, ',') FROM parent"); got[0] != "a" {
		t.Errorf("parent ids after rollback = %v, want a", got)
	}
	if got := query(t, w, "SELECT count(*)::VARCHAR FROM fhirlake_runs"); got[0] != "1" {
		t.Errorf("runs after rollback = %v, want 1", got)
	}
}

func TestDeletesRemoveResourcesAndChildren(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	loadRun(t, w, "r1",
		batch{load.Resources, resources("a", "b", "c")},
		batch{"parent", parents("a", "b", "c")},
		batch{"child", children("a", 1, "b", 1, "b", 2, "c", 1)})

	ctx := t.Context()
	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	// b is deleted; c is deleted and re-exported in the same run, so it stays.
	l.Delete(ctx, []load.Tombstone{{ResourceType: "Claim", ID: "b"}, {ResourceType: "Claim", ID: "c"}, {ResourceType: "Patient", ID: "a"}})
	for _, b := range []batch{{load.Resources, resources("c")}, {"parent", parents("c")}, {"child", children("c", 7)}} {
		l.WriteBatch(ctx, b.table, b.rec)
		b.rec.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: "r2", Source: "test", Scope: "all", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if st.Deleted != 3 {
		t.Errorf("stats deleted = %d, want 3", st.Deleted)
	}
	if diff := cmp.Diff([]string{"a:1", "c:7"}, query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
		t.Errorf("child rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "c"}, query(t, w, "SELECT id FROM parent ORDER BY 1")); diff != "" {
		t.Errorf("parent rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r2 Claim b", "r2 Claim c", "r2 Patient a"}, query(t, w, "SELECT concat_ws(' ', run_id, resource_type, id) FROM fhirlake_deleted ORDER BY 1")); diff != "" {
		t.Errorf("fhirlake_deleted (-want +got):\n%s", diff)
	}
}

// TestBulkWritesLeaveQueriesOrdered: the commit's inserts and the lake's
// COPY run with DuckDB free to reorder rows (unordered), and put the
// setting back, so that the warehouse's queries keep DuckDB's default.
func TestBulkWritesLeaveQueriesOrdered(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	setting := func(after string) {
		t.Helper()
		if got := query(t, w, "SELECT current_setting('preserve_insertion_order')::VARCHAR"); len(got) != 1 || got[0] != "true" {
			t.Errorf("preserve_insertion_order after %s: %v, want true", after, got)
		}
	}
	loadRun(t, w, "r1", batch{load.Resources, versions(version{"a", "2025-01-01T00:00:00Z", "1"})}, batch{"parent", parents("a")}, batch{"child", children("a", 1)})
	setting("a commit")
	if _, err := w.WriteTableParquet(t.Context(), "parent", filepath.Join(t.TempDir(), "p.parquet")); err != nil {
		t.Fatal(err)
	}
	setting("a COPY")
	err = w.unordered(t.Context(), func() error {
		if got := query(t, w, "SELECT current_setting('preserve_insertion_order')::VARCHAR"); len(got) != 1 || got[0] != "false" {
			t.Errorf("preserve_insertion_order inside unordered: %v, want false", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
