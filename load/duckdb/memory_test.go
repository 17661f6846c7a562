//go:build duckdb_arrow

package duckdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
)

// TestMemoryBound: DuckDB's memory is bounded by default, the bound can be
// set through MemoryEnv, and a bound DuckDB cannot read is refused naming
// the variable.
func TestMemoryBound(t *testing.T) {
	for _, tc := range []struct {
		env, want, err string
	}{
		{env: "", want: "366.2 MiB"}, // defaultMemoryMB, 384 MB
		{env: "2GB", want: "1.8 GiB"},
		{env: "lots", err: MemoryEnv},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(MemoryEnv, tc.env)
			w, err := Open(context.Background(), filepath.Join(t.TempDir(), "w.duckdb"))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open: %v, want an error naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var got string
			if err := w.conn.QueryRowContext(context.Background(), "SELECT current_setting('memory_limit')").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("memory_limit = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestLimitMemoryForCopy: with the default bound DuckDB's memory limit is
// copyMemory until restore puts the default back; a bound the user set
// holds throughout.
func TestLimitMemoryForCopy(t *testing.T) {
	limit := func(w *Warehouse) string {
		t.Helper()
		return query(t, w, "SELECT current_setting('memory_limit')")[0]
	}
	for _, c := range []struct {
		name, env, during string
	}{
		{"default", "", "244.1 MiB"},
		{"set by the user", "512MB", "488.2 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(MemoryEnv, c.env)
			w := openWith(t, filepath.Join(t.TempDir(), "w.duckdb"))
			before := limit(w)
			restore, err := w.LimitMemoryForCopy(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := limit(w); got != c.during {
				t.Errorf("memory limit while copying: %s, want %s", got, c.during)
			}
			restore()
			if got := limit(w); got != before {
				t.Errorf("memory limit after: %s, want %s as before", got, before)
			}
		})
	}
}

// TestRoomForDeletes: a run whose few changes are spread over a large
// table deletes from every vector of it, which DuckDB holds in memory
// until the commit; with the default bound the commit raises DuckDB's
// limit for them, and puts it back after, while a bound the user set is
// kept (and the run fails naming it, changing nothing).
func TestRoomForDeletes(t *testing.T) {
	defer func(m, h int64) { defaultMemoryMB, deleteHeadroom = m, h }(defaultMemoryMB, deleteHeadroom)
	defaultMemoryMB, deleteHeadroom = 40, 24<<20
	const rows = 6_000_000 // 8 bytes each: 48 MB of deletes
	var ids []string
	for i := 0; i < rows; i += 1500 { // about one per vector
		ids = append(ids, fmt.Sprintf("c%d", i))
	}
	for _, c := range []struct {
		name, env string
		ok        bool
	}{{"default bound", "", true}, {"bound set by the user", "40MB", false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(MemoryEnv, c.env)
			w := openWith(t, filepath.Join(t.TempDir(), "w.duckdb"))
			loadRun(t, w, "r1", batch{load.Resources, resources("c0")}, batch{"parent", parents("c0")})
			fill := fmt.Sprintf(`INSERT INTO parent (data_source, id) SELECT 'test', 'c' || range FROM range(1, %d)`, rows)
			if err := w.Exec(t.Context(), fill); err != nil {
				t.Fatal(err)
			}
			l, err := w.Begin(t.Context(), "test", tables)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Rollback(t.Context())
			for _, b := range []batch{{load.Resources, resources(ids...)}, {"parent", parents(ids...)}} {
				if err := l.WriteBatch(t.Context(), b.table, b.rec); err != nil {
					t.Fatal(err)
				}
				b.rec.Release()
			}
			_, err = l.Commit(t.Context(), load.Run{ID: "r2", Source: "test", Scope: "all", Started: time.Now()})
			if c.ok && err != nil {
				t.Fatalf("commit: %v", err)
			}
			if !c.ok && (!errors.Is(err, load.ErrOutOfMemory) || !strings.Contains(err.Error(), MemoryEnv+" (now 40MB)")) {
				t.Fatalf("commit: %v, want %v naming %s", err, load.ErrOutOfMemory, MemoryEnv)
			}
			want := []string{fmt.Sprint(rows)}
			if got := query(t, w, "SELECT count(*) FROM parent"); !slices.Equal(got, want) {
				t.Errorf("%s rows after the run, want %s", got, want)
			}
			if got := query(t, w, "SELECT current_setting('memory_limit')"); !slices.Equal(got, []string{"38.1 MiB"}) {
				t.Errorf("memory_limit %s after the commit, want the bound back (38.1 MiB)", got)
			}
		})
	}
}
