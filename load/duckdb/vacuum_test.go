//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestCheckpointsKeepRowGroups: a checkpoint of the warehouse leaves a
// table's row groups as they are when deletes would let DuckDB merge
// neighbours (Compact reclaims deleted rows instead), where a plain DuckDB
// database merges them.
func TestCheckpointsKeepRowGroups(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	rowGroups := func(conn *sql.Conn) (before, after int) {
		t.Helper()
		count := func() int {
			var n int
			if err := conn.QueryRowContext(ctx, "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('t')").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, q := range []string{"CREATE TABLE t AS SELECT range AS i FROM range(600000)", "CHECKPOINT"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		before = count()
		for _, q := range []string{"DELETE FROM t WHERE i % 2 = 0", "CHECKPOINT"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		return before, count()
	}

	db, err := sql.Open("duckdb", filepath.Join(dir, "plain.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if before, after := rowGroups(conn); after >= before {
		t.Fatalf("plain DuckDB: %d row groups, then %d: it no longer merges them, and this test checks nothing", before, after)
	}

	w := openWith(t, filepath.Join(dir, "w.duckdb"))
	if before, after := rowGroups(w.conn); after != before {
		t.Errorf("warehouse: %d row groups, then %d after the checkpoint", before, after)
	}
}
