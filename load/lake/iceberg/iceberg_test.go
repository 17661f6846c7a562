//go:build duckdb_arrow

package iceberg_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	iceberggo "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/testserver"
	"github.com/fhirlake/fhirlake/internal/testzone"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

var (
	claimSchema = arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "amount", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}, Nullable: true},
		{Name: "service_start", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "updated", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	}, nil)
	lineSchema = arrow.NewSchema([]arrow.Field{
		{Name: "claim_id", Type: arrow.BinaryTypes.String},
		{Name: "seq", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	tables = []load.Table{
		{Name: "claim", Resource: "Claim", Key: "id", Schema: claimSchema, PrimaryKey: []string{"id"},
			Partition: &load.Partition{Column: "service_start", Name: "service_year"}},
		{Name: "claim_line", Resource: "Claim", Key: "claim_id", Schema: lineSchema, PrimaryKey: []string{"claim_id", "seq"}},
	}
)

// claim is a test resource: its service date ("" for none) and lines.
type claim struct {
	id, date string
	lines    int
}

// commit runs one load of source into w: tombstones, then claims, all
// last updated now.
func commit(t *testing.T, w *duckdb.Warehouse, source, runID string, deleted []string, claims ...claim) *load.Changes {
	t.Helper()
	return commitWith(t, w, source, runID, nil, deleted, claims...)
}

// commitWith is commit with the run's Decided hook (load.Run.Decided).
func commitWith(t *testing.T, w *duckdb.Warehouse, source, runID string, decided func(map[string][]string), deleted []string, claims ...claim) *load.Changes {
	t.Helper()
	ctx := t.Context()
	l, err := w.Begin(ctx, source, tables)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(ctx)
	var ts []load.Tombstone
	for _, d := range deleted {
		ts = append(ts, load.Tombstone{ResourceType: "Claim", ID: d})
	}
	l.Delete(ctx, ts)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, load.ResourcesSchema)
	cb := array.NewRecordBuilder(memory.DefaultAllocator, claimSchema)
	lb := array.NewRecordBuilder(memory.DefaultAllocator, lineSchema)
	now := arrow.Timestamp(time.Now().UnixMicro())
	for i, c := range claims {
		rb.Field(0).(*array.StringBuilder).Append("Claim")
		rb.Field(1).(*array.StringBuilder).Append(c.id)
		rb.Field(2).(*array.TimestampBuilder).Append(now)
		rb.Field(3).AppendNull()
		rb.Field(4).(*array.StringBuilder).Append("Claim.ndjson")
		rb.Field(5).(*array.Int64Builder).Append(int64(i + 1))
		rb.Field(6).AppendNull()
		cb.Field(0).(*array.StringBuilder).Append(c.id)
		cb.Field(1).AppendNull()
		if c.date == "" {
			cb.Field(2).AppendNull()
		} else {
			d, _ := time.Parse(time.DateOnly, c.date)
			cb.Field(2).(*array.Date32Builder).Append(arrow.Date32FromTime(d))
		}
		cb.Field(3).(*array.TimestampBuilder).Append(now)
		for s := range c.lines {
			lb.Field(0).(*array.StringBuilder).Append(c.id)
			lb.Field(1).(*array.Int32Builder).Append(int32(s))
		}
	}
	for name, b := range map[string]*array.RecordBuilder{load.Resources: rb, "claim": cb, "claim_line": lb} {
		rec := b.NewRecordBatch()
		if err := l.WriteBatch(ctx, name, rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: runID, Source: source, Scope: "system", Started: time.Now(), TransactionTime: time.Now(), Decided: decided})
	if err != nil {
		t.Fatal(err)
	}
	return st.Changes
}

func query(t *testing.T, w *duckdb.Warehouse, q string) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		rows.Scan(&s)
		out = append(out, s.String)
	}
	return out
}

func publish(t *testing.T, lk *iceberg.Lake, w *duckdb.Warehouse, ch *load.Changes) {
	t.Helper()
	if err := lk.Publish(t.Context(), w, load.Identity{Path: w.Path(), ID: w.ID()}, tables, ch); err != nil {
		t.Fatal(err)
	}
}

// snapshotSummary is the run id and source of the table's current
// snapshot.
func snapshotSummary(t *testing.T, lk *iceberg.Lake, name string) string {
	t.Helper()
	tbl, err := lk.Table(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return ""
	}
	return s.Summary.Properties[iceberg.SummaryRunID] + " " + s.Summary.Properties[iceberg.SummarySource]
}

// TestPublishMirrorsWarehouse runs loads of two sources, with updates,
// deletes and a claim that moves years, and a lake write that is lost,
// and checks after each publish that every table's current snapshot
// holds exactly the warehouse's rows.
func TestPublishMirrorsWarehouse(t *testing.T) {
	lakeTest(t, t.TempDir(), load.LakeOptions{}, "")
}

func lakeTest(t *testing.T, location string, opts load.LakeOptions, s3root string) {
	ctx := t.Context()
	dir := t.TempDir()
	w, err := duckdb.Open(ctx, filepath.Join(dir, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	opts.Warehouse = w.Path()
	lk, err := iceberg.Open(ctx, location, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	steps := []struct {
		source, run string
		deleted     []string
		claims      []claim
		skip        bool // the lake write of this run is lost
	}{
		{"payer-a", "r1", nil, []claim{{"a", "2021-05-01", 2}, {"b", "2022-01-01", 1}, {"c", "", 1}}, false},
		{"payer-b", "r2", nil, []claim{{"a", "2021-07-01", 3}}, false},
		{"payer-a", "r3", []string{"b"}, []claim{{"a", "2023-02-02", 1}}, false}, // a moves years, b goes
		{"payer-b", "r4", nil, []claim{{"d", "2020-01-01", 1}}, true},
		{"payer-a", "r5", []string{"c"}, []claim{{"e", "2024-12-31", 2}}, false}, // catches up r4
	}
	for _, s := range steps {
		ch := commit(t, w, s.source, s.run, s.deleted, s.claims...)
		if s.skip {
			continue
		}
		publish(t, lk, w, ch)
		icebergtest.CheckMirrors(t, w, lk, s3root, "claim", "claim_line", "fhirlake_runs", "fhirlake_resources")
		if got := snapshotSummary(t, lk, "claim"); got != s.run+" "+s.source {
			t.Errorf("after %s: claim's snapshot summary %q", s.run, got)
		}
	}
	// The spec: identity on data_source, year on the partition column.
	tbl, err := lk.Table(ctx, "claim")
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	spec := tbl.Spec()
	for _, f := range spec.Fields() {
		fields = append(fields, f.Name+":"+f.Transform.String())
	}
	if diff := cmp.Diff([]string{"data_source:identity", "service_year:year"}, fields); diff != "" {
		t.Errorf("partition spec (-want +got):\n%s", diff)
	}
	// Time travel: the first snapshot still reads as the first run left it.
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) < 4 {
		t.Errorf("%d snapshots of claim", len(snaps))
	}
}

// failingSnapshot is a warehouse snapshot whose record streams fail after
// their first batch, as a crash or a network failure in the middle of a
// publish would.
type failingSnapshot struct{ *duckdb.Warehouse }

func (f failingSnapshot) Records(ctx context.Context, t load.Table, source string, vals []string) (load.RecordReader, error) {
	rr, err := f.Warehouse.Records(ctx, t, source, vals)
	if err != nil {
		return nil, err
	}
	return &failAfterFirst{RecordReader: rr}, nil
}

func (f failingSnapshot) RecordsOf(ctx context.Context, t load.Table, source string, ids []string, appended int64) (load.RecordReader, error) {
	rr, err := f.Warehouse.RecordsOf(ctx, t, source, ids, appended)
	if err != nil {
		return nil, err
	}
	return &failAfterFirst{RecordReader: rr}, nil
}

// WriteRunParts writes the run's files, then fails as a lost connection
// would before they are all written.
func (f failingSnapshot) WriteRunParts(ctx context.Context, t load.Table, source string, ids []string, appended int64, fieldIDs map[string]int, rowGroup int, dir string) ([]string, error) {
	if _, err := f.Warehouse.WriteRunParts(ctx, t, source, ids, appended, fieldIDs, rowGroup, dir); err != nil {
		return nil, err
	}
	return nil, errors.New("connection lost")
}

type failAfterFirst struct {
	load.RecordReader
	n int
}

func (r *failAfterFirst) Next() bool {
	r.n++
	return r.n == 1 && r.RecordReader.Next()
}

func (r *failAfterFirst) Err() error {
	if r.n > 1 {
		return errors.New("connection lost")
	}
	return nil
}

// filesUnder lists the Parquet files under a local folder.
func filesUnder(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			out[path] = true
		}
		return nil
	})
	return out
}

