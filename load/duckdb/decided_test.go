//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/load"
)

// TestDecidedComesBeforeTheChanges: a run whose lake reads the changed
// resources (load.ChangesByKey, load.ChangesAll) has Commit call its
// Decided hook once, with the very lists its Changes.Keys then hold and
// while the tables still hold the replaced rows; a run whose lake does
// not read them has no call.
func TestDecidedComesBeforeTheChanges(t *testing.T) {
	for _, tt := range []struct {
		name  string
		need  load.ChangeNeed
		calls int
	}{
		{"by key", load.ChangesByKey, 1},
		{"all", load.ChangesAll, 1},
		{"by partition", load.ChangesByPartition, 0},
		{"none", load.ChangesNone, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			w := openWith(t, filepath.Join(t.TempDir(), "w.duckdb"))
			loadRun(t, w, "r1", batch{load.Resources, resources("a", "b")}, batch{"parent", parents("a", "b")}, batch{"child", children("a", 1, "b", 1)})
			l, err := w.Begin(ctx, "test", tables)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []batch{{load.Resources, resources("a")}, {"parent", parents("a")}, {"child", children("a", 2)}} {
				if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
					t.Fatal(err)
				}
				b.rec.Release()
			}
			var got []map[string][]string
			var rowsThen []string
			run := load.Run{ID: "r2", Source: "test", Scope: "all", Started: time.Now(), Changes: tt.need,
				Decided: func(keys map[string][]string) {
					got = append(got, keys)
					rowsThen = query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")
				}}
			st, err := l.Commit(ctx, run)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.calls {
				t.Fatalf("Decided called %d times, want %d", len(got), tt.calls)
			}
			if tt.calls == 0 {
				return
			}
			if diff := cmp.Diff(map[string][]string{"Claim": {"a"}}, got[0]); diff != "" {
				t.Errorf("keys given to Decided (-want +got):\n%s", diff)
			}
			if ids, mine := st.Changes.Keys["Claim"], got[0]["Claim"]; len(ids) != 1 || &ids[0] != &mine[0] {
				t.Errorf("Changes.Keys %v are not the lists given to Decided", st.Changes.Keys)
			}
			if diff := cmp.Diff([]string{"a:1", "b:1"}, rowsThen); diff != "" {
				t.Errorf("rows when Decided was called (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"a:2", "b:1"}, query(t, w, "SELECT parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
				t.Errorf("rows after the commit (-want +got):\n%s", diff)
			}
		})
	}
}
