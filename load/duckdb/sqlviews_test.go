//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestApplySQLOrdersByDependency: a view may read a view whose file sorts
// after its own; a view that can never bind is the one error, naming its
// file, and does not keep the others from being created.
func TestApplySQLOrdersByDependency(t *testing.T) {
	ctx := t.Context()
	w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fsys := fstest.MapFS{
		"a_reads_c.sql":  {Data: []byte("CREATE OR REPLACE VIEW a AS SELECT n + 1 AS n FROM c;")},
		"b_broken.sql":   {Data: []byte("CREATE OR REPLACE VIEW b AS SELECT * FROM no_such_table;")},
		"c_base.sql":     {Data: []byte("CREATE OR REPLACE VIEW c AS SELECT 41 AS n;")},
		"d_reads_a.sql":  {Data: []byte("CREATE OR REPLACE VIEW d AS SELECT n FROM a;")},
		"not_a_view.txt": {Data: []byte("ignored")},
	}
	errs := w.ApplySQL(ctx, fsys)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "b_broken.sql") {
		t.Fatalf("errors = %v, want one naming b_broken.sql", errs)
	}
	rows, err := w.Query(ctx, "SELECT n FROM d")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if n != 42 {
		t.Fatalf("d = %d, want 42", n)
	}
}
