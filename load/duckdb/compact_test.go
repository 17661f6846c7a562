//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/load"
)

// TestCompact: a table whose deleted rows reach a tenth of those it
// stores is rewritten with the same rows, columns and NOT NULL
// constraints, and stores no deleted row after; one below the share, and
// tables with a key, a check or a default, are left alone, whatever they
// waste.
func TestCompact(t *testing.T) {
	ctx := t.Context()
	w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 200_000
	for _, q := range []string{
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
		// obs loses 12% of its rows, enc 6%, keyed and defaulted 30%.
		`DELETE FROM obs WHERE hash(id) % 100 < 12`,
		`DELETE FROM enc WHERE hash(id) % 100 < 6`,
		`DELETE FROM keyed WHERE id % 10 < 3`,
		`DELETE FROM defaulted WHERE id % 10 < 3`,
		"CHECKPOINT",
	} {
		if err := w.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before := map[string]string{}
	for _, table := range []string{"obs", "enc", "keyed", "defaulted", "obs_codes"} {
		before[table] = tableDigest(t, w, table)
	}
	counts, err := w.TableRows(ctx, []string{"obs"})
	if err != nil {
		t.Fatal(err)
	}
	live := counts["obs"]
	ddl := map[string]string{}
	for _, table := range []string{"obs", "defaulted"} {
		ddl[table] = tableDDL(t, w, table)
	}

	done, err := w.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []load.Compacted{{Table: "obs", Rows: live, Deleted: n - live}}
	if diff := cmp.Diff(want, done); diff != "" {
		t.Fatalf("compacted (-want +got):\n%s", diff)
	}
	for table, digest := range before {
		if got := tableDigest(t, w, table); got != digest {
			t.Errorf("%s changed: %s, was %s", table, got, digest)
		}
	}
	for table, wantStored := range map[string]int64{"obs": live, "enc": n, "keyed": n, "defaulted": n} {
		var stored int64
		if err := w.conn.QueryRowContext(ctx, "SELECT estimated_size FROM duckdb_tables() WHERE table_name = $1", table).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != wantStored {
			t.Errorf("%s stores %d rows, want %d", table, stored, wantStored)
		}
	}
	for table, before := range ddl {
		if got := tableDDL(t, w, table); got != before {
			t.Errorf("%s after compaction:\n%s\nbefore:\n%s", table, got, before)
		}
	}
	if err := w.Exec(ctx, `INSERT INTO obs VALUES (NULL, 'x', 'c', 1)`); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
		t.Errorf("a null data_source after compaction: %v, want a NOT NULL error", err)
	}

	// Nothing left to reclaim: a second call rewrites nothing.
	if done, err := w.Compact(ctx); err != nil || len(done) != 0 {
		t.Errorf("second compaction: %v, %v; want nothing", done, err)
	}
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
