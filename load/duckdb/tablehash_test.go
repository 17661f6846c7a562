//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// withTables is versions(vs...) with content hash hash and, for each
// version, the table hashes of child and parent (the tables' order by
// name); nil hashes are a null list.
func withTables(hash int64, vs []version, hashes ...[]int64) arrow.RecordBatch {
	rec := versions(vs...)
	defer rec.Release()
	hb := array.NewInt64Builder(memory.DefaultAllocator)
	defer hb.Release()
	lb := array.NewListBuilder(memory.DefaultAllocator, arrow.PrimitiveTypes.Int64)
	defer lb.Release()
	for i := range vs {
		hb.Append(hash + int64(i))
		if hashes[i] == nil {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		lb.ValueBuilder().(*array.Int64Builder).AppendValues(hashes[i], nil)
	}
	h, l := hb.NewArray(), lb.NewArray()
	defer h.Release()
	defer l.Release()
	cols := append(append([]arrow.Array{}, rec.Columns()[:6]...), h, l)
	return array.NewRecordBatch(load.ResourcesSchema, cols, int64(len(vs)))
}

// TestSameRowsLeftAlone: a new version whose table hash for a table is
// the one the warehouse holds leaves that table's rows as they are (the
// staged copy, here deliberately different, is not written), and the
// run's changes name it for the other tables only; a version without
// comparable hashes, or one the run also deletes, is written whole.
func TestSameRowsLeftAlone(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	v1 := func(id string) version { return version{id, "2025-01-01T00:00:00Z", ""} }
	v2 := func(id string) version { return version{id, "2025-02-01T00:00:00Z", ""} }
	loadRun(t, w, "r1",
		batch{load.Resources, withTables(100, []version{v1("a"), v1("b"), v1("c")}, []int64{1, 2}, []int64{3, 4}, []int64{5, 6})},
		batch{"parent", parents("x", "a", "b", "c")}, // amounts 0.25, 1.25, 2.25, 3.25; x is no resource of the run, but staged
		batch{"child", children("a", 1, "b", 1, "c", 1)})
	rows := func() []string {
		return query(t, w, `SELECT 'parent ' || id || ' ' || amount FROM parent
			UNION ALL SELECT 'child ' || parent_id || ':' || seq FROM child ORDER BY 1`)
	}

	// a: its child rows are the same, its parent row not; b: the other
	// way round; c: a list of another length (another set of views).
	st := loadRun(t, w, "r2",
		batch{load.Resources, withTables(200, []version{v2("a"), v2("b"), v2("c")}, []int64{1, 9}, []int64{9, 4}, []int64{5})},
		batch{"parent", parents("a", "b", "c")}, // amounts 0.25, 1.25, 2.25
		batch{"child", children("a", 7, "b", 2, "c", 3)})
	want := []string{"child a:1", "child b:2", "child c:3", "parent a 0.25", "parent b 2.25", "parent c 2.25", "parent x 0.25"}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("rows after r2 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"Claim": {"a", "b", "c"}}, st.Changes.Keys); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string][]string{"child": {"b", "c"}, "parent": {"a", "c"}}, st.Changes.TableKeys); diff != "" {
		t.Errorf("TableKeys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int64{"child": 2, "parent": 2, load.IndexTable: 3}, st.Changes.Appended); diff != "" {
		t.Errorf("Appended (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a [1, 9]", "b [9, 4]", "c [5]"},
		query(t, w, "SELECT id || ' ' || table_hashes::VARCHAR FROM fhirlake_resources ORDER BY id")); diff != "" {
		t.Errorf("version index (-want +got):\n%s", diff)
	}

	// Every table the same: no table changes, the index does.
	st = loadRun(t, w, "r3",
		batch{load.Resources, withTables(300, []version{{"a", "2025-03-01T00:00:00Z", ""}}, []int64{1, 9})},
		batch{"parent", parents("a")}, batch{"child", children("a", 8)})
	if len(st.Changes.Tables) != 0 || !st.Changes.Index {
		t.Errorf("r3 changed tables %v (index %v), want none (and the index)", st.Changes.Tables, st.Changes.Index)
	}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("rows after r3 (-want +got):\n%s", diff)
	}

	// Deleted and carried again, unchanged (the same content hash): the
	// delete takes its rows, so they are written anew.
	ctx := t.Context()
	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	l.Delete(ctx, []load.Tombstone{{ResourceType: "Claim", ID: "a"}})
	for _, b := range []batch{
		{load.Resources, withTables(300, []version{{"a", "2025-03-01T00:00:00Z", ""}}, []int64{1, 9})},
		{"parent", parents("a")}, {"child", children("a", 8)},
	} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	if _, err := l.Commit(ctx, load.Run{ID: "r4", Source: "test", Scope: "all", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	want = []string{"child a:8", "child b:2", "child c:3", "parent a 0.25", "parent b 2.25", "parent c 2.25", "parent x 0.25"}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("rows after r4 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a r4", "b r2", "c r2"}, query(t, w, "SELECT id || ' ' || run_id FROM fhirlake_resources ORDER BY id")); diff != "" {
		t.Errorf("version index after r4 (-want +got):\n%s", diff)
	}
}
