//go:build duckdb_arrow

package duckdb

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// v1Warehouse writes, with plain SQL, a warehouse as the first release
// left it: rows keyed without their source, from runs of two sources, a
// child table, a table no view describes any more, a view, rejects and a
// delete.
func v1Warehouse(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "v1.duckdb")
	db, err := openDuckDB(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.close()
	for _, q := range []string{
		bookkeepingV1DDL,
		`CREATE TABLE parent (id VARCHAR, amount DECIMAL(12,2), updated TIMESTAMPTZ, PRIMARY KEY (id))`,
		`CREATE TABLE child (parent_id VARCHAR, seq INTEGER, PRIMARY KEY (parent_id, seq))`,
		`CREATE TABLE old_view_table (thing_id VARCHAR, n INTEGER)`,
		`INSERT INTO fhirlake_runs VALUES
			('r1', 'payer-a', 'system', '2026-01-01', '2026-01-01', 'committed', NULL, '2026-01-01', 2, 0, 0, 1, ['Claim'], MAP {'parent': 2}),
			('r2', 'payer-b', 'system', '2026-01-02', '2026-01-02', 'committed', NULL, '2026-01-02', 1, 0, 1, 0, ['Claim'], MAP {'parent': 1})`,
		`INSERT INTO fhirlake_resources VALUES ('Claim', '1', '2026-01-01', NULL, 'r1'), ('Claim', '2', '2026-01-01', NULL, 'r1'),
			('Claim', '3', '2026-01-02', NULL, 'r2'), ('Patient', '1', '2026-01-02', NULL, 'r2')`,
		`INSERT INTO fhirlake_watermarks VALUES ('payer-a', 'system', 'Claim', '2026-01-01', 'r1'), ('payer-b', 'system', 'Claim', '2026-01-02', 'r2')`,
		`INSERT INTO fhirlake_deleted VALUES ('r2', 'Claim', '9', '2026-01-02')`,
		`INSERT INTO fhirlake_rejects VALUES ('r1', 'Claim.ndjson', 4, 'Claim', 'x', NULL, 'missing id')`,
		`INSERT INTO parent VALUES ('1', 1.25, '2026-01-01'), ('2', 2.5, NULL), ('3', 3, NULL), ('4', 4, NULL)`,
		`INSERT INTO child VALUES ('1', 1), ('1', 2), ('3', 1)`,
		`INSERT INTO old_view_table VALUES ('z', 1)`,
		`CREATE VIEW parent_total AS SELECT sum(amount) AS total FROM parent`,
	} {
		if err := db.exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return path
}

func TestUpgradeFromLayout1(t *testing.T) {
	path := v1Warehouse(t)
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Version() != 1 || w.ID() != "" {
		t.Fatalf("version %d, id %q: want the first layout", w.Version(), w.ID())
	}
	if _, err := w.Begin(t.Context(), "payer-a", tables); !errors.Is(err, load.ErrOldWarehouse) {
		t.Fatalf("Begin on an old warehouse: %v", err)
	}
	if err := w.Upgrade(t.Context(), tables); err != nil {
		t.Fatal(err)
	}
	if w.Version() != load.SchemaVersion || w.ID() == "" {
		t.Errorf("after Upgrade: version %d, id %q", w.Version(), w.ID())
	}
	for q, want := range map[string][]string{
		// Rows get the source of the run that loaded their resource;
		// parent 4 has no resource record: "default".
		"SELECT data_source || ' ' || id || ' ' || amount FROM parent ORDER BY id":   {"payer-a 1 1.25", "payer-a 2 2.50", "payer-b 3 3.00", "default 4 4.00"},
		"SELECT data_source || ' ' || parent_id || ':' || seq FROM child ORDER BY 1": {"payer-a 1:1", "payer-a 1:2", "payer-b 3:1"},
		// No view describes it, and two sources share the warehouse.
		"SELECT data_source || ' ' || thing_id FROM old_view_table":                                   {"default z"},
		"SELECT concat_ws(' ', source, resource_type, id, run_id) FROM fhirlake_resources ORDER BY 1": {"payer-a Claim 1 r1", "payer-a Claim 2 r1", "payer-b Claim 3 r2", "payer-b Patient 1 r2"},
		"SELECT concat_ws(' ', run_id, source, id) FROM fhirlake_deleted":                             {"r2 payer-b 9"},
		"SELECT concat_ws(' ', run_id, source, file, line, reason) FROM fhirlake_rejects":             {"r1 payer-a Claim.ndjson 4 missing id"},
		"SELECT count(*)::VARCHAR FROM fhirlake_runs":                                                 {"2"},
		"SELECT count(*)::VARCHAR FROM fhirlake_watermarks":                                           {"2"},
		"SELECT total::VARCHAR FROM parent_total":                                                     {"10.75"},
		// data_source is first and leads the primary key.
		`SELECT string_agg(column_name, ',' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'child'`:                       {"data_source,parent_id,seq"},
		`SELECT constraint_column_names::VARCHAR FROM duckdb_constraints() WHERE table_name = 'child' AND constraint_type = 'PRIMARY KEY'`: {"[data_source, parent_id, seq]"},
		// The bookkeeping has the layout of a new warehouse.
		`SELECT string_agg(column_name, ',' ORDER BY column_index) FROM duckdb_columns() WHERE table_name = 'fhirlake_resources'`: {"source,resource_type,id,meta_last_updated,version_id,run_id,content_hash"},
	} {
		if diff := cmp.Diff(want, query(t, w, q)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", q, diff)
		}
	}
	// Loading works, keyed by source, and an upgraded warehouse is current.
	st := sourceLoad(t, w, "payer-b", "r3", nil, 5, version{"1", "2026-02-01T00:00:00Z", ""})
	if st.SkippedOlder != 0 {
		t.Errorf("payer-b's Claim/1 skipped as older than payer-a's")
	}
	if err := w.Upgrade(t.Context(), tables); err != nil {
		t.Errorf("Upgrade of a current warehouse: %v", err)
	}
}

// TestUpgradeIsOneTransaction: an upgrade that fails half-way leaves the
// warehouse as it was.
func TestUpgradeIsOneTransaction(t *testing.T) {
	path := v1Warehouse(t)
	db, err := openDuckDB(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	// A table that cannot take the column (it has one) fails the upgrade
	// after the tables before it in name order were converted.
	if err := db.exec(t.Context(), "CREATE TABLE zz_broken (data_source VARCHAR)"); err != nil {
		t.Fatal(err)
	}
	db.close()
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	before := query(t, w, "SELECT table_name || ':' || column_name FROM duckdb_columns() WHERE database_name = current_database() ORDER BY 1")
	err = w.Upgrade(t.Context(), tables)
	if err == nil || !strings.Contains(err.Error(), "zz_broken") {
		t.Fatalf("Upgrade: %v, want an error naming zz_broken", err)
	}
	if diff := cmp.Diff(before, query(t, w, "SELECT table_name || ':' || column_name FROM duckdb_columns() WHERE database_name = current_database() ORDER BY 1")); diff != "" {
		t.Errorf("a failed upgrade changed the warehouse (-before +after):\n%s", diff)
	}
	if w.Version() != 1 {
		t.Errorf("version %d after a failed upgrade", w.Version())
	}
}

// TestRebuildFromLayout1Lake: a lake of the first release (flat files and
// year folders, no owner) restores an upgraded warehouse.
func TestRebuildFromLayout1Lake(t *testing.T) {
	path := v1Warehouse(t)
	lake := filepath.Join(t.TempDir(), "lake")
	for _, d := range []string{"parent", MetaDir} {
		if err := os.MkdirAll(filepath.Join(lake, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	db, err := openDuckDB(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"COPY parent TO " + sqlString(filepath.Join(lake, "parent", LakeFile)) + " (FORMAT parquet)",
		"COPY (SELECT *, 'x' AS part FROM child) TO " + sqlString(filepath.Join(lake, "child")) + " (FORMAT parquet, PARTITION_BY (part), FILENAME_PATTERN 'data')",
	} {
		if err := db.exec(t.Context(), q); err != nil {
			db.close()
			t.Fatal(err)
		}
	}
	for _, name := range []string{"fhirlake_runs", "fhirlake_resources", "fhirlake_watermarks", "fhirlake_deleted", "fhirlake_rejects"} {
		if err := db.exec(t.Context(), "COPY "+name+" TO "+sqlString(filepath.Join(lake, MetaDir, name+".parquet"))+" (FORMAT parquet)"); err != nil {
			db.close()
			t.Fatal(err)
		}
	}
	// lake.json as the first release wrote it: version 1, no owner.
	rows, err := db.conn.QueryContext(t.Context(), "SELECT table_name, sql FROM duckdb_tables() WHERE database_name = current_database()")
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]any{"version": 1, "tables": map[string]any{}}
	for rows.Next() {
		var name, sql string
		rows.Scan(&name, &sql)
		meta["tables"].(map[string]any)[name] = map[string]any{"sql": sql}
	}
	rows.Close()
	b, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(lake, MetaDir, LakeMetaFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	db.close()
	// The year folder of the first release is child/part=x/data.parquet.
	written, _ := filepath.Glob(filepath.Join(lake, "child", "part=x", "*.parquet"))
	if len(written) != 1 {
		t.Fatalf("partition files %v", written)
	}
	if err := os.Rename(written[0], filepath.Join(lake, "child", "part=x", LakeFile)); err != nil {
		t.Fatal(err)
	}
	rebuilt := filepath.Join(t.TempDir(), "rebuilt.duckdb")
	plan, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: rebuilt, Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	w, err := Open(t.Context(), rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Version() != load.SchemaVersion {
		t.Errorf("rebuilt warehouse has layout %d", w.Version())
	}
	if diff := cmp.Diff([]string{"payer-a 1:1", "payer-a 1:2", "payer-b 3:1"}, query(t, w, "SELECT data_source || ' ' || parent_id || ':' || seq FROM child ORDER BY 1")); diff != "" {
		t.Errorf("child (-want +got):\n%s", diff)
	}
	// Its first lake write converts the lake to folders by source.
	if err := w.WriteLake(t.Context(), lake, tables, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"data_source=default/" + LakeFile, "data_source=payer-a/" + LakeFile, "data_source=payer-b/" + LakeFile}
	if diff := cmp.Diff(want, lakeFiles(t, filepath.Join(lake, "parent"))); diff != "" {
		t.Errorf("lake/parent (-want +got):\n%s", diff)
	}
}
