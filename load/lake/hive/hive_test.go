//go:build duckdb_arrow

package hive_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/hive"
)

// watched is a warehouse snapshot that counts the Parquet copies running
// at once and fails the copies of one table.
type watched struct {
	load.Snapshot
	fail string // the table whose copies fail; "" for none

	mu        sync.Mutex
	running   int
	most      int
	completed []string // the tables of the copies that succeeded
}

var errInjected = errors.New("injected copy failure")

func (s *watched) WriteParquet(ctx context.Context, t load.Table, source string, vals []string, dst string) (int64, error) {
	s.mu.Lock()
	s.running++
	s.most = max(s.most, s.running)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	time.Sleep(20 * time.Millisecond) // long enough for another table's copy to start
	if t.Name == s.fail {
		return 0, errInjected
	}
	n, err := s.Snapshot.WriteParquet(ctx, t, source, vals, dst)
	if err == nil {
		s.mu.Lock()
		s.completed = append(s.completed, t.Name)
		s.mu.Unlock()
	}
	return n, err
}

// TestPublishWritesTablesAtOnce: Publish writes two data tables at a time,
// each whole; a table whose copy fails fails the Publish, naming it, and
// leaves the lake's record of what it mirrors as it was, so that the next
// Publish rewrites everything.
func TestPublishWritesTablesAtOnce(t *testing.T) {
	dir := t.TempDir()
	w, err := duckdb.Open(t.Context(), filepath.Join(dir, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var tables []load.Table
	for i := range 6 {
		name := fmt.Sprintf("t%d", i)
		q := fmt.Sprintf(`CREATE TABLE %s AS SELECT 'a' AS data_source, range::VARCHAR AS id,
			DATE '2021-01-01' + (range %% 3)::INTEGER * 366 AS day FROM range(%d)`, name, 1000*(i+1))
		if err := w.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		tb := load.Table{Name: name, Resource: "Basic", Key: "id"}
		if i%2 == 1 {
			tb.Partition = &load.Partition{Column: "day", Name: "day_year"}
		}
		tables = append(tables, tb)
	}
	lake := filepath.Join(dir, "lake")
	id := load.Identity{Path: w.Path(), ID: w.ID()}
	rows := func(table string) int64 {
		t.Helper()
		var n int64
		queryValue(t, w, &n, "SELECT count(*) FROM read_parquet(?)", filepath.Join(lake, table, "**", "*.parquet"))
		return n
	}

	snap := &watched{Snapshot: w}
	if err := hive.Open(lake).Publish(t.Context(), snap, id, tables, nil); err != nil {
		t.Fatal(err)
	}
	if snap.most != 2 {
		t.Errorf("at most %d tables written at once, want 2", snap.most)
	}
	for i, tb := range tables {
		if got, want := rows(tb.Name), int64(1000*(i+1)); got != want {
			t.Errorf("%s: %d rows in the lake, want %d", tb.Name, got, want)
		}
	}
	meta, err := os.ReadFile(filepath.Join(lake, hive.MetaDir, hive.LakeMetaFile))
	if err != nil {
		t.Fatal(err)
	}

	if err := w.Exec(t.Context(), "INSERT INTO t3 SELECT 'a', 'new' || range, DATE '2024-06-01' FROM range(10)"); err != nil {
		t.Fatal(err)
	}
	failing := &watched{Snapshot: w, fail: "t3"}
	err = hive.Open(lake).Publish(t.Context(), failing, id, tables, nil)
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "lake t3") {
		t.Fatalf("Publish with t3's copy failing: %v; want the injected failure, naming t3", err)
	}
	// t4 and t5 start after t3 (two at a time, in order), when it has
	// failed or is about to.
	if slices.Contains(failing.completed, "t4") || slices.Contains(failing.completed, "t5") {
		t.Errorf("tables were still written after t3 failed: %v", failing.completed)
	}
	after, err := os.ReadFile(filepath.Join(lake, hive.MetaDir, hive.LakeMetaFile))
	if err != nil || string(after) != string(meta) {
		t.Errorf("a failed Publish rewrote %s (error %v)", hive.LakeMetaFile, err)
	}
	if got := rows("t3"); got != 4000 {
		t.Errorf("t3: %d rows in the lake after its failed copy, want the 4000 of the last Publish", got)
	}
	if err := hive.Open(lake).Publish(t.Context(), w, id, tables, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows("t3"); got != 4010 {
		t.Errorf("t3: %d rows in the lake after the next Publish, want 4010", got)
	}
}

// TestPartitionYearsInUTC: a table partitioned by a timestamp is split by
// the UTC year, on a machine in New York too; a lake an earlier release
// wrote there, with a New Year's Eve evening in the year before, is
// rewritten whole by the next publish, so that a change to that row
// replaces it instead of adding a second copy in the right year.
func TestPartitionYearsInUTC(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	w, err := duckdb.Open(ctx, filepath.Join(dir, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	q := `SET GLOBAL TimeZone = 'America/New_York';
		CREATE TABLE obs (data_source VARCHAR, id VARCHAR, effective TIMESTAMPTZ, v INTEGER);
		INSERT INTO obs VALUES ('a', 'o1', TIMESTAMPTZ '2021-12-31 20:30:00-05', 1),
			('a', 'o2', TIMESTAMPTZ '2021-06-01 12:00:00-04', 2), ('a', 'o3', TIMESTAMPTZ '2022-06-01 12:00:00-04', 3);
		` + committedRun("r1")
	if err := w.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	obs := load.Table{Name: "obs", Resource: "Observation", Key: "id",
		Schema: arrow.NewSchema([]arrow.Field{
			{Name: "data_source", Type: arrow.BinaryTypes.String}, {Name: "id", Type: arrow.BinaryTypes.String},
			{Name: "effective", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}}, {Name: "v", Type: arrow.PrimitiveTypes.Int32},
		}, nil),
		Partition: &load.Partition{Column: "effective", Name: "effective_year"}}
	lake := filepath.Join(dir, "lake")
	id := load.Identity{Path: w.Path(), ID: w.ID()}
	folders := func() string {
		t.Helper()
		var out string
		queryValue(t, w, &out, `SELECT string_agg(id || '@' || regexp_extract(filename, 'effective_year=([^/]+)', 1) || ':' || v, ' ' ORDER BY id)
			FROM read_parquet(?, filename = true)`, filepath.Join(lake, "obs", "**", "*.parquet"))
		return out
	}
	if err := hive.Open(lake).Publish(ctx, w, id, []load.Table{obs}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := folders(), "o1@2022:1 o2@2021:2 o3@2022:3"; got != want {
		t.Errorf("rows in partitions %q, want %q", got, want)
	}

	// The lake as a release that took New York's years left it.
	sdir := filepath.Join(lake, "obs", "data_source=a")
	for _, c := range []struct{ year, ids string }{{"2021", "'o1', 'o2'"}, {"2022", "'o3'"}} {
		q := fmt.Sprintf("COPY (SELECT * FROM obs WHERE id IN (%s)) TO '%s' (FORMAT parquet)", c.ids, filepath.Join(sdir, "effective_year="+c.year, hive.LakeFile))
		if err := w.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	metaPath := filepath.Join(lake, hive.MetaDir, hive.LakeMetaFile)
	meta, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(meta), fmt.Sprintf(`"version": %d`, hive.LakeMetaVersion), `"version": 2`, 1)
	if old == string(meta) {
		t.Fatalf("no version in %s", meta)
	}
	if err := os.WriteFile(metaPath, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}

	// o1 changes; the run names the partition it is in, in UTC.
	if err := w.Exec(ctx, "UPDATE obs SET v = 10 WHERE id = 'o1'; "+committedRun("r2")); err != nil {
		t.Fatal(err)
	}
	ch := &load.Changes{Source: "a", RunID: "r2", Tables: map[string][]string{"obs": {"2022"}}}
	if err := hive.Open(lake).Publish(ctx, w, id, []load.Table{obs}, ch); err != nil {
		t.Fatal(err)
	}
	if got, want := folders(), "o1@2022:10 o2@2021:2 o3@2022:3"; got != want {
		t.Errorf("after the change, rows in partitions %q, want %q", got, want)
	}
	got, err := hive.ReadLakeMeta(lake)
	if err != nil || got.Version != hive.LakeMetaVersion {
		t.Errorf("lake.json version %d (error %v), want %d", got.Version, err, hive.LakeMetaVersion)
	}
}

// committedRun is the SQL that records a committed run of source a, so
// that the lake, which mirrors the runs before it, is not behind.
func committedRun(id string) string {
	return fmt.Sprintf(`INSERT INTO fhirlake_runs (run_id, source, scope, started_at, finished_at, status, resources, skipped_older, deleted, rejects, watermark_types, rows_per_table)
		VALUES ('%s', 'a', 'files', now(), now(), 'committed', 0, 0, 0, 0, [], MAP {})`, id)
}

// queryValue scans into dst the value of the query's row on the
// warehouse (dst is left as it is when there is none).
func queryValue(t *testing.T, w *duckdb.Warehouse, dst any, query string, args ...any) {
	t.Helper()
	rs, err := w.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		if err := rs.Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
}
