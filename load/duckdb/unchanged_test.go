//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// hashed is versions(v) with content hashes; 0 is a null hash.
func hashed(v version, hash int64) arrow.RecordBatch {
	rec := versions(v)
	defer rec.Release()
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	if hash == 0 {
		b.AppendNull()
	} else {
		b.Append(hash)
	}
	h := b.NewArray()
	defer h.Release()
	cols := append(append([]arrow.Array{}, rec.Columns()[:6]...), h)
	return array.NewRecordBatch(load.ResourcesSchema, cols, 1)
}

// TestIdenticalVersionIsNoOp: a version the warehouse holds with the same
// content hash changes nothing, not even the lake's files; the same
// version with another hash (a server that changed content without a new
// version) or without one is taken again.
func TestIdenticalVersionIsNoOp(t *testing.T) {
	v := version{"a", "2025-01-01T00:00:00Z", "1"}
	tests := []struct {
		name          string
		first, second int64 // hashes, 0 for none
		wantRows      []string
		wantUnchanged int64
	}{
		{"same hash", 7, 7, []string{"a:1"}, 1},
		{"other hash", 7, 8, []string{"a:2"}, 0},
		{"no hash now", 7, 0, []string{"a:2"}, 0},
		{"no hash before", 0, 7, []string{"a:2"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			loadRun(t, w, "r1", batch{load.Resources, hashed(v, tt.first)}, batch{"child", children("a", 1)}, batch{"parent", parents("a")})
			st := loadRun(t, w, "r2", batch{load.Resources, hashed(v, tt.second)}, batch{"child", children("a", 2)}, batch{"parent", parents("a")})
			if diff := cmp.Diff(tt.wantRows, query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if st.Unchanged != tt.wantUnchanged || st.SkippedOlder != 0 {
				t.Errorf("unchanged %d, skipped older %d; want %d, 0", st.Unchanged, st.SkippedOlder, tt.wantUnchanged)
			}
			if tt.wantUnchanged > 0 && len(st.Changes.Tables) != 0 {
				t.Errorf("an unchanged reload changed lake tables %v", st.Changes.Tables)
			}
			if tt.wantUnchanged == 0 && len(st.Changes.Tables) != 2 {
				t.Errorf("a replaced version changed lake tables %v, want parent and child", st.Changes.Tables)
			}
			wantRun := "r2"
			if tt.wantUnchanged > 0 {
				wantRun = "r1" // the run that loaded the rows there
			}
			if diff := cmp.Diff([]string{wantRun}, query(t, w, "SELECT run_id FROM fhirlake_resources")); diff != "" {
				t.Errorf("version index (-want +got):\n%s", diff)
			}
		})
	}
}

// TestVersionIndexUnique: whatever runs replace, skip or repeat, the
// version index holds one row per source, type and id (it has no
// primary key to say so).
func TestVersionIndexUnique(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	runs := [][]version{
		{{"a", "2025-01-01T00:00:00Z", "1"}, {"b", "2025-01-01T00:00:00Z", "1"}},
		{{"a", "2025-01-01T00:00:00Z", "1"}},                // a tie, taken again
		{{"a", "2024-01-01T00:00:00Z", "0"}},                // older, skipped
		{{"b", "2025-02-01T00:00:00Z", "2"}, {"c", "", ""}}, // newer, new
	}
	for i, vs := range runs {
		loadRun(t, w, string(rune('1'+i)), batch{load.Resources, versions(vs...)})
	}
	if diff := cmp.Diff([]string{"a 2", "b 4", "c 4"}, query(t, w, "SELECT id || ' ' || run_id FROM fhirlake_resources ORDER BY id")); diff != "" {
		t.Errorf("version index (-want +got):\n%s", diff)
	}
}

// TestUpgradeFromLayout2: the version index gets its content_hash column,
// null for what it held, so that the next run carrying a version takes it
// once more, and the one after finds it unchanged.
func TestUpgradeFromLayout2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	v := version{"a", "2025-01-01T00:00:00Z", "1"}
	loadRun(t, w, "r1", batch{load.Resources, versions(v)}, batch{"child", children("a", 1)})
	// Back to layout 2 as a release of that layout left it.
	if err := w.exec(t.Context(), `ALTER TABLE fhirlake_resources DROP COLUMN content_hash;
		UPDATE fhirlake_warehouse SET value = '2' WHERE key = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if w, err = Open(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Version() != 2 {
		t.Fatalf("version %d, want 2", w.Version())
	}
	if _, err := w.Begin(t.Context(), "test", tables); err == nil {
		t.Fatal("Begin on a layout 2 warehouse succeeded")
	}
	if err := w.Upgrade(t.Context(), tables); err != nil {
		t.Fatal(err)
	}
	if w.Version() != load.SchemaVersion {
		t.Fatalf("version %d after Upgrade", w.Version())
	}
	if st := loadRun(t, w, "r2", batch{load.Resources, hashed(v, 5)}, batch{"child", children("a", 1)}); st.Unchanged != 0 {
		t.Errorf("first run after the upgrade: %d unchanged, want 0", st.Unchanged)
	}
	if st := loadRun(t, w, "r3", batch{load.Resources, hashed(v, 5)}, batch{"child", children("a", 1)}); st.Unchanged != 1 {
		t.Errorf("second run after the upgrade: %d unchanged, want 1", st.Unchanged)
	}
	if diff := cmp.Diff([]string{"a:1"}, query(t, w, "SELECT parent_id || ':' || seq FROM child")); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}
