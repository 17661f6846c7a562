//go:build duckdb_arrow

package duckdb

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestBlockSize: a new warehouse is made of blockSize blocks; one DuckDB
// made with its default 256 kB blocks opens as it is, read-write and
// read-only, and keeps them.
func TestBlockSize(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.duckdb")
	w, err := Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileBlockSize(t, w.conn); got != blockSize {
		t.Errorf("new warehouse: %d-byte blocks, want %d", got, blockSize)
	}
	w.Close()

	old := filepath.Join(dir, "old.duckdb")
	db, err := openDuckDB(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.exec(ctx, "ATTACH "+sqlString(old)+" AS old (BLOCK_SIZE 262144)"); err != nil {
		t.Fatal(err)
	}
	db.close()
	w, err = Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileBlockSize(t, w.conn); got != 262144 {
		t.Errorf("warehouse made with 256 kB blocks: %d-byte blocks after Open", got)
	}
	// A reader in the same process shares the writer's database.
	r, err := OpenReadOnly(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	r, err = OpenReadOnly(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := fileBlockSize(t, r.conn); got != 262144 {
		t.Errorf("read-only: %d-byte blocks", got)
	}
}

func fileBlockSize(t *testing.T, conn *sql.Conn) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRowContext(t.Context(), "SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
