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
