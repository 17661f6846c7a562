//go:build duckdb_arrow

package duckdb

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

var (
	claimSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
		{Name: "service_start", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "updated", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	claimLineSchema = arrow.NewSchema([]arrow.Field{
		{Name: "claim_id", Type: arrow.BinaryTypes.String},
		{Name: "seq", Type: arrow.PrimitiveTypes.Int32},
		{Name: "serviced", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
	}, nil)
	lakeTables = []load.Table{
		{Name: "claim", Resource: "Claim", Key: "id", Schema: claimSchema,
			Partition: &load.Partition{Column: "service_start", Name: "service_year"}},
		{Name: "claim_line", Resource: "Claim", Key: "claim_id", Schema: claimLineSchema,
			Partition: &load.Partition{Column: "serviced", Name: "service_year"}},
		{Name: "claim_note", Resource: "Claim", Key: "parent_id", Schema: childSchema},
	}
)

// claim is one test resource: its service date ("" for null) and lines.
type claim struct {
	id    string
	date  string
	lines int
}

func date32(t *testing.T, s string) arrow.Date32 {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return arrow.Date32FromTime(d)
}

// claimBatches builds the batches of one run carrying claims.
func claimBatches(t *testing.T, claims ...claim) []batch {
	t.Helper()
	cb := array.NewRecordBuilder(memory.DefaultAllocator, claimSchema)
	lb := array.NewRecordBuilder(memory.DefaultAllocator, claimLineSchema)
	nb := array.NewRecordBuilder(memory.DefaultAllocator, childSchema)
	defer cb.Release()
	defer lb.Release()
	defer nb.Release()
	var ids []string
	for i, c := range claims {
		ids = append(ids, c.id)
		cb.Field(0).(*array.StringBuilder).Append(c.id)
		cb.Field(1).(*array.Decimal128Builder).Append(decimalCents(int64(1000*i + 99)))
		if c.date == "" {
			cb.Field(2).AppendNull()
		} else {
			cb.Field(2).(*array.Date32Builder).Append(date32(t, c.date))
		}
		cb.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC).UnixMicro()))
		for j := range c.lines {
			lb.Field(0).(*array.StringBuilder).Append(c.id)
			lb.Field(1).(*array.Int32Builder).Append(int32(j + 1))
			if c.date == "" {
				lb.Field(2).AppendNull()
			} else {
				lb.Field(2).(*array.Date32Builder).Append(date32(t, c.date))
			}
			nb.Field(0).(*array.StringBuilder).Append(c.id)
			nb.Field(1).(*array.Int32Builder).Append(int32(j))
		}
	}
	return []batch{
		{load.Resources, resources(ids...)},
		{"claim", cb.NewRecordBatch()},
		{"claim_line", lb.NewRecordBatch()},
		{"claim_note", nb.NewRecordBatch()},
	}
}

// claimRun commits one run of source "test": tombstones for deleted ids,
// then claims.
func claimRun(t *testing.T, w *Warehouse, id string, deleted []string, claims ...claim) load.Stats {
	t.Helper()
	return sourceRun(t, w, "test", id, deleted, claims...)
}

// sourceRun commits one run of source: tombstones for deleted ids, then
// claims.
func sourceRun(t *testing.T, w *Warehouse, source, id string, deleted []string, claims ...claim) load.Stats {
	t.Helper()
	return runAsking(t, w, source, id, load.ChangesAll, deleted, claims...)
}

// runAsking is sourceRun for a run whose lake needs what need says.
func runAsking(t *testing.T, w *Warehouse, source, id string, need load.ChangeNeed, deleted []string, claims ...claim) load.Stats {
	t.Helper()
	ctx := t.Context()
	l, err := w.Begin(ctx, source, lakeTables)
	if err != nil {
		t.Fatal(err)
	}
	var ts []load.Tombstone
	for _, d := range deleted {
		ts = append(ts, load.Tombstone{ResourceType: "Claim", ID: d})
	}
	if err := l.Delete(ctx, ts); err != nil {
		t.Fatal(err)
	}
	for _, b := range claimBatches(t, claims...) {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: id, Source: source, Scope: "system", Started: time.Now(), TransactionTime: time.Now(), Changes: need})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkLakeMirrors fails unless every table of the lake holds exactly the
