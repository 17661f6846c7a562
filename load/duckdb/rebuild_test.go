//go:build duckdb_arrow

package duckdb

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// filledWarehouse makes a warehouse with runs, deletes, rejects-free
// bookkeeping, a view, and its lake.
func filledWarehouse(t *testing.T) (*Warehouse, string) {
	t.Helper()
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	claimRun(t, w, "r1", nil, claim{"a", "2021-05-01", 2}, claim{"b", "2022-01-01", 1}, claim{"c", "", 1})
	claimRun(t, w, "r2", []string{"b"}, claim{"a", "2023-02-02", 1})
	if err := w.exec(t.Context(), "CREATE VIEW claim_years AS SELECT year(service_start) AS y, count(*) AS n FROM claim GROUP BY 1"); err != nil {
		t.Fatal(err)
	}
	lake := filepath.Join(t.TempDir(), "lake")
	if err := w.WriteLake(t.Context(), lake, lakeTables, nil); err != nil {
		t.Fatal(err)
	}
	return w, lake
}

// sameWarehouse fails unless the warehouse at path has the tables, column
// definitions, rows and views of w.
func sameWarehouse(t *testing.T, w *Warehouse, path string) {
	t.Helper()
	if err := w.exec(t.Context(), "ATTACH "+sqlString(path)+" AS rebuilt (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	defer w.exec(t.Context(), "DETACH rebuilt")
	list := func(db string) []string {
		return query(t, w, "SELECT table_name FROM duckdb_tables() WHERE database_name = '"+db+"' ORDER BY 1")
	}
	own := query(t, w, "SELECT current_database()")[0]
	names := list(own)
	if diff := cmp.Diff(names, list("rebuilt")); diff != "" {
		t.Fatalf("tables (-want +got):\n%s", diff)
	}
	for _, name := range names {
		describe := func(db string) []string {
			return query(t, w, `SELECT concat_ws('|', column_name, column_type, "null", key, "default", extra) FROM (DESCRIBE `+db+"."+ident(name)+")")
		}
		if diff := cmp.Diff(describe(own), describe("rebuilt")); diff != "" {
			t.Errorf("DESCRIBE %s (-want +got):\n%s", name, diff)
		}
		for _, q := range []string{
			"SELECT * FROM " + own + "." + ident(name) + " EXCEPT ALL SELECT * FROM rebuilt." + ident(name),
			"SELECT * FROM rebuilt." + ident(name) + " EXCEPT ALL SELECT * FROM " + own + "." + ident(name),
		} {
			if got := query(t, w, "SELECT count(*)::VARCHAR FROM ("+q+")"); got[0] != "0" {
				t.Errorf("%s: %s rows differ: %s", name, got[0], q)
			}
		}
	}
	views := func(db string) []string {
		return query(t, w, "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name = '"+db+"' ORDER BY 1")
	}
	if diff := cmp.Diff(views(own), views("rebuilt")); diff != "" {
		t.Errorf("views (-want +got):\n%s", diff)
	}
}

func TestRebuildWarehouseFromLake(t *testing.T) {
	for _, c := range []struct {
		name   string
		target func(t *testing.T) string // the warehouse file to replace
		drops  []string
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "new.duckdb") }, nil},
		{"stale file", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "old.duckdb")
			old, err := Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := old.exec(t.Context(), "CREATE TABLE leftover AS SELECT 1 AS x"); err != nil {
				t.Fatal(err)
			}
			return path
		}, []string{"leftover"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, lake := filledWarehouse(t)
			target := c.target(t)
			plan, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: target})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.drops, plan.Drops); diff != "" {
				t.Errorf("plan drops (-want +got):\n%s", diff)
			}
			if err := plan.Execute(t.Context()); err != nil {
				t.Fatal(err)
			}
			sameWarehouse(t, w, target)
			if ents, _ := filepath.Glob(filepath.Join(filepath.Dir(target), "*.tmp*")); len(ents) > 0 {
				t.Errorf("left behind: %v", ents)
			}
			// The rebuilt warehouse takes further runs.
			w2, err := Open(t.Context(), target)
			if err != nil {
				t.Fatal(err)
			}
			claimRun(t, w2, "r3", nil, claim{"z", "2019-01-01", 1})
			w2.Close()
		})
	}
}

