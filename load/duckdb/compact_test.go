//go:build duckdb_arrow

package duckdb

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/load"
)

// TestCompact: once a table's deleted rows reach a tenth of those it
// stores, the warehouse file is rewritten with the same tables, rows,
// constraints, defaults and views, and stores no deleted row after; the
// warehouse stays open on the new file, with its identity. Below the
// share nothing is rewritten.
func TestCompact(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Close() }()
	const n = 200_000
	exec := func(qs ...string) {
		t.Helper()
		for _, q := range qs {
			if err := w.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(
		// Two data tables as loads make them, a keyed one and one with a
		// default and a check, each with n rows, and a view over one.
		`CREATE TABLE obs (data_source VARCHAR NOT NULL, id VARCHAR, code VARCHAR, value DOUBLE)`,
		`CREATE TABLE enc (data_source VARCHAR NOT NULL, id VARCHAR NOT NULL, status VARCHAR)`,
		`CREATE TABLE keyed (id INTEGER PRIMARY KEY, v VARCHAR)`,
		`CREATE TABLE defaulted (id INTEGER CHECK (id >= 0), v VARCHAR DEFAULT 'x')`,
		`INSERT INTO obs SELECT 'src-' || (i % 3), 'o' || i, 'c' || (i % 97), i / 7 FROM range(200000) r(i)`,
		`INSERT INTO enc SELECT 'src', 'e' || i, CASE WHEN i % 5 = 0 THEN NULL ELSE 'finished' END FROM range(200000) r(i)`,
		`INSERT INTO keyed SELECT i, 'v' || i FROM range(200000) r(i)`,
		`INSERT INTO defaulted SELECT i, 'v' || i FROM range(200000) r(i)`,
		`CREATE VIEW obs_codes AS SELECT code, count(*) AS n FROM obs GROUP BY code`,
		"CHECKPOINT",
		// enc loses 6% of its rows: not worth a rewrite.
		`DELETE FROM enc WHERE hash(id) % 100 < 6`,
		"CHECKPOINT",
	)
	file, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := w.Compact(ctx, false); err != nil || done.Rewritten || len(done.Tables) != 0 {
		t.Fatalf("compaction below the share: %+v, %v; want nothing", done, err)
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(file, now) {
		t.Fatalf("compaction below the share replaced the file (%v)", err)
	}

	// obs loses 12%, keyed and defaulted 30%.
	exec(`DELETE FROM obs WHERE hash(id) % 100 < 12`,
		`DELETE FROM keyed WHERE id % 10 < 3`,
		`DELETE FROM defaulted WHERE id % 10 < 3`,
		"CHECKPOINT")
	tables := []string{"defaulted", "enc", "keyed", "obs"}
	before, ddl := map[string]string{}, map[string]string{}
	for _, table := range tables {
		before[table] = tableDigest(t, w, table)
		ddl[table] = tableDDL(t, w, table)
	}
	before["obs_codes"] = tableDigest(t, w, "obs_codes")
	view := query(t, w, "SELECT sql FROM duckdb_views() WHERE view_name = 'obs_codes'")[0]
	live, err := w.TableRows(ctx, tables)
	if err != nil {
		t.Fatal(err)
	}
	if file, err = os.Stat(path); err != nil {
		t.Fatal(err)
	}
	id := w.ID()

	done, err := w.Compact(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var want []load.Compacted
	for _, table := range tables {
		want = append(want, load.Compacted{Table: table, Rows: live[table], Deleted: n - live[table]})
	}
	if diff := cmp.Diff(want, done.Tables); diff != "" {
		t.Fatalf("compacted (-want +got):\n%s", diff)
	}
	now, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !done.Rewritten || done.Before != file.Size() || done.After != now.Size() {
		t.Errorf("compaction %+v; want rewritten, from %d to %d bytes", done, file.Size(), now.Size())
	}
	if os.SameFile(file, now) || now.Size() >= file.Size() {
		t.Errorf("the file was not replaced by a smaller one: %d bytes, was %d", now.Size(), file.Size())
	}
	if now.Mode().Perm() != 0o600 {
		t.Errorf("the new file's mode is %v, want 0600", now.Mode().Perm())
	}
	if _, err := os.Stat(compactDir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the compaction's folder is left: %v", err)
	}
	for table, digest := range before {
		if got := tableDigest(t, w, table); got != digest {
			t.Errorf("%s changed: %s, was %s", table, got, digest)
		}
	}
	for _, table := range tables {
		if got := tableDDL(t, w, table); got != ddl[table] {
			t.Errorf("%s after compaction:\n%s\nbefore:\n%s", table, got, ddl[table])
		}
		var stored int64
		if err := w.conn.QueryRowContext(ctx, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = $1", table).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != live[table] {
			t.Errorf("%s stores %d rows, want %d", table, stored, live[table])
		}
	}
	if got := query(t, w, "SELECT sql FROM duckdb_views() WHERE view_name = 'obs_codes'")[0]; got != view {
		t.Errorf("the view after compaction:\n%s\nbefore:\n%s", got, view)
	}
	// The constraints hold, the default applies, and the warehouse writes.
	for q, wantErr := range map[string]string{
		`INSERT INTO obs VALUES (NULL, 'x', 'c', 1)`:       "NOT NULL",
		`INSERT INTO keyed VALUES (5, 'again')`:            "Duplicate key",
		`INSERT INTO defaulted VALUES (-1, 'negative')`:    "CHECK",
		`INSERT INTO defaulted (id) VALUES (1000000)`:      "",
		`INSERT INTO enc VALUES ('src', 'new', 'planned')`: "",
	} {
		err := w.Exec(ctx, q)
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("%s after compaction: %v, want %q", q, err, wantErr)
		}
	}
	if got := query(t, w, "SELECT v FROM defaulted WHERE id = 1000000")[0]; got != "x" {
		t.Errorf("the default after compaction gave %q, want x", got)
	}
	if w.ID() != id {
		t.Errorf("the warehouse's id is %s, was %s", w.ID(), id)
	}
	// Nothing left to reclaim: a second call rewrites nothing.
	if done, err := w.Compact(ctx, false); err != nil || done.Rewritten {
		t.Errorf("second compaction: %+v, %v; want nothing", done, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	if w.ID() != id {
		t.Errorf("the warehouse opened again has id %s, was %s", w.ID(), id)
	}
}

// TestCompactFreeBlocks: a file a quarter of whose blocks are free (and
// at least freeMinBytes) is rewritten though no table stores deleted
// rows.
func TestCompactFreeBlocks(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := openWith(t, path,
		`CREATE TABLE kept (id VARCHAR, v VARCHAR)`,
		`INSERT INTO kept SELECT 'k' || i, md5(i::VARCHAR) FROM range(100000) r(i)`,
		// Random strings do not compress: about 30 MB, dropped.
		`CREATE TABLE scratch AS SELECT md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS v FROM range(500000) r(i)`,
		"CHECKPOINT",
		"DROP TABLE scratch",
		"CHECKPOINT",
	)
	before := tableDigest(t, w, "kept")
	done, err := w.Compact(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if !done.Rewritten || len(done.Tables) != 0 || done.After >= done.Before {
		t.Fatalf("compaction %+v; want a rewrite to a smaller file, of no table's deleted rows", done)
	}
	if got := tableDigest(t, w, "kept"); got != before {
		t.Errorf("kept changed: %s, was %s", got, before)
	}
	if done, err := w.Compact(ctx, false); err != nil || done.Rewritten {
		t.Errorf("second compaction: %+v, %v; want nothing", done, err)
	}
}

// TestCompactForce: with force, a warehouse is rewritten though nothing is
// due, and the tables' few deleted rows are reclaimed.
func TestCompactForce(t *testing.T) {
	ctx := t.Context()
	w := openWith(t, filepath.Join(t.TempDir(), "w.duckdb"),
		`CREATE TABLE obs (id VARCHAR, v INTEGER)`,
		`INSERT INTO obs SELECT 'o' || i, i FROM range(100000) r(i)`,
		"CHECKPOINT",
		`DELETE FROM obs WHERE v % 100 = 0`,
		"CHECKPOINT",
	)
	if done, err := w.Compact(ctx, false); err != nil || done.Rewritten {
		t.Fatalf("compaction of 1%% deleted rows: %+v, %v; want nothing", done, err)
	}
	done, err := w.Compact(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want := load.Compaction{Rewritten: true, Tables: []load.Compacted{{Table: "obs", Rows: 99000, Deleted: 1000}}, Before: done.Before, After: done.After}
	if diff := cmp.Diff(want, done); diff != "" || done.Before == 0 || done.After == 0 {
		t.Errorf("forced compaction (-want +got):\n%s", diff)
	}
	var stored int64
	if err := w.conn.QueryRowContext(ctx, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'obs'").Scan(&stored); err != nil || stored != 99000 {
		t.Errorf("obs stores %d rows (%v), want 99000", stored, err)
	}
}

// TestCompactThroughALink: a warehouse opened through a symbolic link is
// compacted where the link leads, and the link stays.
func TestCompactThroughALink(t *testing.T) {
	ctx := t.Context()
	target := filepath.Join(t.TempDir(), "real.duckdb")
	link := filepath.Join(t.TempDir(), "w.duckdb")
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	w := openWith(t, link, quarterDeleted...)
	if done, err := w.Compact(ctx, false); err != nil || len(done.Tables) != 1 {
		t.Fatalf("compaction: %+v, %v; want obs", done, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced (%v)", err)
	}
	if got := query(t, w, "SELECT count(*) FROM obs")[0]; got != "75000" {
		t.Errorf("after compaction obs holds %s rows, want 75000", got)
	}
	var stored int64
	if err := w.conn.QueryRowContext(ctx, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'obs'").Scan(&stored); err != nil || stored != 75000 {
		t.Errorf("obs stores %d rows (%v), want 75000: the compacted file is not the one open", stored, err)
	}
}

// quarterDeleted makes obs, 100,000 rows of which a quarter are deleted:
// compaction is due.
var quarterDeleted = []string{
	`CREATE TABLE obs (id VARCHAR, v INTEGER)`,
	`INSERT INTO obs SELECT 'o' || i, i FROM range(100000) r(i)`,
	"CHECKPOINT",
	`DELETE FROM obs WHERE v % 4 = 0`,
}

// openWith opens a warehouse at path, to be closed when the test ends,
// and runs qs on it.
func openWith(t *testing.T, path string, qs ...string) *Warehouse {
	t.Helper()
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	for _, q := range qs {
		if err := w.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return w
}

// TestCompactFailureLeavesTheFile: a compaction that fails after the
// copy leaves the old file in place, open and whole, and no copy behind.
func TestCompactFailureLeavesTheFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := openWith(t, path, quarterDeleted...)
	file, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected")
	compactHook = func(step string) error {
		if step == "copied" {
			return injected
		}
		return nil
	}
	defer func() { compactHook = nil }()
	if _, err := w.Compact(ctx, false); !errors.Is(err, injected) {
		t.Fatalf("compaction: %v, want the injected error", err)
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(file, now) {
		t.Errorf("a failed compaction replaced the file (%v)", err)
	}
	if _, err := os.Stat(compactDir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed compaction left its folder: %v", err)
	}
	if got := query(t, w, "SELECT count(*) FROM obs")[0]; got != "75000" {
		t.Errorf("after a failed compaction obs holds %s rows, want 75000", got)
	}
	if err := w.Exec(ctx, `INSERT INTO obs VALUES ('new', 1)`); err != nil {
		t.Errorf("the warehouse does not write after a failed compaction: %v", err)
	}
}

// TestCompactKilled: a compaction killed after its copy leaves the old
// file, and the next compaction clears what the killed one left; one
// killed after its rename leaves the new file. Either way the warehouse
// opens with its rows.
func TestCompactKilled(t *testing.T) {
	for _, c := range []struct {
		step   string
		stored string // rows obs stores after the kill
	}{
		{"copied", "100000"},
		{"renamed", "75000"},
	} {
		t.Run(c.step, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "w.duckdb")
			w := openWith(t, path, quarterDeleted...)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCompactKilledHelper$")
			cmd.Env = append(os.Environ(), "FHIRLAKE_COMPACT_KILL_AT="+c.step, "FHIRLAKE_COMPACT_KILL_FILE="+path)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the helper was not killed: %v\n%s", err, out)
			}
			w = openWith(t, path)
			if got := query(t, w, "SELECT count(*) FROM obs")[0]; got != "75000" {
				t.Errorf("after the kill obs holds %s rows, want 75000", got)
			}
			if got := query(t, w, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = 'obs'")[0]; got != c.stored {
				t.Errorf("after the kill obs stores %s rows, want %s", got, c.stored)
			}
			done, err := w.Compact(t.Context(), false)
			if err != nil {
				t.Fatal(err)
			}
			if done.Rewritten != (c.step == "copied") {
				t.Errorf("the next compaction: %+v", done)
			}
			if _, err := os.Stat(compactDir(path)); !errors.Is(err, os.ErrNotExist) && done.Rewritten {
				t.Errorf("the next compaction left the killed one's folder: %v", err)
			}
		})
	}
}

// TestCompactKilledHelper is TestCompactKilled's child: it compacts the
// warehouse and kills itself at a step.
func TestCompactKilledHelper(t *testing.T) {
	step := os.Getenv("FHIRLAKE_COMPACT_KILL_AT")
	if step == "" {
		t.Skip("helper process of TestCompactKilled")
	}
	w, err := Open(t.Context(), os.Getenv("FHIRLAKE_COMPACT_KILL_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	compactHook = func(s string) error {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return nil
	}
	w.Compact(t.Context(), false)
	t.Fatal("the compaction was not killed")
}

// tableDigest counts table's rows and sums a hash of each, in no order.
func tableDigest(t *testing.T, w *Warehouse, table string) string {
	t.Helper()
	return query(t, w, "SELECT count(*) || ' rows, ' || coalesce(sum(hash(t::VARCHAR)), 0) FROM "+ident(table)+" t")[0]
}

func tableDDL(t *testing.T, w *Warehouse, table string) string {
	t.Helper()
	return query(t, w, "SELECT sql FROM duckdb_tables() WHERE table_name = "+sqlString(table))[0]
}
