//go:build duckdb_arrow

package duckdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRowGroupSize: a warehouse file takes rows in row groups of
// rowGroupSize, new or not, and keeps those it had.
func TestRowGroupSize(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.exec(ctx, "CREATE TABLE t AS SELECT range AS i, range::VARCHAR AS s FROM range(100000)"); err != nil {
		t.Fatal(err)
	}
	if got, want := rowGroups(t, w, "t"), []string{"30720", "30720", "30720", "7840"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row groups of a new file: %v, want %v", got, want)
	}
	w.Close()

	// A file opened again (the size is not kept in it) appends row groups
	// of the same size.
	w, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.exec(ctx, "CREATE TABLE u AS SELECT range AS i FROM range(40000)"); err != nil {
		t.Fatal(err)
	}
	if got, want := rowGroups(t, w, "u"), []string{"30720", "9280"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("row groups after reopening: %v, want %v", got, want)
	}
}

// rowGroups lists the rows of each row group of table, in order.
func rowGroups(t *testing.T, w *Warehouse, table string) []string {
	t.Helper()
	return query(t, w, "SELECT max(count)::VARCHAR FROM pragma_storage_info("+sqlString(table)+") GROUP BY row_group_id ORDER BY row_group_id")
}

// TestOneInstancePerFile: the opens of one file in a process share one
// DuckDB instance (two would both write the file): each sees the others'
// commits, closing one leaves the others working, the last close closes
// the file (its WAL checkpointed away), and a reader's instance refuses a
// writer. Its spill folder is beside the file.
func TestOneInstancePerFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.exec(ctx, "CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	if got := query(t, b, "SELECT count(*)::VARCHAR FROM t"); got[0] != "1" {
		t.Errorf("second open sees %s rows, want 1", got[0])
	}
	// A link to the file opens the same instance.
	link := filepath.Join(t.TempDir(), "link.duckdb")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	l, err := OpenReadOnly(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, l, "SELECT count(*)::VARCHAR FROM t"); got[0] != "1" {
		t.Errorf("open through a link sees %s rows, want 1", got[0])
	}
	l.Close()
	if !sharedFile(path) {
		t.Error("sharedFile: false with three opens")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("write after another open closed: %v", err)
	}
	if got := query(t, r, "SELECT count(*)::VARCHAR FROM t"); got[0] != "2" {
		t.Errorf("reader sees %s rows, want 2", got[0])
	}
	// CHECKPOINT (compaction's first step) names the attached file.
	if !exists(path + ".wal") {
		t.Fatal("no WAL after a write")
	}
	if err := b.exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if exists(path + ".wal") {
		t.Error("the WAL is left after CHECKPOINT")
	}
	if got := query(t, r, "SELECT current_setting('temp_directory')"); got[0] != path+".tmp" {
		t.Errorf("spill folder %s, want %s", got[0], path+".tmp")
	}
	b.Close()
	r.Close()
	if sharedFile(path) || instances.byPath[path] != nil {
		t.Fatal("the instance outlived its last open")
	}
	if exists(path + ".wal") {
		t.Error("the WAL is left after the last close")
	}

	r, err = OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Open while this process reads the file: %v, want a read-only error", err)
	}
	if got := query(t, r, "SELECT count(*)::VARCHAR FROM t"); got[0] != "2" {
		t.Errorf("after reopening: %s rows, want 2", got[0])
	}
}