func TestRebuildLakeFromWarehouse(t *testing.T) {
	w, lake := filledWarehouse(t)
	// The lake has drifted: a stray table, a lost partition.
	if err := os.MkdirAll(filepath.Join(lake, "stray"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(lake, "claim", "service_year=2021")); err != nil {
		t.Fatal(err)
	}
	// Partitions come from the existing lake's lake.json when not given.
	plan, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: w.Path(), From: FromWarehouse, Tables: lakeTables[1:2]})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"stray"}, plan.Drops); diff != "" {
		t.Errorf("plan drops (-want +got):\n%s", diff)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkLakeMirrors(t, w, lake)
	if diff := cmp.Diff([]string{MetaDir, "claim", "claim_line", "claim_note", load.PersonTable}, lakeDirs(t, lake)); diff != "" {
		t.Errorf("lake (-want +got):\n%s", diff)
	}
	if ents, _ := filepath.Glob(filepath.Join(filepath.Dir(lake), ".*")); len(ents) > 0 {
		t.Errorf("left behind: %v", ents)
	}
	// And back: the rewritten lake restores the same warehouse.
	target := filepath.Join(t.TempDir(), "back.duckdb")
	plan, err = PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: target})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	sameWarehouse(t, w, target)
}

func TestRebuildDryRunChangesNothing(t *testing.T) {
	w, lake := filledWarehouse(t)
	for _, from := range []From{FromLake, FromWarehouse} {
		t.Run(string(from), func(t *testing.T) {
			before := snapshot(t, filepath.Dir(lake), filepath.Dir(w.Path()))
			plan, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: w.Path(), From: from})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := plan.Print(&out); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"table claim: 2 rows in 2 folders (data_source=test/service_year=2023: 1, data_source=test/service_year=unknown: 1)",
				"table claim_note: 2 rows in 1 folders (data_source=test: 2)",
				"bookkeeping fhirlake_runs: 2 rows",
				"replaces: ",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("plan lacks %q:\n%s", want, out.String())
				}
			}
			if diff := cmp.Diff(before, snapshot(t, filepath.Dir(lake), filepath.Dir(w.Path()))); diff != "" {
				t.Errorf("files changed (-before +after):\n%s", diff)
			}
		})
	}
}

// snapshot lists every file under dirs with its size and time.
func snapshot(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	for _, d := range dirs {
		filepath.Walk(d, func(path string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				out = append(out, path+" "+fi.ModTime().String()+" "+string(rune(fi.Size())))
			}
			return err
		})
	}
	return out
}

// TestHoldWarehouseLock is not a test: TestRebuildRefusesWarehouseInUse
// runs it in a child process to hold a warehouse open until stdin closes.
func TestHoldWarehouseLock(t *testing.T) {
	path := os.Getenv("FHIRLAKE_TEST_HOLD_WAREHOUSE")
	if path == "" {
		t.Skip("helper process only")
	}
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	os.Stdout.WriteString("locked\n")
	io.Copy(io.Discard, os.Stdin)
}

func TestRebuildRefusesWarehouseInUse(t *testing.T) {
	w, lake := filledWarehouse(t)
	path := w.Path()
	w.Close()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHoldWarehouseLock$")
	cmd.Env = append(os.Environ(), "FHIRLAKE_TEST_HOLD_WAREHOUSE="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("helper said %q", line)
	}
	for _, from := range []From{FromLake, FromWarehouse} {
		t.Run(string(from), func(t *testing.T) {
			_, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: path, From: from})
			if !errors.Is(err, load.ErrInUse) {
				t.Errorf("PlanRebuild error = %v, want load.ErrInUse", err)
			}
		})
	}
}
