//go:build duckdb_arrow

package duckdb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/warehousetest"
	"github.com/google/go-cmp/cmp"
)

// sourceLoad commits one run of source with the Claim versions given,
// each with one child row numbered seq.
func sourceLoad(t *testing.T, w *Warehouse, source, id string, deleted []load.Tombstone, seq int, vs ...version) load.Stats {
	t.Helper()
	ctx := t.Context()
	l, err := w.Begin(ctx, source, tables)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var kids []any
	for _, v := range vs {
		ids = append(ids, v.id)
		kids = append(kids, v.id, seq)
	}
	for _, b := range []batch{{load.Resources, versions(vs...)}, {"parent", parents(ids...)}, {"child", children(kids...)}} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: id, Source: source, Scope: "system", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSourcesKeepTheirOwnRows: the same id at two sources is two
// resources. Newest-wins, child replacement and deletes act within one
// source only.
func TestSourcesKeepTheirOwnRows(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	newer, older := "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"
	sourceLoad(t, w, "payer-a", "r1", nil, 1, version{"1", newer, ""}, version{"2", newer, ""})
	// Payer B's Claim/1 is another claim, and older: it is loaded, not
	// "skipped older".
	st := sourceLoad(t, w, "payer-b", "r2", nil, 7, version{"1", older, ""})
	if st.SkippedOlder != 0 || st.Resources != 1 {
		t.Errorf("payer-b's run: %+v, want 1 resource and none skipped", st)
	}
	rows := func() []string {
		return query(t, w, "SELECT data_source || ' ' || parent_id || ':' || seq FROM child ORDER BY 1")
	}
	if diff := cmp.Diff([]string{"payer-a 1:1", "payer-a 2:1", "payer-b 1:7"}, rows()); diff != "" {
		t.Errorf("child rows (-want +got):\n%s", diff)
	}
	// Within payer A newest-wins still holds: an older Claim/1 is skipped.
	if st := sourceLoad(t, w, "payer-a", "r3", nil, 9, version{"1", older, ""}); st.SkippedOlder != 1 {
		t.Errorf("older version within a source: skipped %d, want 1", st.SkippedOlder)
	}
	// Payer B deletes its Claim/1 (twice, in two lines): payer A's stays.
	st = sourceLoad(t, w, "payer-b", "r4", []load.Tombstone{{ResourceType: "Claim", ID: "1"}, {ResourceType: "Claim", ID: "1"}}, 0)
	if st.Deleted != 1 {
		t.Errorf("deleted = %d, want 1: a resource counts once however many lines name it", st.Deleted)
	}
	if diff := cmp.Diff([]string{"payer-a 1:1", "payer-a 2:1"}, rows()); diff != "" {
		t.Errorf("child rows after payer-b's delete (-want +got):\n%s", diff)
	}
	got := query(t, w, "SELECT concat_ws(' ', source, resource_type, id, run_id) FROM fhirlake_resources ORDER BY 1")
	if diff := cmp.Diff([]string{"payer-a Claim 1 r1", "payer-a Claim 2 r1"}, got); diff != "" {
		t.Errorf("fhirlake_resources (-want +got):\n%s", diff)
	}
	got = query(t, w, "SELECT concat_ws(' ', run_id, source, resource_type, id) FROM fhirlake_deleted")
	if diff := cmp.Diff([]string{"r4 payer-b Claim 1"}, got); diff != "" {
		t.Errorf("fhirlake_deleted (-want +got):\n%s", diff)
	}
	// Each source's resource is one row: the identity is (source, id).
	if dup := query(t, w, "SELECT count(*) FROM (SELECT data_source, id FROM parent GROUP BY ALL HAVING count(*) > 1)"); dup[0] != "0" {
		t.Errorf("%s keys of parent have more than one row", dup[0])
	}
	if _, err := w.Begin(t.Context(), "../x", tables); !errors.Is(err, load.ErrBadSource) {
		t.Errorf("Begin with a source that would escape the lake: %v", err)
	}
}

// TestNewValuesPerSource: a member known at one source is new at another;
// an id asked for is new unless the source's table holds it.
func TestNewValuesPerSource(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sourceLoad(t, w, "payer-a", "r1", nil, 1, version{"1", "2026-01-01T00:00:00Z", ""})
	// also: ids asked for that the run need not carry (a roster's
	// patients); the ones held are not new.
	for _, c := range []struct {
		source string
		also   []string
		want   []string
	}{
		{"payer-a", nil, []string{"2"}},
		{"payer-b", nil, []string{"1", "2"}},
		{"payer-a", []string{"1", "3"}, []string{"2", "3"}},
		{"payer-b", []string{"3"}, []string{"1", "2", "3"}},
	} {
		source, want := c.source, c.want
		l, err := w.Begin(t.Context(), source, tables)
		if err != nil {
			t.Fatal(err)
		}
		rec := parents("1", "2")
		l.WriteBatch(t.Context(), "parent", rec)
		rec.Release()
		got, err := l.NewValues(t.Context(), "parent", "id", c.also)
		l.Rollback(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: new ids (-want +got):\n%s", source, diff)
		}
	}
}

// TestLakeRunTouchesOnlyItsSource: a run of one source rewrites none of
// another source's lake files, by modification time and content.
func TestLakeRunTouchesOnlyItsSource(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lake := filepath.Join(t.TempDir(), "lake")
	for _, r := range []struct {
		source, id string
		claims     []claim
	}{
		{"payer-a", "r1", []claim{{"a", "2021-05-01", 2}, {"b", "", 1}}},
		{"payer-b", "r2", []claim{{"a", "2021-07-01", 1}, {"c", "2022-01-01", 1}}},
	} {
		st := sourceRun(t, w, r.source, r.id, nil, r.claims...)
		if r.source == "payer-b" {
			// Its first rows in tables that hold payer-a's: the run
			// changed its own partitions only.
			if diff := cmp.Diff(map[string][]string{"claim": {"2021", "2022"}, "claim_line": {"2021", "2022"}, "claim_note": nil},
				st.Changes.Tables); diff != "" {
				t.Errorf("partitions payer-b's first run changed (-want +got):\n%s", diff)
			}
		}
		if err := w.WriteLake(t.Context(), lake, lakeTables, st.Changes); err != nil {
			t.Fatal(err)
		}
	}
	checkLakeMirrors(t, w, lake)
	var aFiles []string
	for _, tb := range lakeTables {
		for _, f := range lakeFiles(t, filepath.Join(lake, tb.Name)) {
			if strings.HasPrefix(f, "data_source=payer-a/") {
				aFiles = append(aFiles, filepath.Join(lake, tb.Name, f))
			}
		}
	}
	if len(aFiles) != 5 { // claim 2021 + unknown, claim_line 2021 + unknown, claim_note
		t.Fatalf("payer-a files: %v", aFiles)
	}
	before := snapshot(t, aFiles...)
	time.Sleep(10 * time.Millisecond) // modification times must be able to differ
	// Payer B changes the 2021 partition both payers have, and deletes c.
	st := sourceRun(t, w, "payer-b", "r3", []string{"c"}, claim{"a", "2021-08-01", 3})
	if err := w.WriteLake(t.Context(), lake, lakeTables, st.Changes); err != nil {
		t.Fatal(err)
	}
	checkLakeMirrors(t, w, lake)
	if diff := cmp.Diff(before, snapshot(t, aFiles...)); diff != "" {
		t.Errorf("payer-b's run changed payer-a's files (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(lake, "claim", "data_source=payer-b", "service_year=2022")); !os.IsNotExist(err) {
		t.Errorf("payer-b's emptied 2022 partition is still there: %v", err)
	}
}

// TestLakeKnowsItsWarehouse: a lake refuses the runs of another
// warehouse, a new one included, and accepts its own after a rebuild.
func TestLakeKnowsItsWarehouse(t *testing.T) {
	w, lake := filledWarehouse(t)
	meta, err := ReadLakeMeta(lake)
	if err != nil || meta.WarehouseID == "" || meta.WarehouseID != w.ID() || meta.Warehouse != w.Path() {
		t.Fatalf("lake.json owner %q %q, warehouse %q: %v", meta.WarehouseID, meta.Warehouse, w.ID(), err)
	}
	other, err := Open(t.Context(), filepath.Join(t.TempDir(), "other.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	before := snapshot(t, lake)
	err = other.WriteLake(t.Context(), lake, lakeTables, nil)
	if !errors.Is(err, load.ErrLakeMismatch) || !strings.Contains(err.Error(), w.Path()) || !strings.Contains(err.Error(), other.Path()) {
		t.Errorf("another warehouse writing the lake: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, lake)); diff != "" {
		t.Errorf("the refused write changed the lake (-before +after):\n%s", diff)
	}
	if err := CheckLake(lake, "new.duckdb", ""); !errors.Is(err, load.ErrLakeMismatch) {
		t.Errorf("a warehouse not yet created, beside an owned lake: %v", err)
	}
	if err := CheckLake(t.TempDir(), "new.duckdb", ""); err != nil {
		t.Errorf("a new lake: %v", err)
	}
	// A warehouse rebuilt from the lake is the lake's own.
	rebuilt := filepath.Join(t.TempDir(), "rebuilt.duckdb")
	plan, err := PlanRebuild(t.Context(), RebuildOptions{Lake: lake, Warehouse: rebuilt})
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.Execute(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := Open(t.Context(), rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ID() != w.ID() {
		t.Errorf("rebuilt warehouse id %q, lake's %q", r.ID(), w.ID())
	}
	if err := r.WriteLake(t.Context(), lake, lakeTables, nil); err != nil {
		t.Errorf("the rebuilt warehouse writing its lake: %v", err)
	}
}

// TestSweepLake: temporary files of crashed writes go, anywhere in the
// lake; data files stay.
func TestSweepLake(t *testing.T) {
	w, lake := filledWarehouse(t)
	keep := lakeFiles(t, lake)
	for _, junk := range []string{
		"claim/data_source=test/service_year=2023/.data.parquet.123.tmp",
		"claim/data_source=test/service_year=2023/tmp_data.parquet",
		"claim/data_source=test/tmp_.data.parquet.9.tmp",
		"claim_note/data_source=test/.data.parquet.5.tmp",
		"_fhirlake/.fhirlake_runs.parquet.7.tmp",
		"_fhirlake/tmp_.lake.json.3.tmp",
		".claim.stage-abc/service_year=2021/data_0.parquet",
		".claim.new-def/data_source=test/data.parquet",
	} {
		p := filepath.Join(lake, junk)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteLake(t.Context(), lake, lakeTables, &load.Changes{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(keep, lakeFiles(t, lake)); diff != "" {
		t.Errorf("lake files after the sweep (-want +got):\n%s", diff)
	}
}

// TestRunOfSeveralExports: the contract of a run of several exports
// (warehousetest), and its one run record holds every job.
func TestRunOfSeveralExports(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	warehousetest.RunOfSeveralExports(t, w, tables)
	if diff := cmp.Diff([]string{"r-parts roster (3 exports) j1 j2 j3"}, query(t, w, "SELECT concat_ws(' ', run_id, scope, job) FROM fhirlake_runs")); diff != "" {
		t.Errorf("run record (-want +got):\n%s", diff)
	}
}

// TestDeletedAndCarriedAgain: a version a run carries with its own
// tombstone is taken, even one identical to or older than the stored one
// (warehousetest), with its rows in every table.
func TestDeletedAndCarriedAgain(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	warehousetest.DeletedAndCarriedAgain(t, w, tables)
	if diff := cmp.Diff([]string{"a r2", "b r2"}, query(t, w, "SELECT id || ' ' || run_id FROM fhirlake_resources ORDER BY id")); diff != "" {
		t.Errorf("version index (-want +got):\n%s", diff)
	}
}
