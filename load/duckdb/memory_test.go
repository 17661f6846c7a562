//go:build duckdb_arrow

package duckdb

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestMemoryBound: DuckDB's memory is bounded by default, the bound can be
// set through MemoryEnv, and a bound DuckDB cannot read is refused naming
// the variable.
func TestMemoryBound(t *testing.T) {
	for _, tc := range []struct {
		env, want, err string
	}{
		{env: "", want: "366.2 MiB"}, // DefaultMemory, 384 MB
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