// warehouse rows, read the way an analyst would.
func checkLakeMirrors(t *testing.T, w *Warehouse, lake string) {
	t.Helper()
	for _, tb := range lakeTables {
		src := "read_parquet(" + sqlString(filepath.Join(lake, tb.Name, "**", "*.parquet")) + ", hive_partitioning = true)"
		cols := "*"
		if tb.Partition != nil {
			cols = "* EXCLUDE (" + tb.Partition.Name + ")"
			// The Hive key agrees with the column it is derived from.
			bad := query(t, w, "SELECT count(*)::VARCHAR FROM "+src+" WHERE "+tb.Partition.Name+"::VARCHAR <> "+partitionExpr(tb.Partition))
			if diff := cmp.Diff([]string{"0"}, bad); diff != "" {
				t.Errorf("%s: rows in the wrong partition (-want +got):\n%s", tb.Name, diff)
			}
		}
		lakeRows := "SELECT " + cols + " FROM " + src
		for _, q := range []string{
			lakeRows + " EXCEPT ALL SELECT * FROM " + ident(tb.Name),
			"SELECT * FROM " + ident(tb.Name) + " EXCEPT ALL " + lakeRows,
		} {
			if got := query(t, w, "SELECT count(*)::VARCHAR FROM ("+q+")"); got[0] != "0" {
				t.Errorf("%s: %s rows differ: %s", tb.Name, got[0], q)
			}
		}
		// One folder per source, and in it the file or one folder per year.
		folder := "'data_source=' || data_source || '/" + LakeFile + "'"
		if tb.Partition != nil {
			folder = "'data_source=' || data_source || '/" + tb.Partition.Name + "=' || " + partitionExpr(tb.Partition) + " || '/" + LakeFile + "'"
		}
		want := query(t, w, "SELECT DISTINCT "+folder+" FROM "+ident(tb.Name)+" ORDER BY 1")
		if diff := cmp.Diff(want, lakeFiles(t, filepath.Join(lake, tb.Name))); diff != "" {
			t.Errorf("%s files (-want +got):\n%s", tb.Name, diff)
		}
	}
	runs := "read_parquet(" + sqlString(filepath.Join(lake, MetaDir, "fhirlake_runs.parquet")) + ")"
	if got := query(t, w, "SELECT count(*)::VARCHAR FROM (SELECT run_id FROM fhirlake_runs EXCEPT ALL SELECT run_id FROM "+runs+")"); got[0] != "0" {
		t.Errorf("lake copy of fhirlake_runs misses %s runs", got[0])
	}
	var hidden []string
	filepath.WalkDir(lake, func(path string, d fs.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".") && path != lake {
			hidden = append(hidden, path)
		}
		return err
	})
	if len(hidden) > 0 {
		t.Errorf("temporary files left in the lake: %v", hidden)
	}
}

// lakeFiles lists the files under dir, as slash paths relative to it.
func lakeFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func lakeDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestWriteLakeMirrorsWarehouse(t *testing.T) {
	steps := []struct {
		name      string
		deleted   []string
		claims    []claim
		skipLake  bool // the lake write of this run "crashed"
		wantTouch map[string][]string
		wantKeys  []string // the claims replaced or deleted
		wantRows  [3]int64 // the rows inserted into claim, claim_line and claim_note
	}{
		{
			name:      "first load",
			claims:    []claim{{"a", "2021-05-01", 2}, {"b", "2022-01-01", 1}, {"c", "", 1}},
			wantTouch: map[string][]string{"claim": {"2021", "2022", "unknown"}, "claim_line": {"2021", "2022", "unknown"}, "claim_note": nil},
			wantKeys:  []string{"a", "b", "c"},
			wantRows:  [3]int64{3, 4, 4},
		},
		{
			name:      "a moves to 2023, b reloaded with more lines",
			claims:    []claim{{"a", "2023-02-02", 1}, {"b", "2022-06-01", 3}},
			wantTouch: map[string][]string{"claim": {"2021", "2022", "2023"}, "claim_line": {"2021", "2022", "2023"}, "claim_note": nil},
			wantKeys:  []string{"a", "b"},
			wantRows:  [3]int64{2, 4, 4},
		},
		{
			name:      "b and c deleted empty their partitions",
			deleted:   []string{"b", "c"},
			wantTouch: map[string][]string{"claim": {"2022", "unknown"}, "claim_line": {"2022", "unknown"}, "claim_note": nil},
			wantKeys:  []string{"b", "c"},
			wantRows:  [3]int64{0, 0, 0},
		},
		{
			name:      "lake write lost",
			claims:    []claim{{"d", "2020-01-01", 1}},
			skipLake:  true,
			wantTouch: map[string][]string{"claim": {"2020"}, "claim_line": {"2020"}, "claim_note": nil},
			wantKeys:  []string{"d"},
			wantRows:  [3]int64{1, 1, 1},
		},
		{
			name:      "next run catches up the whole lake",
			claims:    []claim{{"e", "2024-12-31", 2}},
			wantTouch: map[string][]string{"claim": {"2024"}, "claim_line": {"2024"}, "claim_note": nil},
			wantKeys:  []string{"e"},
			wantRows:  [3]int64{1, 2, 2},
		},
	}
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lake := filepath.Join(t.TempDir(), "lake")
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			id := "r" + string(rune('1'+i))
			st := claimRun(t, w, id, s.deleted, s.claims...)
			appended := map[string]int64{"claim": s.wantRows[0], "claim_line": s.wantRows[1], "claim_note": s.wantRows[2]}
			if len(s.claims) > 0 {
				appended[load.IndexTable] = int64(len(s.claims))
			}
			if diff := cmp.Diff(&load.Changes{Source: "test", RunID: id, Tables: s.wantTouch, Index: true,
				Keys: map[string][]string{"Claim": s.wantKeys}, Appended: appended}, st.Changes); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			checkRunIndex(t, w, id, len(s.claims), st.Changes.Appended[load.IndexTable])
			if s.skipLake {
				return
			}
			if err := w.WriteLake(t.Context(), lake, lakeTables, st.Changes); err != nil {
				t.Fatal(err)
			}
			checkLakeMirrors(t, w, lake)
		})
	}
}