// TestFailedPublishIsCaughtUp: a publish that fails half-way leaves the
// lake a snapshot behind and maybe files no snapshot references; the next
// publish rewrites the lake from the warehouse and removes those files,
// never one a snapshot references.
func TestFailedPublishIsCaughtUp(t *testing.T) {
	ctx := t.Context()
	w, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	root := t.TempDir()
	lk, err := iceberg.Open(ctx, root, load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claim{"a", "2021-05-01", 2}))
	ch := commit(t, w, "payer-a", "r2", nil, claim{"b", "2022-05-01", 1})
	if err := lk.Publish(ctx, failingSnapshot{w}, load.Identity{Path: w.Path(), ID: w.ID()}, tables, ch); err == nil {
		t.Fatal("a publish whose reads fail succeeded")
	}
	// The files the failed publish wrote for its commit are gone with it.
	onlyReferenced(t, lk, root)
	// A commit that wrote its file but never made it into a snapshot.
	stray := filepath.Join(root, "claim", "data", "data_source=payer-a", "00000-0-stray.parquet")
	if err := os.MkdirAll(filepath.Dir(stray), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("PAR1"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The failure was a while ago: unreferenced files younger than an
	// hour are left alone (another writer's commit may be in progress).
	ago := time.Now().Add(-2 * time.Hour)
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(path, ago, ago)
		}
		return nil
	})
	publish(t, lk, w, commit(t, w, "payer-a", "r3", nil, claim{"c", "2023-05-01", 1}))
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line")
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("the orphan file is still there: %v", err)
	}
	onlyReferenced(t, lk, root)
}