// checkRunIndex checks that RunIndex gives the n versions the run id
// loaded: with the count the run reported, as the index's last rows
// (without the run id, which lastRows drops); with a count one too many,
// by looking for them.
func checkRunIndex(t *testing.T, w *Warehouse, id string, n int, appended int64) {
	t.Helper()
	for _, c := range []struct {
		appended int64
		last     bool
	}{{appended, n > 0}, {appended + 1, false}} {
		rr, err := w.RunIndex(t.Context(), "test", id, c.appended)
		if err != nil {
			t.Fatal(err)
		}
		last := rr.(*sliceReader).args == nil
		rows := 0
		for rr.Next() {
			b := rr.RecordBatch()
			runs := b.Column(b.Schema().FieldIndices("run_id")[0]).(*array.String)
			for i := range runs.Len() {
				if runs.Value(i) != id {
					t.Errorf("appended %d: a row of run %s, want only %s", c.appended, runs.Value(i), id)
				}
			}
			rows += int(b.NumRows())
		}
		if err := rr.Err(); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		if rows != n || last != c.last {
			t.Errorf("appended %d: %d versions, read as the last rows %v; want %d, %v", c.appended, rows, last, n, c.last)
		}
	}
}

// TestCommitListsWhatTheLakeNeeds: a run lists the partitions it changed
// and the resources it changed only when its lake reads them; the rows
// change all the same.
func TestCommitListsWhatTheLakeNeeds(t *testing.T) {
	parts := map[string][]string{"claim": {"2021", "2023"}, "claim_line": {"2021", "2023"}, "claim_note": nil}
	tables := map[string][]string{"claim": nil, "claim_line": nil, "claim_note": nil}
	keys := map[string][]string{"Claim": {"a"}}
	for _, c := range []struct {
		name      string
		need      load.ChangeNeed
		wantParts map[string][]string
		wantKeys  map[string][]string
	}{
		{"all", load.ChangesAll, parts, keys},
		{"by partition", load.ChangesByPartition, parts, nil},
		{"by key", load.ChangesByKey, tables, keys},
		{"none", load.ChangesNone, tables, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			runAsking(t, w, "test", "r1", c.need, nil, claim{"a", "2021-05-01", 2}, claim{"b", "2022-01-01", 1})
			st := runAsking(t, w, "test", "r2", c.need, nil, claim{"a", "2023-02-02", 1})
			if diff := cmp.Diff(c.wantParts, st.Changes.Tables); diff != "" {
				t.Errorf("changed tables (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.wantKeys, st.Changes.Keys); diff != "" {
				t.Errorf("changed keys (-want +got):\n%s", diff)
			}
			var a2023, lines int64
			if err := w.conn.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM claim WHERE id = 'a' AND year(service_start) = 2023),
				(SELECT count(*) FROM claim_line)`).Scan(&a2023, &lines); err != nil {
				t.Fatal(err)
			}
			if a2023 != 1 || lines != 2 {
				t.Errorf("after the run: claim a in 2023 %d times, %d claim lines; want 1 and 2 (a's one, b's one)", a2023, lines)
			}
		})
	}
}

func TestWriteLakeChangesLayout(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	claimRun(t, w, "r1", nil, claim{"a", "2021-05-01", 1}, claim{"b", "2022-05-01", 1})
	lake := t.TempDir()
	flat := []load.Table{{Name: "claim", Key: "id"}}
	byYear := []load.Table{{Name: "claim", Key: "id", Partition: &load.Partition{Column: "service_start", Name: "service_year"}}}
	renamed := []load.Table{{Name: "claim", Key: "id", Partition: &load.Partition{Column: "service_start", Name: "year"}}}
	for _, c := range []struct {
		name   string
		tables []load.Table
		want   []string
	}{
		{"unpartitioned", flat, []string{"data_source=test/" + LakeFile}},
		{"partitioned", byYear, []string{"data_source=test/service_year=2021/" + LakeFile, "data_source=test/service_year=2022/" + LakeFile}},
		{"key renamed", renamed, []string{"data_source=test/year=2021/" + LakeFile, "data_source=test/year=2022/" + LakeFile}},
		{"unpartitioned again", flat, []string{"data_source=test/" + LakeFile}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// An incremental write must notice the layout change too.
			if err := w.WriteLake(t.Context(), lake, c.tables, &load.Changes{Source: "test", Tables: map[string][]string{"claim": {"2021"}}}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, lakeFiles(t, filepath.Join(lake, "claim"))); diff != "" {
				t.Errorf("lake/claim (-want +got):\n%s", diff)
			}
			got := query(t, w, "SELECT count(*)::VARCHAR FROM read_parquet("+sqlString(filepath.Join(lake, "claim", "**", "*.parquet"))+")")
			if diff := cmp.Diff([]string{"2"}, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}