// onlyReferenced checks that every Parquet file of the claim tables under
// the lake's folder root is referenced by some snapshot of its table.
func onlyReferenced(t *testing.T, lk *iceberg.Lake, root string) {
	t.Helper()
	ctx := t.Context()
	for _, name := range []string{"claim", "claim_line"} {
		referenced := map[string]bool{}
		tbl, _ := lk.Table(ctx, name)
		for _, s := range tbl.Metadata().Snapshots() {
			tasks, err := tbl.Scan(table.WithSnapshotID(s.SnapshotID)).PlanFiles(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range tasks {
				referenced[icebergtest.LocalPath(t, "", task.File.FilePath())] = true
				for _, d := range task.DeleteFiles {
					referenced[icebergtest.LocalPath(t, "", d.FilePath())] = true
				}
			}
		}
		for f := range filesUnder(t, filepath.Join(root, name, "data")) {
			if !referenced[f] {
				t.Errorf("%s: %s is referenced by no snapshot", name, f)
			}
		}
	}
}

// TestExpire keeps the current snapshot of each table, as the warehouse
// has it, and removes the files only older snapshots referenced.
func TestExpire(t *testing.T) {
	ctx := t.Context()
	w, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	root := t.TempDir()
	lk, err := iceberg.Open(ctx, root, load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	for i, c := range []claim{{"a", "2021-05-01", 2}, {"a", "2022-05-01", 1}, {"a", "2023-05-01", 3}} {
		publish(t, lk, w, commit(t, w, "payer-a", fmt.Sprintf("r%d", i+1), nil, c))
	}
	before := len(filesUnder(t, filepath.Join(root, "claim")))
	st, err := lk.Expire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := lk.Table(ctx, "claim")
	if n := len(tbl.Metadata().Snapshots()); n != 1 || st.Snapshots < 2 {
		t.Errorf("after expiry: %d snapshots of claim, %d expired in all", n, st.Snapshots)
	}
	files, deletes := icebergtest.Files(t, lk, "claim")
	if after := len(filesUnder(t, filepath.Join(root, "claim"))); after != len(files)+len(deletes) || after >= before {
		t.Errorf("claim's data files: %d before, %d after, %d data and %d delete files in the current snapshot", before, after, len(files), len(deletes))
	}
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line")
}

// TestReaderConventions: what Trino, Spark, Athena and DuckDB expect of
// the files: timestamps as INT64 microseconds adjusted to UTC (never INT96
// or nanoseconds), decimals of at most 38 digits, no ':' in partition
// values, file names readers do not skip (no leading '_' or '.').
func TestReaderConventions(t *testing.T) {
	ctx := t.Context()
	w, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	root := t.TempDir()
	lk, err := iceberg.Open(ctx, root, load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claim{"a", "2021-05-01", 2}, claim{"b", "", 1}))
	files, _ := icebergtest.Files(t, lk, "claim")
	for _, f := range files {
		path := icebergtest.LocalPath(t, "", f)
		base := filepath.Base(path)
		if strings.HasPrefix(base, "_") || strings.HasPrefix(base, ".") {
			t.Errorf("%s: a name readers skip", base)
		}
		rel, _ := filepath.Rel(root, path)
		if strings.Contains(rel, ":") {
			t.Errorf("%s: ':' in a partition value", rel)
		}
		got := query(t, w, "SELECT name || ' ' || type || ' ' || coalesce(logical_type::VARCHAR, converted_type::VARCHAR, '') FROM parquet_schema('"+path+"') WHERE name IN ('updated', 'amount') ORDER BY name")
		if len(got) != 2 || !strings.HasPrefix(got[0], "amount FIXED_LEN_BYTE_ARRAY DecimalType(scale=2, precision=12)") &&
			!strings.HasPrefix(got[0], "amount INT64 DecimalType(scale=2, precision=12)") ||
			!strings.Contains(got[1], "updated INT64 TimestampType(isAdjustedToUTC=1, unit=TimeUnit(MILLIS=<null>, MICROS=MicroSeconds(), NANOS=<null>)") {
			t.Errorf("%s: column types %q", base, got)
		}
	}
}

// TestPublishToS3WithPostgresCatalog is TestPublishMirrorsWarehouse with
// the real parts: the tables on an S3 server (versitygw on loopback,
// path-style addressing, credentials from the AWS variables) and the
// catalog in a PostgreSQL server. The read-back reads the objects as the
// files the S3 server keeps them in.
func TestPublishToS3WithPostgresCatalog(t *testing.T) {
	s3 := testserver.S3(t)
	s3.Bucket(t, "lake")
	pg := testserver.Postgres(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	lakeTest(t, "s3://lake/fhirlake", load.LakeOptions{S3Endpoint: s3.Endpoint, S3PathStyle: true, Catalog: pg.DSN}, s3.Dir)
	// The catalog has the Iceberg SQL catalog's layout, which Spark's and
	// Trino's JDBC catalogs open.
	db, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM iceberg_tables WHERE catalog_name = 'fhirlake' AND table_namespace = 'fhirlake' AND table_name = 'claim'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("iceberg_tables: %d rows for claim, %v", n, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM iceberg_namespace_properties WHERE namespace = 'fhirlake'`).Scan(&n); err != nil || n == 0 {
		t.Errorf("iceberg_namespace_properties: %d rows, %v", n, err)
	}
}

// TestPublishWithSQLiteCatalogOnS3 uses the default catalog, SQLite beside
// the warehouse, with the tables on S3.
func TestPublishWithSQLiteCatalogOnS3(t *testing.T) {
	s3 := lakeBucket(t)
	lakeTest(t, "s3://lake/sqlite-catalog", load.LakeOptions{S3PathStyle: true}, s3.Dir)
}

// lakeBucket starts an S3 server with the bucket "lake", which the lake
// reaches through the AWS variables (endpoint included), until the test
// ends.
func lakeBucket(t *testing.T) testserver.S3Server {
	s3 := testserver.S3(t)
	s3.Bucket(t, "lake")
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("AWS_ENDPOINT_URL_S3", s3.Endpoint)
	return s3
}

// TestSourceHandover: a source may move between warehouses through the
// lake. A warehouse that has not restored the lake's state of a source
// another warehouse published cannot publish a run of it; once it has
// restored it, it holds exactly the lake's rows of the source, data and
// bookkeeping, and its next run is published incrementally; the first
// warehouse is then the stale one. The sources stay apart throughout, and
// a new warehouse restores a source the same way.
func TestSourceHandover(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	open := func(name string) *duckdb.Warehouse {
		w, err := duckdb.Open(ctx, filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		return w
	}
	w, other := open("w.duckdb"), open("other.duckdb")
	lk, err := iceberg.Open(ctx, t.TempDir(), load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	stale := func(w *duckdb.Warehouse, source string) bool {
		t.Helper()
		id := ""
		if w != nil {
			id = w.ID()
		}
		got, err := lk.Stale(ctx, id, source)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if stale(other, "payer-a") {
		t.Fatal("a new lake: stale")
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claim{"a", "2021-05-01", 2}, claim{"b", "2022-01-01", 1}, claim{"c", "2021-07-01", 1}))
	publish(t, lk, w, commit(t, w, "payer-b", "r2", nil, claim{"a", "2023-01-01", 1}))
	if stale(w, "payer-a") || !stale(other, "payer-a") || !stale(nil, "payer-a") {
		t.Fatal("stale: wrong after w published payer-a")
	}
	if err := lk.Check(ctx, other.Path(), other.ID(), "payer-a"); err != nil {
		t.Fatalf("Check refused another warehouse: %v", err)
	}
	// other's own, older, run of payer-a may not replace w's.
	ch := commit(t, other, "payer-a", "r0", nil, claim{"z", "2024-05-01", 1})
	if err := lk.Publish(ctx, other, load.Identity{Path: other.Path(), ID: other.ID()}, tables, ch); !errors.Is(err, load.ErrLakeMismatch) || !strings.Contains(err.Error(), w.Path()) {
		t.Fatalf("Publish of a stale source: %v", err)
	}
	st, err := other.RestoreSource(ctx, "payer-a", lk, tables)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows == 0 || st.Tables == 0 {
		t.Errorf("restore copied %+v", st)
	}
	bySource := func(w *duckdb.Warehouse, source string) {
		t.Helper()
		icebergtest.CheckMirrorsWhere(t, w, lk, "", "data_source = '"+source+"'", "claim", "claim_line")
		icebergtest.CheckMirrorsWhere(t, w, lk, "", "source = '"+source+"'", "fhirlake_runs", "fhirlake_resources", "fhirlake_watermarks", "fhirlake_deleted")
	}
	bySource(other, "payer-a")
	if got := query(t, other, "SELECT string_agg(id, ',' ORDER BY id) FROM claim"); got[0] != "a,b,c" {
		t.Errorf("other's claims after the restore: %v, want w's a,b,c and not its own z", got)
	}
	if got := query(t, other, "SELECT count(*)::VARCHAR FROM claim WHERE data_source = 'payer-b'"); got[0] != "0" {
		t.Errorf("the restore of payer-a brought %s rows of payer-b", got[0])
	}
	publish(t, lk, other, commit(t, other, "payer-a", "r3", []string{"b"}, claim{"a", "2021-05-01", 3}))
	if got := snapshotSummary(t, lk, "claim_line"); got != "r3 payer-a" {
		t.Errorf("claim_line's snapshot: %q", got)
	}
	// Incremental: the run's commit writes the changed claim, not its
	// unchanged neighbour c in the same partition (a compaction may
	// follow it).
	tbl, err := lk.Table(ctx, "claim")
	if err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, snap := range tbl.Metadata().Snapshots() {
		if snap.Summary != nil && snap.Summary.Properties[iceberg.SummaryRunID] == "r3" {
			if snap.Summary.Operation != table.OpReplace {
				n, _ := strconv.Atoi(snap.Summary.Properties["added-records"])
				added += n
			}
		}
	}
	if added != 1 {
		t.Errorf("the first run after a restore wrote %d claims, want 1", added)
	}
	bySource(other, "payer-a")
	bySource(w, "payer-b")
	if !stale(w, "payer-a") || stale(other, "payer-a") {
		t.Fatal("stale: wrong after other published payer-a")
	}
	ch = commit(t, w, "payer-a", "r4", nil, claim{"y", "2020-01-01", 1})
	if err := lk.Publish(ctx, w, load.Identity{Path: w.Path(), ID: w.ID()}, tables, ch); !errors.Is(err, load.ErrLakeMismatch) {
		t.Fatalf("Publish of a source another warehouse took over: %v", err)
	}
	// w keeps writing payer-b, and leaves payer-a alone, even when it
	// rewrites everything it publishes.
	publish(t, lk, w, commit(t, w, "payer-b", "r5", nil, claim{"c", "2023-02-01", 1}))
	publish(t, lk, w, nil)
	bySource(w, "payer-b")
	bySource(other, "payer-a")
	fresh := open("fresh.duckdb")
	if _, err := fresh.RestoreSource(ctx, "payer-b", lk, tables); err != nil {
		t.Fatal(err)
	}
	bySource(fresh, "payer-b")
}

// TestLease: one holder per source at a time; the same holder may take
// its lease again (a run that replaces a killed one on the same
// machine); a released lease is free at once, an abandoned one when it
// expires, and its holder learns that it lost it.
func TestLease(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { leaseTest(t, "sqlite:"+filepath.Join(t.TempDir(), "catalog.db")) })
	t.Run("postgres", func(t *testing.T) { leaseTest(t, testserver.Postgres(t).DSN) })
}

func leaseTest(t *testing.T, catalog string) {
	ctx := t.Context()
	root := t.TempDir()
	open := func() *iceberg.Lake {
		lk, err := iceberg.Open(ctx, root, load.LakeOptions{Catalog: catalog})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lk.Close() })
		return lk
	}
	// Lifetimes of 2s: a renewal every 500ms has room on a loaded machine.
	const ttl = 2 * time.Second
	one, two := open(), open()
	l1, err := one.Lease(ctx, "payer-a", "host1:/w.duckdb", "run r1 on host1", ttl)
	if err != nil {
		t.Fatal(err)
	}
	_, err = two.Lease(ctx, "payer-a", "host2:/w.duckdb", "run r2 on host2", ttl)
	if !errors.Is(err, load.ErrLeased) || !strings.Contains(err.Error(), "run r1 on host1") {
		t.Fatalf("a held source: %v", err)
	}
	lb, err := two.Lease(ctx, "payer-b", "host2:/w.duckdb", "run r2 on host2", ttl)
	if err != nil {
		t.Fatalf("another source: %v", err)
	}
	lb.Release(ctx)
	// Held past its lifetime by renewals.
	time.Sleep(3 * time.Second)
	if _, err := two.Lease(ctx, "payer-a", "host2:/w.duckdb", "run r2 on host2", ttl); !errors.Is(err, load.ErrLeased) {
		t.Fatalf("a renewed lease was taken: %v", err)
	}
	again, err := one.Lease(ctx, "payer-a", "host1:/w.duckdb", "run r3 on host1", ttl)
	if err != nil {
		t.Fatalf("the same holder: %v", err)
	}
	again.Release(ctx)
	l1.Release(ctx)
	l2, err := two.Lease(ctx, "payer-a", "host2:/w.duckdb", "run r2 on host2", ttl)
	if err != nil {
		t.Fatalf("a released lease: %v", err)
	}
	select {
	case <-l1.Lost():
		t.Error("a released lease reports itself lost")
	default:
	}
	// A holder whose catalog goes away stops renewing: its lease expires
	// and it learns so; the source is free for another.
	three := open()
	l2.Release(ctx)
	l3, err := three.Lease(ctx, "payer-a", "host3:/w.duckdb", "run r4 on host3", ttl)
	if err != nil {
		t.Fatal(err)
	}
	three.Close()
	select {
	case <-l3.Lost():
	case <-time.After(15 * time.Second):
		t.Fatal("an unrenewable lease is not reported lost")
	}
	// The holder counts its lifetime from before its last renewal, so it
	// gives up no later than the database lets the lease go: wait for that.
	var l4 load.Lease
	for deadline := time.Now().Add(5 * time.Second); ; {
		if l4, err = two.Lease(ctx, "payer-a", "host2:/w.duckdb", "run r5 on host2", ttl); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("an expired lease: %v", err)
	}
	l4.Release(ctx)
	if _, err := one.Lease(ctx, "payer-a", "h", "", 10*time.Millisecond); err == nil {
		t.Error("a lifetime of 10ms is accepted")
	}
}

// TestPublishAddsColumns: a warehouse table that gained a column (here
// the version index of a newer layout) evolves the Iceberg table's schema
// instead of failing the publish.
func TestPublishAddsColumns(t *testing.T) {
	ctx := t.Context()
	w, lk := folderLake(t)
	exec := func(q string) {
		rows, err := w.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	ch := commit(t, w, "payer-a", "r1", nil, claim{"a", "2021-05-01", 1})
	exec("ALTER TABLE fhirlake_resources DROP COLUMN content_hash") // as a layout 2 warehouse published it
	publish(t, lk, w, ch)
	exec("ALTER TABLE fhirlake_resources ADD COLUMN content_hash BIGINT")
	publish(t, lk, w, commit(t, w, "payer-b", "r2", nil, claim{"b", "2021-06-01", 1}))
	tbl, err := lk.Table(ctx, load.IndexTable)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tbl.Schema().FindFieldByName("content_hash"); !ok {
		t.Fatalf("the lake's version index has no content_hash: %v", tbl.Schema())
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.IndexTable, "claim")
}

// folderLake opens a new warehouse and an Iceberg lake on a folder
// mirroring it (SQLite catalog), both closed when the test ends.
func folderLake(t *testing.T) (*duckdb.Warehouse, *iceberg.Lake) {
	t.Helper()
	w := warehouseAt(t, filepath.Join(t.TempDir(), "w.duckdb"))
	lk, err := iceberg.Open(t.Context(), t.TempDir(), load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Close() })
	return w, lk
}

// warehouseAt opens the warehouse at path until the test ends.
func warehouseAt(t *testing.T, path string) *duckdb.Warehouse {
	t.Helper()
	w, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// claims are n claims c00, c01, ... of two lines each, served on March 1
// of years 2020 onwards, one year after the other over years years.
func claims(n, years int) []claim {
	var all []claim
	for i := range n {
		all = append(all, claim{fmt.Sprintf("c%02d", i), fmt.Sprintf("%d-03-01", 2020+i%years), 2})
	}
	return all
}

// TestIncrementalRunsMergeOnRead: a run that changes a few resources
// writes their rows and position-delete files, and rewrites no data file;
// once deleted rows reach a fifth of a table, the next run rewrites it
// whole and no delete file is left. The lake reads as the warehouse after
// every run, by DuckDB applying the delete files itself.
func TestIncrementalRunsMergeOnRead(t *testing.T) {
	ctx := t.Context()
	w, lk := folderLake(t)
	all := claims(40, 4)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, all...))
	base, _ := icebergtest.Files(t, lk, "claim")

	// r2: three claims change, one moves to another year, one goes.
	publish(t, lk, w, commit(t, w, "payer-a", "r2", []string{"c04"},
		claim{"c00", "2020-03-01", 1}, claim{"c01", "2021-03-01", 3}, claim{"c02", "2022-03-01", 2}, claim{"c03", "2021-06-01", 2}))
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", "fhirlake_resources")
	files, deletes := icebergtest.Files(t, lk, "claim")
	for _, f := range base {
		if !slices.Contains(files, f) {
			t.Errorf("r2 rewrote %s", f)
		}
	}
	if len(deletes) == 0 {
		t.Error("r2 wrote no delete file")
	}
	tbl, _ := lk.Table(ctx, "claim")
	if got := tbl.CurrentSnapshot().Summary.Properties["added-records"]; got != "4" {
		t.Errorf("r2 added %s claim rows, want the 4 changed ones", got)
	}
	// The warehouse wrote the new rows' files (one per year of claims).
	if got := writers(t, added(base, files)); !slices.Equal(got, []string{duckdbWriter, duckdbWriter, duckdbWriter}) {
		t.Errorf("r2's claim files were written by %q, want three by the warehouse (%s)", got, duckdbWriter)
	}
	idx, _ := lk.Table(ctx, load.IndexTable)
	if got := idx.CurrentSnapshot().Summary.Properties["added-records"]; got != "4" {
		t.Errorf("r2 added %s rows to the version index, want the 4 new versions", got)
	}

	// r3 and r4 change four claims each: after r4's commit, 13 of the 52
	// rows of the table's files are deleted (a quarter), so r4 compacts
	// the table.
	for i, run := range []string{"r3", "r4"} {
		var cs []claim
		for j := range 4 {
			c := all[10+4*i+j]
			c.lines = 1
			cs = append(cs, c)
		}
		publish(t, lk, w, commit(t, w, "payer-a", run, nil, cs...))
		icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", "fhirlake_resources")
	}
	tbl, _ = lk.Table(ctx, "claim")
	sum := tbl.CurrentSnapshot().Summary.Properties
	if sum["total-delete-files"] != "0" || sum["total-position-deletes"] != "0" || sum["total-records"] != "39" {
		t.Errorf("after the compaction: %s delete files, %s deleted positions, %s rows (want 0, 0, 39)",
			sum["total-delete-files"], sum["total-position-deletes"], sum["total-records"])
	}
}

// TestOldMetadataFilesDeleted: a table keeps the metadata files its log
// names and deletes older ones at each commit, a table made without the
// setting too, from its next commit on; the lake still reads the same.
func TestOldMetadataFilesDeleted(t *testing.T) {
	w, lk := folderLake(t)
	metadataFiles := func(table string) int {
		t.Helper()
		files, err := filepath.Glob(filepath.Join(strings.TrimPrefix(lk.Location(), "file://"), table, "metadata", "*.metadata.json"))
		if err != nil {
			t.Fatal(err)
		}
		return len(files)
	}
	restore := iceberg.SetMetadataVersionsForTest(0)
	for i := range 4 {
		publish(t, lk, w, commit(t, w, "payer-a", fmt.Sprintf("r%d", i), nil, claim{fmt.Sprintf("c%02d", i), "2021-03-01", 2}))
	}
	restore()
	before := metadataFiles(load.RunsTable)
	if before < 5 {
		t.Fatalf("%d metadata files of the run log after four runs that keep them all, want at least 5", before)
	}
	defer iceberg.SetMetadataVersionsForTest(2)()
	for i := 4; i < 7; i++ {
		publish(t, lk, w, commit(t, w, "payer-a", fmt.Sprintf("r%d", i), nil, claim{fmt.Sprintf("c%02d", i), "2021-03-01", 2}))
	}
	for _, table := range []string{load.RunsTable, "claim", "claim_line", load.IndexTable} {
		if n := metadataFiles(table); n > 3 {
			t.Errorf("%s: %d metadata files, want the current one and 2 before it", table, n)
		}
	}
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", load.RunsTable, load.IndexTable)
}

// duckdbWriter begins the created_by of the Parquet files DuckDB writes.
const duckdbWriter = "DuckDB"

// added are the files of files not in base.
func added(base, files []string) []string {
	var out []string
	for _, f := range files {
		if !slices.Contains(base, f) {
			out = append(out, f)
		}
	}
	return out
}

// writers are the first words of the created_by of the local Parquet
// files (as the lake names them), sorted.
func writers(t *testing.T, files []string) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		r, err := file.OpenParquetFile(icebergtest.LocalPath(t, "", f), false)
		if err != nil {
			t.Fatal(err)
		}
		by, _, _ := strings.Cut(r.MetaData().GetCreatedBy(), " ")
		out = append(out, by)
		r.Close()
	}
	slices.Sort(out)
	return out
}

// plainSnapshot is a warehouse snapshot that writes no Parquet of its own
// (as the in-memory warehouse): the lake writes the rows itself.
type plainSnapshot struct{ load.Snapshot }

// TestIncrementalAppendWriters: a run's new rows go into files the
// warehouse writes when it writes Parquet, partitioned and not, and into
// files the lake writes from the rows otherwise; either way the lake
// reads as the warehouse.
func TestIncrementalAppendWriters(t *testing.T) {
	for _, c := range []struct {
		name   string
		snap   func(*duckdb.Warehouse) load.Snapshot
		writer string
	}{
		{"warehouse files", func(w *duckdb.Warehouse) load.Snapshot { return w }, duckdbWriter},
		{"lake files", func(w *duckdb.Warehouse) load.Snapshot { return plainSnapshot{w} }, "parquet-go"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, lk := folderLake(t)
			publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(20, 3)...))
			baseClaims, _ := icebergtest.Files(t, lk, "claim")
			baseLines, _ := icebergtest.Files(t, lk, "claim_line")
			ch := commit(t, w, "payer-a", "r2", []string{"c05"}, claim{"c00", "2020-03-01", 1}, claim{"c01", "2023-03-01", 3}, claim{"c99", "", 2})
			if err := lk.Publish(t.Context(), c.snap(w), load.Identity{Path: w.Path(), ID: w.ID()}, tables, ch); err != nil {
				t.Fatal(err)
			}
			icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", "fhirlake_resources")
			claimFiles, _ := icebergtest.Files(t, lk, "claim")
			lineFiles, _ := icebergtest.Files(t, lk, "claim_line")
			// Claims of 2020, 2023 and no year: three files; lines: one.
			want := []string{c.writer, c.writer, c.writer, c.writer}
			if got := writers(t, append(added(baseClaims, claimFiles), added(baseLines, lineFiles)...)); !slices.Equal(got, want) {
				t.Errorf("the run's files were written by %q, want %q", got, want)
			}
		})
	}
}

// TestWarehouseRowsRewrittenWhenChanged: the lake's copy of the
// warehouse's id and layout is written by the first publish and again
// only when they change, not at every run.
func TestWarehouseRowsRewrittenWhenChanged(t *testing.T) {
	w, lk := folderLake(t)
	snapshots := func() int {
		t.Helper()
		tbl, err := lk.Table(t.Context(), "fhirlake_warehouse")
		if err != nil {
			t.Fatal(err)
		}
		return len(tbl.Metadata().Snapshots())
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(4, 1)...))
	first := snapshots()
	publish(t, lk, w, commit(t, w, "payer-a", "r2", nil, claim{"c00", "2021-03-01", 2}))
	publish(t, lk, w, commit(t, w, "payer-a", "r3", nil, claim{"c00", "2021-03-01", 2})) // unchanged
	if got := snapshots(); got != first {
		t.Errorf("%d snapshots of fhirlake_warehouse after two more runs, want %d: rewritten though unchanged", got, first)
	}
	icebergtest.CheckMirrors(t, w, lk, "", "fhirlake_warehouse")
	if err := w.Exec(t.Context(), `INSERT INTO fhirlake_warehouse VALUES ('note', 'moved')`); err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r4", nil, claim{"c01", "2021-04-01", 1}))
	if got := snapshots(); got == first {
		t.Error("fhirlake_warehouse not rewritten after its rows changed")
	}
	icebergtest.CheckMirrors(t, w, lk, "", "fhirlake_warehouse")
}

// TestRunLogAppended: a run appends its row of the run log, with the
// source's runs the lake lacks (a rejected run's), in one snapshot that
// deletes nothing; a lake holding a run the warehouse does not gets the
// source's rows rewritten. The lake mirrors the warehouse throughout.
func TestRunLogAppended(t *testing.T) {
	ctx := t.Context()
	w, lk := folderLake(t)
	seen := 0
	// since lists the operations of the run log's snapshots since the
	// last call, and its data files.
	since := func() (ops []string, files string) {
		t.Helper()
		tbl, err := lk.Table(ctx, load.RunsTable)
		if err != nil {
			t.Fatal(err)
		}
		snaps := tbl.Metadata().Snapshots()
		for _, s := range snaps[seen:] {
			ops = append(ops, string(s.Summary.Operation))
		}
		seen = len(snaps)
		return ops, tbl.CurrentSnapshot().Summary.Properties["total-data-files"]
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(4, 1)...))
	publish(t, lk, w, commit(t, w, "payer-b", "r2", nil, claims(2, 1)...))
	since()
	publish(t, lk, w, commit(t, w, "payer-a", "r3", nil, claim{"c00", "2021-03-01", 2}))
	if ops, files := since(); !slices.Equal(ops, []string{"append"}) || files != "2" {
		t.Errorf("r3's snapshots of the run log: %v, %s data files; want [append], 2", ops, files)
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.RunsTable)
	// A rejected run of payer-a, recorded but not published, goes with
	// the next one.
	if err := w.Exec(ctx, `INSERT INTO fhirlake_runs (run_id, source, scope, started_at, finished_at, status, resources, skipped_older, deleted, rejects, watermark_types, rows_per_table)
		VALUES ('r4', 'payer-a', 'files', now(), now(), 'rejected', 0, 0, 0, 9, [], MAP {})`); err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r5", nil, claim{"c01", "2021-03-01", 2}))
	if ops, files := since(); !slices.Equal(ops, []string{"append"}) || files != "3" {
		t.Errorf("r5's snapshots of the run log: %v, %s data files; want [append], 3 (r4 and r5 in one)", ops, files)
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.RunsTable)
	// The lake holds a run of payer-a the warehouse lost: the source's
	// rows are rewritten.
	if err := w.Exec(ctx, `DELETE FROM fhirlake_runs WHERE run_id = 'r4'`); err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r6", nil, claim{"c02", "2021-03-01", 2}))
	if ops, _ := since(); !slices.Contains(ops, "delete") && !slices.Contains(ops, "overwrite") {
		t.Errorf("r6's snapshots of the run log: %v, want payer-a's rows rewritten", ops)
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.RunsTable)
	// A column the warehouse's run log gained (a newer layout) is added
	// to the lake's before the append.
	ch := commit(t, w, "payer-a", "r7", nil, claim{"c03", "2021-03-01", 2})
	if err := w.Exec(ctx, `ALTER TABLE fhirlake_runs ADD COLUMN note VARCHAR`); err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, ch)
	if ops, _ := since(); !slices.Equal(ops, []string{"append"}) {
		t.Errorf("r7's snapshots of the run log: %v, want [append]", ops)
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.RunsTable)
}

// TestRunLogCompacted: the run log's appended files are compacted like
// a data table's, its map column and every row kept.
func TestRunLogCompacted(t *testing.T) {
	defer iceberg.SetCompactionForTest(1, 2)()
	ctx := t.Context()
	w, lk := folderLake(t)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(4, 1)...))
	most, replaced := int64(0), false
	for i := range 6 {
		publish(t, lk, w, commit(t, w, "payer-a", fmt.Sprintf("r%d", i+2), nil, claim{fmt.Sprintf("c%02d", i%4), "2021-03-01", 2 + i}))
		tbl, err := lk.Table(ctx, load.RunsTable)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(tbl.CurrentSnapshot().Summary.Properties["total-data-files"], 10, 64)
		most = max(most, n)
		replaced = replaced || tbl.CurrentSnapshot().Summary.Operation == "replace"
	}
	if !replaced || most > 3 {
		t.Errorf("run log compacted: %v, at most %d data files; want compacted, at most 3", replaced, most)
	}
	icebergtest.CheckMirrors(t, w, lk, "", load.RunsTable)
}

// TestMergeOnReadDeletesOnlyLiveRows: the position deletes of a
// merge-on-read commit name each row once, in the data file that holds
// it: a resource changed again loses only its current row (its first row
// was deleted by the run before), and each delete file applies to one
// data file, named by its file_path bounds.
func TestMergeOnReadDeletesOnlyLiveRows(t *testing.T) {
	ctx := t.Context()
	w, lk := folderLake(t)
	all := claims(30, 3)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, all...))
	deletedRows := func() (claims, lines string) {
		t.Helper()
		c, _ := lk.Table(ctx, "claim")
		l, _ := lk.Table(ctx, "claim_line")
		return c.CurrentSnapshot().Summary.Properties["total-position-deletes"], l.CurrentSnapshot().Summary.Properties["total-position-deletes"]
	}
	// r2 replaces two claims (their claim rows and two lines each).
	publish(t, lk, w, commit(t, w, "payer-a", "r2", nil, claim{"c00", "2020-03-01", 2}, claim{"c01", "2021-03-01", 2}))
	if c, l := deletedRows(); c != "2" || l != "4" {
		t.Errorf("after r2: %s claim rows and %s lines deleted, want 2 and 4", c, l)
	}
	// r3 replaces c00 again: only the row r2 wrote goes.
	publish(t, lk, w, commit(t, w, "payer-a", "r3", nil, claim{"c00", "2020-03-01", 1}))
	if c, l := deletedRows(); c != "3" || l != "6" {
		t.Errorf("after r3: %s claim rows and %s lines deleted, want 3 and 6", c, l)
	}
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", "fhirlake_resources")

	tbl, _ := lk.Table(ctx, "claim")
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		for _, d := range task.DeleteFiles {
			// A v2 manifest names the data file by the file_path bounds.
			id := iceberggo.PositionalDeleteSchema.Field(0).ID
			lo, hi := d.LowerBoundValues()[id], d.UpperBoundValues()[id]
			if string(lo) != task.File.FilePath() || string(hi) != task.File.FilePath() {
				t.Errorf("delete file %s applies to %s but its file_path bounds are %q and %q", d.FilePath(), task.File.FilePath(), lo, hi)
			}
		}
	}
}

// TestSharedLake: four warehouses, one source each (with the same claim
// ids), publish into one lake (S3 and a PostgreSQL catalog) at the same
// time, twice, the second time with updates, a claim that moves years and
// a delete. Each source's rows in every table are then exactly its
// warehouse's, and no other source's rows are in the lake.
func TestSharedLake(t *testing.T) {
	s3 := testserver.S3(t)
	s3.Bucket(t, "lake")
	pg := testserver.Postgres(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	ctx := t.Context()
	const n = 4
	type worker struct {
		source string
		w      *duckdb.Warehouse
		lk     *iceberg.Lake
	}
	var ws []worker
	for i := range n {
		w, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		lk, err := iceberg.Open(ctx, "s3://lake/shared", load.LakeOptions{Warehouse: w.Path(), S3Endpoint: s3.Endpoint, S3PathStyle: true, Catalog: pg.DSN})
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		ws = append(ws, worker{fmt.Sprintf("payer-%d", i), w, lk})
	}
	var claims []claim
	for i := range 20 {
		claims = append(claims, claim{fmt.Sprintf("c%02d", i), fmt.Sprintf("%d-03-01", 2020+i%4), 2})
	}
	runs := []struct {
		id      string
		deleted []string
		claims  []claim
	}{
		{"r1", nil, claims},
		{"r2", []string{"c05"}, []claim{{"c00", "2020-04-01", 3}, {"c01", "2023-04-01", 1}, {"c02", "2022-04-01", 2}}},
	}
	for _, r := range runs {
		changes := make([]*load.Changes, n)
		for i, wk := range ws {
			changes[i] = commit(t, wk.w, wk.source, r.id+"-"+wk.source, r.deleted, r.claims...)
		}
		errs := make(chan error, n)
		for i, wk := range ws {
			go func() {
				errs <- wk.lk.Publish(ctx, wk.w, load.Identity{Path: wk.w.Path(), ID: wk.w.ID()}, tables, changes[i])
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("%s: publish: %v", r.id, err)
			}
		}
		for _, wk := range ws {
			icebergtest.CheckMirrorsWhere(t, wk.w, wk.lk, s3.Dir, "data_source = '"+wk.source+"'", "claim", "claim_line")
			icebergtest.CheckMirrorsWhere(t, wk.w, wk.lk, s3.Dir, "source = '"+wk.source+"'", "fhirlake_runs", "fhirlake_resources", "fhirlake_deleted")
		}
	}
	// Nothing but the four sources: all of each is its warehouse's.
	var total int
	for _, wk := range ws {
		got := query(t, wk.w, "SELECT count(*)::VARCHAR FROM claim_line")
		k, _ := strconv.Atoi(got[0])
		total += k
	}
	tbl, err := ws[0].lk.Table(ctx, "claim_line")
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	_, recs, err := tbl.Scan().ToArrowRecords(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for rec, err := range recs {
		if err != nil {
			t.Fatal(err)
		}
		live += int(rec.NumRows())
		rec.Release()
	}
	if live != total {
		t.Errorf("claim_line: %d rows in the lake, %d in the four warehouses", live, total)
	}
	var retries int64
	for _, wk := range ws {
		retries += wk.lk.CommitRetries()
	}
	t.Logf("%d commits retried after losing a race", retries)
}

// TestConcurrentOpen: workers that start at the same time on a new
// PostgreSQL catalog database all open it (PostgreSQL lets one of them
// create the catalog's tables and fails the others, which try again).
func TestConcurrentOpen(t *testing.T) {
	pg := testserver.Postgres(t)
	root := t.TempDir()
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			lk, err := iceberg.Open(t.Context(), root, load.LakeOptions{Warehouse: filepath.Join(root, fmt.Sprint(i), "w.duckdb"), Catalog: pg.DSN})
			if err == nil {
				err = lk.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestRowGroupsAreBounded: a table's data files hold row groups of at
// most 122,880 rows (DuckDB's own row group), which bounds what the
// writer of each partition holds in memory.
func TestRowGroupsAreBounded(t *testing.T) {
	w, lk := folderLake(t)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(70_000, 1)...)) // 140,000 claim lines
	files, _ := icebergtest.Files(t, lk, "claim_line")
	var rows []int64
	for _, f := range files {
		pf, err := file.OpenParquetFile(icebergtest.LocalPath(t, "", f), false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range pf.NumRowGroups() {
			rows = append(rows, pf.RowGroup(i).NumRows())
		}
		pf.Close()
	}
	if len(rows) < 2 || slices.Max(rows) > 122_880 {
		t.Errorf("row groups of %v rows, want two or more of at most 122880", rows)
	}
}

// TestDeletesFoundInChunks: the rows a run replaces are found by reading
// a data file a few row groups at a time, at once (chunksOf): each
// replaced row is deleted, at its own position, and no other.
func TestDeletesFoundInChunks(t *testing.T) {
	for _, ids := range []int{1000, 3} {
		t.Run(fmt.Sprintf("ids in the planning filter up to %d", ids), func(t *testing.T) {
			defer iceberg.SetMaxFilterIDsForTest(ids)()
			testDeletesFoundInChunks(t)
		})
	}
}

func testDeletesFoundInChunks(t *testing.T) {
	// Row groups of 2,048 rows, the fewest the warehouse writes.
	defer iceberg.SetChunkingForTest(2048, 2)()
	w, lk := folderLake(t)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(11_000, 1)...)) // one file of 22,000 claim lines
	files, _ := icebergtest.Files(t, lk, "claim_line")
	if len(files) != 1 {
		t.Fatalf("%d files of claim lines, want 1", len(files))
	}
	pf, err := file.OpenParquetFile(icebergtest.LocalPath(t, "", files[0]), false)
	if err != nil {
		t.Fatal(err)
	}
	groups := pf.NumRowGroups()
	pf.Close()
	if groups < 10 {
		t.Fatalf("%d row groups, want 10 or more", groups)
	}
	var changed []claim
	for i := 3; i < 11_000; i += 997 { // in every other chunk or so
		changed = append(changed, claim{fmt.Sprintf("c%02d", i), "2020-03-01", 1})
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r2", nil, changed...))
	tbl, _ := lk.Table(t.Context(), "claim_line")
	if got, want := tbl.CurrentSnapshot().Summary.Properties["total-position-deletes"], strconv.Itoa(2*len(changed)); got != want {
		t.Errorf("%s claim lines deleted, want %s", got, want)
	}
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line")
}

// TestRunTooLargeToName: a run that changed more resources than it names
// (load.Changes.Keys nil) replaces the partitions it changed, one table
// at a time, with the warehouse's own files (one per partition), with no
// delete file, and leaves the files of the others.
func TestRunTooLargeToName(t *testing.T) {
	w, lk := folderLake(t)
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(40, 4)...))
	base, _ := icebergtest.Files(t, lk, "claim")
	// 2020, 2021 (c01 leaves it, c05 goes), 2022 and no year change; 2023 not.
	ch := commit(t, w, "payer-a", "r2", []string{"c05"}, claim{"c00", "2020-03-01", 1}, claim{"c01", "2022-03-01", 3}, claim{"new", "", 1})
	if ch.Keys == nil {
		t.Fatal("the run names no resources")
	}
	ch.Keys = nil
	publish(t, lk, w, ch)
	for _, name := range []string{"claim", "claim_line"} {
		if _, deletes := icebergtest.Files(t, lk, name); len(deletes) > 0 {
			t.Errorf("%s: delete files %v, want partitions rewritten", name, deletes)
		}
	}
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line", "fhirlake_resources")
	files, _ := icebergtest.Files(t, lk, "claim")
	var kept, added []string
	for _, f := range files {
		switch {
		case slices.Contains(base, f):
			kept = append(kept, f)
		case strings.Contains(f, "/data/fhirlake-"):
			added = append(added, f)
		default:
			t.Errorf("claim holds %s, not a file of the warehouse", f)
		}
	}
	if len(kept) != 1 || !strings.Contains(kept[0], "2023") || len(added) != 4 {
		t.Errorf("claim kept %v and added %v; want 2023's file kept and one file for each of the 4 partitions changed", kept, added)
	}
}

// misnumbered is a warehouse snapshot whose Parquet files carry field ids
// the lake's tables do not have, so that adding them fails.
type misnumbered struct{ *duckdb.Warehouse }

func (m misnumbered) WriteParquetParts(ctx context.Context, t load.Table, sources, vals []string, ids map[string]int, rowGroup int, dir string) ([]string, error) {
	wrong := map[string]int{}
	for k, v := range ids {
		wrong[k] = v + 1000
	}
	return m.Warehouse.WriteParquetParts(ctx, t, sources, vals, wrong, rowGroup, dir)
}

// TestFirstPublishAddsWarehouseFiles: a table's first copy is the
// warehouse's own Parquet files, one per source and year, added as they
// are (the lake reads as the warehouse); so is a later whole copy into the
// table, which replaces its rows in the same commit. When adding the
// files fails, the publish fails and leaves none of them behind.
func TestFirstPublishAddsWarehouseFiles(t *testing.T) {
	firstPublishTest(t, func() string { return t.TempDir() }, load.LakeOptions{}, "")
}

// TestFirstPublishUploadsWarehouseFiles is the same on S3: the files are
// written beside the warehouse and uploaded.
func TestFirstPublishUploadsWarehouseFiles(t *testing.T) {
	s3 := lakeBucket(t)
	n := 0
	firstPublishTest(t, func() string { n++; return fmt.Sprintf("s3://lake/first-%d", n) }, load.LakeOptions{S3PathStyle: true}, s3.Dir)
}

// firstPublishTest runs TestFirstPublishAddsWarehouseFiles on lakes at
// the locations newLake gives.
func firstPublishTest(t *testing.T, newLake func() string, opts load.LakeOptions, s3root string) {
	ctx := t.Context()
	open := func() (*duckdb.Warehouse, *iceberg.Lake) {
		dir := t.TempDir()
		w, err := duckdb.Open(ctx, filepath.Join(dir, "w.duckdb"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Close() })
		o := opts
		o.Warehouse = w.Path()
		lk, err := iceberg.Open(ctx, newLake(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lk.Close() })
		return w, lk
	}
	w, lk := open()
	// What a killed publish left waiting for its upload.
	stale := filepath.Join(filepath.Dir(w.Path()), "."+filepath.Base(w.Path())+".lake-killed")
	if err := os.MkdirAll(filepath.Join(stale, "fhirlake-x"), 0o700); err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(40, 4)...))
	icebergtest.CheckMirrors(t, w, lk, s3root, "claim", "claim_line")
	files, _ := icebergtest.Files(t, lk, "claim")
	years := map[string]bool{}
	for _, f := range files {
		if !strings.Contains(f, "/data/fhirlake-") {
			t.Errorf("claim's first copy holds %s, not a file of the warehouse", f)
		}
		years[path.Base(path.Dir(f))] = true
	}
	if len(files) != 4 || len(years) != 4 {
		t.Errorf("claim's first copy: %d files in %d folders, want one for each of its 4 years", len(files), len(years))
	}
	tbl, err := lk.Table(ctx, "claim")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	partitions := map[string]bool{}
	for _, task := range tasks {
		partitions[fmt.Sprint(task.File.Partition())] = true
	}
	if len(partitions) != 4 {
		t.Errorf("claim's files are in partitions %v, want 4 (payer-a, each year)", partitions)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(w.Path()), "."+filepath.Base(w.Path())+".lake-*")); len(left) > 0 {
		t.Errorf("folders of files waiting for their upload were left: %v", left)
	}

	// The whole copy again (a lake behind by more than one run) into a
	// table that holds rows: the rows are replaced, not added, by files
	// of the warehouse, one per partition.
	commit(t, w, "payer-a", "r2", nil, claim{"c01", "2024-03-01", 1})
	publish(t, lk, w, commit(t, w, "payer-a", "r3", nil, claim{"z", "2024-05-01", 1}))
	icebergtest.CheckMirrors(t, w, lk, s3root, "claim", "claim_line")
	again, _ := icebergtest.Files(t, lk, "claim")
	for _, f := range again {
		if slices.Contains(files, f) || !strings.Contains(f, "/data/fhirlake-") {
			t.Errorf("claim's second whole copy holds %s, not a new file of the warehouse", f)
		}
	}
	if len(again) != 5 {
		t.Errorf("claim's second whole copy: %d files, want one for each of its 5 years", len(again))
	}
	// The version index, a bookkeeping table of plain columns, too.
	icebergtest.CheckMirrors(t, w, lk, s3root, load.IndexTable)
	index, _ := icebergtest.Files(t, lk, load.IndexTable)
	for _, f := range index {
		if !strings.Contains(f, "/data/fhirlake-") {
			t.Errorf("the version index's whole copy holds %s, not a file of the warehouse", f)
		}
	}
	if len(index) != 1 {
		t.Errorf("the version index's whole copy: %d files, want one for its one source", len(index))
	}

	w2, lk2 := open()
	commit(t, w2, "payer-a", "r1", nil, claims(10, 2)...)
	err = lk2.Publish(ctx, misnumbered{w2}, load.Identity{Path: w2.Path(), ID: w2.ID()}, tables, nil)
	if err == nil {
		t.Fatal("a publish of files the table cannot read succeeded")
	}
	var left []string
	filepath.WalkDir(icebergtest.LocalPath(t, s3root, lk2.Location()), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(path, "/data/fhirlake-") {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("the failed publish left %v", left)
	}
}

// TestPartitionRewriteInUTC: on a machine in New York, the lake takes
// the warehouse's timestamps (it refused them labelled in New York's
// zone), and a run that rewrites the partition of a New Year's Eve
// evening (the next year's in UTC, where Iceberg's year transform puts
// it) writes that row again: with the year taken in the machine's zone,
// the rewrite of 2022 deleted the row and wrote 2022's rows without it.
func TestPartitionRewriteInUTC(t *testing.T) {
	if !testzone.In(t, "America/New_York") {
		return
	}
	ctx := t.Context()
	w, lk := folderLake(t)
	run := func(id string) string {
		return fmt.Sprintf(`INSERT INTO fhirlake_runs (run_id, source, scope, started_at, finished_at, status, resources, skipped_older, deleted, rejects, watermark_types, rows_per_table)
			VALUES ('%s', 'a', 'files', now(), now(), 'committed', 0, 0, 0, 0, [], MAP {})`, id)
	}
	q := `CREATE TABLE obs (data_source VARCHAR, id VARCHAR, effective TIMESTAMPTZ, v INTEGER);
		INSERT INTO obs VALUES ('a', 'o1', TIMESTAMPTZ '2021-12-31 20:30:00-05', 1),
			('a', 'o2', TIMESTAMPTZ '2021-06-01 12:00:00-04', 2), ('a', 'o3', TIMESTAMPTZ '2022-06-01 12:00:00-04', 3);
		` + run("r1")
	if err := w.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	obs := []load.Table{{Name: "obs", Resource: "Observation", Key: "id", Partition: &load.Partition{Column: "effective", Name: "effective_year"}}}
	id := load.Identity{Path: w.Path(), ID: w.ID()}
	if err := lk.Publish(ctx, w, id, obs, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Exec(ctx, "UPDATE obs SET v = 10 WHERE id IN ('o1', 'o3'); "+run("r2")); err != nil {
		t.Fatal(err)
	}
	// A run too large to name its resources names its partitions.
	ch := &load.Changes{Source: "a", RunID: "r2", Tables: map[string][]string{"obs": {"2022"}}}
	if err := lk.Publish(ctx, w, id, obs, ch); err != nil {
		t.Fatal(err)
	}
	icebergtest.CheckMirrors(t, w, lk, "", "obs")
}
