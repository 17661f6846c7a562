//go:build duckdb_arrow

package duckdb

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fhirlake/fhirlake/load"
)

// TestSnapshotReadersAtOnce: record streams of the snapshot read at the
// same time, from several goroutines, each get every row (a lake
// publishes several tables at once), and release their connections.
func TestSnapshotReadersAtOnce(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const rows = 300_000
	if err := w.Exec(t.Context(), `CREATE TABLE big AS SELECT 'a' AS data_source, range::VARCHAR AS id, range * 2 AS v FROM range(300000)`); err != nil {
		t.Fatal(err)
	}
	big := load.Table{Name: "big", Resource: "Basic", Key: "id"}
	const readers = 4
	got := make([]int64, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rr load.RecordReader
			if i%2 == 0 {
				rr, errs[i] = w.Records(t.Context(), big, "a", nil)
			} else {
				rr, errs[i] = w.TableRecords(t.Context(), "big")
			}
			if errs[i] != nil {
				return
			}
			defer rr.Release()
			for rr.Next() {
				got[i] += rr.RecordBatch().NumRows()
			}
			errs[i] = rr.Err()
		}()
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || got[i] != rows {
			t.Errorf("reader %d: %d rows, error %v; want %d", i, got[i], errs[i], rows)
		}
	}
	if n := w.db.Stats().InUse; n != 1 {
		t.Errorf("%d connections in use after the readers were released, want the warehouse's own", n)
	}
}

// TestSnapshotReadsInSlices: a table of several slices of rowids, with
// gaps where rows were deleted, is read whole, each row once, as it was
// when the reader started, while the warehouse changes it; a filter and
// its arguments apply to every slice; a table whose column named rowid
// hides DuckDB's is read in one query.
func TestSnapshotReadsInSlices(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	n := 2*sliceRows + 1000
	q := fmt.Sprintf(`CREATE TABLE big AS SELECT (CASE WHEN range %% 3 = 0 THEN 'a' ELSE 'b' END) AS data_source, range::VARCHAR AS id, range AS v FROM range(%d);
		DELETE FROM big WHERE v %% 7 = 0 OR v BETWEEN %d AND %d;
		CREATE TABLE hidden AS SELECT range AS v, 'r' || range AS rowid, 'a' AS data_source FROM range(10)`, n, sliceRows-10, sliceRows+10)
	if err := w.Exec(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	// The rows the reader must see, by their sum and count.
	want := func(where string) (count, sum int64) {
		t.Helper()
		if err := w.conn.QueryRowContext(t.Context(), "SELECT count(*), sum(v) FROM big WHERE "+where).Scan(&count, &sum); err != nil {
			t.Fatal(err)
		}
		return count, sum
	}
	read := func(rr load.RecordReader, column int) (count, sum int64) {
		t.Helper()
		defer rr.Release()
		for rr.Next() {
			b := rr.RecordBatch()
			count += b.NumRows()
			if v, ok := b.Column(column).(*array.Int64); ok {
				for _, x := range v.Int64Values() {
					sum += x
				}
			}
		}
		if err := rr.Err(); err != nil {
			t.Fatal(err)
		}
		return count, sum
	}
	wantAll, wantSum := want("true")
	rr, err := w.TableRecords(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	// Changes committed after the reader started are not its (rows of
	// its last slice deleted, rows added).
	q = fmt.Sprintf("DELETE FROM big WHERE v >= %d; INSERT INTO big SELECT 'a', 'x' || range, 1 FROM range(5000)", 2*sliceRows)
	if err := w.Exec(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	sr := rr.(*sliceReader)
	if got, sum := read(rr, 2); got != wantAll || sum != wantSum {
		t.Errorf("whole table: %d rows summing to %d, want %d and %d", got, sum, wantAll, wantSum)
	}
	if sr.opened != 3 {
		t.Errorf("%d queries, want one per slice (3)", sr.opened)
	}
	wantA, wantSumA := want("data_source = 'a'")
	rr, err = w.Records(t.Context(), load.Table{Name: "big", Key: "id"}, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, sum := read(rr, 2); got != wantA || sum != wantSumA {
		t.Errorf("source a: %d rows summing to %d, want %d and %d", got, sum, wantA, wantSumA)
	}
	ids := []string{"3", "4", "300000", "x7"}
	wantIDs, wantSumIDs := want("data_source = 'a' AND id IN ('3', '4', '300000', 'x7')")
	rr, err = w.RecordsOf(t.Context(), load.Table{Name: "big", Key: "id"}, "a", ids, 0)
	if err != nil {
		t.Fatal(err)
	}
	sr = rr.(*sliceReader)
	if got, sum := read(rr, 2); got != wantIDs || sum != wantSumIDs || got != 3 {
		t.Errorf("source a, ids %v: %d rows summing to %d, want %d and %d (three rows: 4 is of source b)", ids, got, sum, wantIDs, wantSumIDs)
	}
	if sr.opened != 3 {
		t.Errorf("ids %v: %d queries, want one per slice holding one (3)", ids, sr.opened)
	}
	// Only the slices that hold a row of the ids are read; with none, one
	// query gives the schema.
	for _, c := range []struct {
		ids     []string
		rows    int64
		queries int
	}{{[]string{"3", "x7", "x8"}, 3, 2}, {[]string{"x1"}, 1, 1}, {[]string{"nope"}, 0, 1}, {nil, 0, 1}} {
		rr, err = w.RecordsOf(t.Context(), load.Table{Name: "big", Key: "id"}, "a", c.ids, 0)
		if err != nil {
			t.Fatal(err)
		}
		sr = rr.(*sliceReader)
		if rr.Schema().NumFields() != 3 {
			t.Errorf("ids %v: schema %v, want the table's three columns", c.ids, rr.Schema())
		}
		if got, _ := read(rr, 2); got != c.rows || sr.opened != c.queries {
			t.Errorf("ids %v: %d rows in %d queries, want %d in %d", c.ids, got, sr.opened, c.rows, c.queries)
		}
	}
	// The rows a run inserted last (x0 to x4999), named with their count,
	// are read as the table's last rowids, without the list; a count
	// that does not fit, or ids that are not all of them, are read by
	// slices that hold any.
	var xs []string
	for i := range 5000 {
		xs = append(xs, fmt.Sprintf("x%d", i))
	}
	for _, c := range []struct {
		ids      []string
		appended int64
		rows     int64
		last     bool
	}{{xs, 5000, 5000, true}, {xs, 5001, 5000, false}, {xs[:10], 5000, 10, false}, {xs[:10], 0, 10, false}} {
		rr, err = w.RecordsOf(t.Context(), load.Table{Name: "big", Key: "id"}, "a", c.ids, c.appended)
		if err != nil {
			t.Fatal(err)
		}
		sr = rr.(*sliceReader)
		last := sr.args == nil // lastRows drops the list
		if got, _ := read(rr, 2); got != c.rows || last != c.last || sr.opened != 1 {
			t.Errorf("%d ids, %d appended: %d rows in %d queries, by the last rowids %v; want %d in 1, %v", len(c.ids), c.appended, got, sr.opened, last, c.rows, c.last)
		}
	}
	rr, err = w.TableRecords(t.Context(), "hidden")
	if err != nil {
		t.Fatal(err)
	}
	if got, sum := read(rr, 0); got != 10 || sum != 45 {
		t.Errorf("table with a column rowid: %d rows summing to %d, want 10 and 45", got, sum)
	}
	if n := w.db.Stats().InUse; n != 1 {
		t.Errorf("%d connections in use after the readers were released, want the warehouse's own", n)
	}
}

// TestWriteParquetRowGroups: the lake's Parquet files hold every row of
// their selection in row groups of at most DuckDB's own 122,880 rows (see
// rowGroupRows), a file and a partitioned folder alike.
func TestWriteParquetRowGroups(t *testing.T) {
	dir := t.TempDir()
	const most, rows = 122880, 3*122880 + 1000
	w := openWith(t, filepath.Join(dir, "w.duckdb"), fmt.Sprintf(`CREATE TABLE big AS SELECT 'a' AS data_source, range::VARCHAR AS id,
		DATE '2020-01-01' + (range %% 2)::INTEGER * 400 AS day FROM range(%d)`, rows))
	for _, tc := range []struct {
		name string
		t    load.Table
		dst  string
		glob string
	}{
		{"one file", load.Table{Name: "big", Resource: "Basic", Key: "id"}, filepath.Join(dir, "big.parquet"), filepath.Join(dir, "big.parquet")},
		{"partitions", load.Table{Name: "big", Resource: "Basic", Key: "id", Partition: &load.Partition{Name: "day_year", Column: "day"}},
			filepath.Join(dir, "parts"), filepath.Join(dir, "parts", "*", "*.parquet")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := w.WriteParquet(t.Context(), tc.t, "a", nil, tc.dst)
			if err != nil || n != rows {
				t.Fatalf("WriteParquet: %d rows, %v; want %d", n, err, rows)
			}
			var groups, total, largest int64
			err = w.conn.QueryRowContext(t.Context(), `SELECT count(*), sum(num_rows), max(num_rows) FROM (
				SELECT DISTINCT file_name, row_group_id, row_group_num_rows AS num_rows FROM parquet_metadata(?))`, tc.glob).Scan(&groups, &total, &largest)
			if err != nil {
				t.Fatal(err)
			}
			if total != rows || largest > most || groups < rows/most {
				t.Errorf("%d row groups of at most %d rows, %d rows in all; want at least %d groups of at most %d, %d rows",
					groups, largest, total, rows/most, most, rows)
			}
		})
	}
}

// TestWriteParquetAtOnce: Parquet copies written from several goroutines
// at once each hold their rows, and return their connections; the
// warehouse's own connection keeps DuckDB's insertion order (the copies
// drop it on their connections alone), also while a copy runs.
func TestWriteParquetAtOnce(t *testing.T) {
	dir := t.TempDir()
	const tables, rows = 4, 200_000
	var qs []string
	for i := range tables {
		qs = append(qs, fmt.Sprintf(`CREATE TABLE t%d AS SELECT 'a' AS data_source, range::VARCHAR AS id, range %% %d AS v FROM range(%d)`, i, i+2, rows+i))
	}
	w := openWith(t, filepath.Join(dir, "w.duckdb"), qs...)
	ordered := func() bool {
		t.Helper()
		var v bool
		if err := w.conn.QueryRowContext(t.Context(), "SELECT current_setting('preserve_insertion_order')").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	written := make([]int64, tables)
	errs := make([]error, tables)
	var wg sync.WaitGroup
	for i := range tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tb := load.Table{Name: fmt.Sprintf("t%d", i), Resource: "Basic", Key: "id"}
			written[i], errs[i] = w.WriteParquet(t.Context(), tb, "a", nil, filepath.Join(dir, tb.Name+".parquet"))
		}()
	}
	orderedDuring := ordered()
	wg.Wait()
	for i := range tables {
		var n, sum int64
		if errs[i] == nil {
			errs[i] = w.conn.QueryRowContext(t.Context(), "SELECT count(*), sum(v) FROM read_parquet(?)",
				filepath.Join(dir, fmt.Sprintf("t%d.parquet", i))).Scan(&n, &sum)
		}
		var wantSum int64
		if err := w.conn.QueryRowContext(t.Context(), fmt.Sprintf("SELECT sum(v) FROM t%d", i)).Scan(&wantSum); err != nil {
			t.Fatal(err)
		}
		if errs[i] != nil || written[i] != rows+int64(i) || n != written[i] || sum != wantSum {
			t.Errorf("t%d: %d rows written, %d read back, sum %d, error %v; want %d rows, sum %d", i, written[i], n, sum, errs[i], rows+i, wantSum)
		}
	}
	if !orderedDuring || !ordered() {
		t.Errorf("the warehouse's connection lost its insertion order (during the copies: %v, after: %v)", orderedDuring, ordered())
	}
	if n := w.db.Stats().InUse; n != 1 {
		t.Errorf("%d connections in use after the copies, want the warehouse's own", n)
	}
}

// TestWriteParquetParts: the rows of the sources asked for, in one file per
// source and UTC year of the partition column (a timestamp just before New
// Year in New York is the next year's in UTC) and one for the rows without
// a value, every column under its field id; a column without an id is
// refused; no rows, no files; split by source alone, one file per source.
func TestWriteParquetParts(t *testing.T) {
	dir := t.TempDir()
	w := openWith(t, filepath.Join(dir, "w.duckdb"))
	q := `SET GLOBAL TimeZone = 'America/New_York';
		CREATE TABLE obs (data_source VARCHAR NOT NULL, id VARCHAR, effective TIMESTAMPTZ, v DECIMAL(9,2));
		INSERT INTO obs VALUES
			('a', 'o1', TIMESTAMPTZ '2021-12-31 20:30:00-05', 1.5),
			('a', 'o2', TIMESTAMPTZ '2021-06-01 12:00:00-04', 2.5),
			('a', 'o3', NULL, 3.5),
			('b', 'o4', TIMESTAMPTZ '2021-12-31 20:30:00-05', 4.5),
			('c', 'o5', TIMESTAMPTZ '2020-01-01 00:00:00+00', 5.5)`
	if err := w.Exec(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	defer w.Exec(t.Context(), "SET GLOBAL TimeZone = 'UTC'")
	tb := load.Table{Name: "obs", Resource: "Observation", Key: "id", Partition: &load.Partition{Column: "effective", Name: "effective_year"}}
	ids := map[string]int{"data_source": 1, "id": 2, "effective": 3, "v": 4}
	out := filepath.Join(dir, "parts")
	files, err := w.WriteParquetParts(t.Context(), tb, []string{"a", "b"}, nil, ids, 0, out)
	if err != nil {
		t.Fatal(err)
	}
	// Each file: its rows' sources and UTC years, and its field ids.
	got := map[string]string{}
	for _, f := range files {
		if !strings.HasPrefix(f, out+string(filepath.Separator)) {
			t.Errorf("file %s outside %s", f, out)
		}
		var rows, fieldIDs string
		err := w.conn.QueryRowContext(t.Context(), `SELECT
			(SELECT string_agg(id || '@' || data_source || ':' || coalesce(year(timezone('UTC', effective))::VARCHAR, 'none'), ' ' ORDER BY id) FROM read_parquet(?1)),
			(SELECT string_agg(name || '=' || field_id, ' ' ORDER BY field_id) FROM parquet_schema(?1) WHERE field_id IS NOT NULL)`, f).Scan(&rows, &fieldIDs)
		if err != nil {
			t.Fatal(err)
		}
		if fieldIDs != "data_source=1 id=2 effective=3 v=4" {
			t.Errorf("%s: field ids %q", f, fieldIDs)
		}
		got[rows] = f
	}
	want := []string{"o1@a:2022", "o2@a:2021", "o3@a:none", "o4@b:2022"}
	if len(got) != len(want) {
		t.Errorf("files hold %q; want one file each of %q", slices.Collect(maps.Keys(got)), want)
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("no file holds exactly %q (files hold %q)", w, slices.Collect(maps.Keys(got)))
		}
	}
	if _, err := w.WriteParquetParts(t.Context(), tb, []string{"a"}, nil, map[string]int{"data_source": 1, "id": 2, "effective": 3}, 0, filepath.Join(dir, "partial")); err == nil || !strings.Contains(err.Error(), "no field id for column v") {
		t.Errorf("a column without a field id: %v, want it named", err)
	}
	none, err := w.WriteParquetParts(t.Context(), tb, []string{"z"}, nil, ids, 0, filepath.Join(dir, "none"))
	if err != nil || len(none) != 0 {
		t.Errorf("a source without rows: files %v, error %v; want none", none, err)
	}
	// By source alone (a bookkeeping table): one file per source asked for.
	bySource, err := w.WriteSourceParts(t.Context(), "obs", "data_source", []string{"a", "c"}, ids, 0, filepath.Join(dir, "sources"))
	if err != nil {
		t.Fatal(err)
	}
	var gotSources []string
	for _, f := range bySource {
		var rows string
		if err := w.conn.QueryRowContext(t.Context(), `SELECT string_agg(id || '@' || data_source, ' ' ORDER BY id) FROM read_parquet(?)`, f).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		gotSources = append(gotSources, rows)
	}
	slices.Sort(gotSources)
	if want := []string{"o1@a o2@a o3@a", "o5@c"}; !slices.Equal(gotSources, want) {
		t.Errorf("files by source hold %q, want %q", gotSources, want)
	}
}

// TestWriteRunParts: the rows a run appended, of the resources it names,
// are written as WriteParquetParts writes (a file per source and year,
// with field ids), whether they are the table's last rowids (found by
// their count) or not (a count that does not fit, rows of other sources
// appended after them, a column named rowid hiding DuckDB's: found by
// the list of ids); rows of the same ids in another source stay out, and
// nothing stays behind on the connection.
func TestWriteRunParts(t *testing.T) {
	dir := t.TempDir()
	w := openWith(t, filepath.Join(dir, "w.duckdb"))
	q := `CREATE TABLE obs (data_source VARCHAR NOT NULL, id VARCHAR, effective DATE, v INTEGER);
		INSERT INTO obs SELECT 'a', 'o' || range, DATE '2020-01-01' + INTERVAL (range) DAY, range FROM range(1000);
		INSERT INTO obs SELECT 'b', 'o' || range, DATE '2020-01-01', range FROM range(10);
		DELETE FROM obs WHERE data_source = 'a' AND id IN ('o1', 'o2', 'o500', 'o999');
		INSERT INTO obs VALUES ('a', 'o1', DATE '2019-06-01', -1), ('a', 'o2', NULL, -2), ('a', 'o500', DATE '2022-02-02', -3),
			('a', 'o500', DATE '2022-02-03', -4), ('a', 'o999', DATE '2019-12-31', -5);
		CREATE TABLE hidden AS SELECT 'a' AS data_source, 'h' || range AS id, range AS rowid FROM range(10)`
	if err := w.Exec(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	tb := load.Table{Name: "obs", Resource: "Observation", Key: "id", Partition: &load.Partition{Column: "effective", Name: "effective_year"}}
	fieldIDs := map[string]int{"data_source": 1, "id": 2, "effective": 3, "v": 4}
	ids := []string{"o1", "o2", "o500", "o999"}
	// Each file's rows, sorted, one string per file; the field ids checked.
	written := func(files []string, ids map[string]int) []string {
		t.Helper()
		var out []string
		for _, f := range files {
			var rows, got string
			err := w.conn.QueryRowContext(t.Context(), `SELECT
				(SELECT string_agg(concat_ws(':', data_source, id, v), ' ' ORDER BY id, v) FROM read_parquet(?1)),
				(SELECT string_agg(name || '=' || field_id, ' ' ORDER BY field_id) FROM parquet_schema(?1) WHERE field_id IS NOT NULL)`, f).Scan(&rows, &got)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for name, id := range ids {
				want = append(want, fmt.Sprintf("%d %s", id, name))
			}
			slices.Sort(want)
			var gotIDs []string
			for _, field := range strings.Fields(got) {
				name, id, _ := strings.Cut(field, "=")
				gotIDs = append(gotIDs, id+" "+name)
			}
			slices.Sort(gotIDs)
			if !slices.Equal(gotIDs, want) {
				t.Errorf("%s: field ids %q, want %q", f, gotIDs, want)
			}
			out = append(out, rows)
		}
		slices.Sort(out)
		return out
	}
	run := []string{"a:o1:-1", "a:o2:-2", "a:o500:-4 a:o500:-3", "a:o999:-5"} // 2019, none, 2022, 2019
	want := []string{"a:o1:-1 a:o999:-5", "a:o2:-2", "a:o500:-4 a:o500:-3"}
	for i, c := range []struct {
		name     string
		appended int64
	}{{"the last rows", 5}, {"a count that does not fit", 6}, {"no count", 0}} {
		files, err := w.WriteRunParts(t.Context(), tb, "a", ids, c.appended, fieldIDs, 0, filepath.Join(dir, fmt.Sprintf("run%d", i)))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := written(files, fieldIDs); !slices.Equal(got, want) {
			t.Errorf("%s: files hold %q, want %q (the run's rows %q by year)", c.name, got, want, run)
		}
	}
	// Rows of another source appended after the run's.
	if err := w.Exec(t.Context(), `INSERT INTO obs VALUES ('b', 'o1', DATE '2019-06-01', 100)`); err != nil {
		t.Fatal(err)
	}
	files, err := w.WriteRunParts(t.Context(), tb, "a", ids, 5, fieldIDs, 0, filepath.Join(dir, "after"))
	if err != nil {
		t.Fatal(err)
	}
	if got := written(files, fieldIDs); !slices.Equal(got, want) {
		t.Errorf("with rows appended after the run's: files hold %q, want %q", got, want)
	}
	hidden := load.Table{Name: "hidden", Resource: "Basic", Key: "id"}
	files, err = w.WriteRunParts(t.Context(), hidden, "a", []string{"h8", "h9"}, 2, map[string]int{"data_source": 1, "id": 2, "rowid": 3}, 0, filepath.Join(dir, "hidden"))
	if err != nil {
		t.Fatal(err)
	}
	var rows string
	if len(files) == 1 {
		w.conn.QueryRowContext(t.Context(), `SELECT string_agg(id || '=' || rowid, ' ' ORDER BY id) FROM read_parquet(?)`, files[0]).Scan(&rows)
	}
	if rows != "h8=8 h9=9" {
		t.Errorf("a table with a column rowid: files %v hold %q, want one holding h8=8 h9=9", files, rows)
	}
	none, err := w.WriteRunParts(t.Context(), tb, "a", nil, 0, fieldIDs, 0, filepath.Join(dir, "none"))
	if err != nil || len(none) != 0 {
		t.Errorf("no ids: files %v, error %v; want none", none, err)
	}
	var temps int
	if err := w.conn.QueryRowContext(t.Context(), `SELECT count(*) FROM duckdb_tables() WHERE temporary`).Scan(&temps); err != nil {
		t.Fatal(err)
	}
	if temps != 0 || w.db.Stats().InUse != 1 {
		t.Errorf("%d temporary tables and %d connections in use after the writes, want none but the warehouse's own", temps, w.db.Stats().InUse)
	}
}

// TestPartitionYearIsUTC: a row's partition is the year of its date, or
// of its timestamp in UTC, in whatever time zone the machine is (DuckDB
// takes the machine's as the session's): the New Year's Eve evening in
// New York and the New Year's morning in Tokyo are both in the UTC year
// of their instant.
func TestPartitionYearIsUTC(t *testing.T) {
	w := openWith(t, filepath.Join(t.TempDir(), "w.duckdb"), `CREATE TABLE x (d DATE, ts TIMESTAMPTZ)`,
		`INSERT INTO x VALUES
			(DATE '2021-01-01', TIMESTAMPTZ '2021-12-31 20:30:00-05'),
			(DATE '2020-12-31', TIMESTAMPTZ '2021-01-01 08:00:00+09'),
			(NULL, NULL)`)
	for _, zone := range []string{"UTC", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Pago_Pago"} {
		if err := w.Exec(t.Context(), "SET GLOBAL TimeZone = "+sqlString(zone)); err != nil {
			t.Fatal(err)
		}
		var d, ts string
		q := fmt.Sprintf("SELECT string_agg(%s, ',' ORDER BY rowid), string_agg(%s, ',' ORDER BY rowid) FROM x",
			partitionExpr(&load.Partition{Column: "d"}), partitionExpr(&load.Partition{Column: "ts"}))
		if err := w.conn.QueryRowContext(t.Context(), q).Scan(&d, &ts); err != nil {
			t.Fatal(err)
		}
		if want := "2021,2020," + load.NullPartition; d != want {
			t.Errorf("%s: dates in partitions %s, want %s", zone, d, want)
		}
		if want := "2022,2020," + load.NullPartition; ts != want {
			t.Errorf("%s: timestamps in partitions %s, want %s", zone, ts, want)
		}
	}
}

// TestLastRowid: the last rowid a row may have, taken from the catalog's
// row count, is never below the largest rowid of a live row, after deletes
// at the end and in the middle, an append, and a checkpoint and a reopen
// (DuckDB's count includes deleted rows; were it to count live rows only,
// whole-table reads in slices would miss the last rows).
func TestLastRowid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	w := openWith(t, path, `CREATE TABLE t AS SELECT range AS v FROM range(10000)`)
	check := func(w *Warehouse, when string) {
		t.Helper()
		conn, err := w.db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		top, err := lastRowid(t.Context(), conn, "t")
		if err != nil {
			t.Fatal(err)
		}
		var max int64
		if err := conn.QueryRowContext(t.Context(), "SELECT max(rowid) FROM t").Scan(&max); err != nil {
			t.Fatal(err)
		}
		if top < max {
			t.Errorf("%s: last rowid %d, below the largest live row's %d", when, top, max)
		}
	}
	check(w, "a new table")
	for _, q := range []string{"DELETE FROM t WHERE v >= 9000 OR v % 7 = 0", "INSERT INTO t SELECT range FROM range(500)", "DELETE FROM t WHERE v < 100", "CHECKPOINT"} {
		if err := w.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		check(w, "after "+q)
	}
	w.Close()
	w = openWith(t, path)
	check(w, "reopened")
	var n int64
	if err := w.conn.QueryRowContext(t.Context(), "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	rr, err := w.TableRecords(t.Context(), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	var got int64
	for rr.Next() {
		got += rr.RecordBatch().NumRows()
	}
	if err := rr.Err(); err != nil || got != n {
		t.Errorf("whole table read: %d rows, error %v; want %d", got, err, n)
	}
}

// TestTableSchemaAndColumns: a table's columns are its own, in order, not
// those of a temporary table of the same name, even in a warehouse whose
// file name needs quoting; the schema TableSchema gives is the one its
// readers give; a missing table is an error.
func TestTableSchemaAndColumns(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), `my "ware".house.duckdb`))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	q := `CREATE TABLE "odd name" (data_source VARCHAR, id VARCHAR, amount DECIMAL(12, 2), updated TIMESTAMPTZ, codes VARCHAR[], rowid VARCHAR);
		INSERT INTO "odd name" VALUES ('a', '1', 1.25, '2025-01-02 03:04:05+00', ['x'], 'r1');
		CREATE TEMP TABLE "odd name" (other INTEGER)`
	if err := w.Exec(t.Context(), q); err != nil {
		t.Fatal(err)
	}
	cols, err := tableColumns(t.Context(), w.conn, "odd name")
	if want := []string{"data_source", "id", "amount", "updated", "codes", "rowid"}; err != nil || !slices.Equal(cols, want) {
		t.Errorf("columns %v, %v; want %v", cols, err, want)
	}
	if hidden, err := hidesRowid(t.Context(), w.conn, "odd name"); err != nil || !hidden {
		t.Errorf("hidesRowid: %v, %v; want true", hidden, err)
	}
	sc, err := w.TableSchema(t.Context(), "odd name")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := w.Records(t.Context(), load.Table{Name: "odd name", Key: "id"}, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if !sc.Equal(rr.Schema()) || sc.NumFields() != 6 {
		t.Errorf("TableSchema %v, want the readers' %v", sc, rr.Schema())
	}
	if _, err := tableColumns(t.Context(), w.conn, "missing"); err == nil {
		t.Error("columns of a missing table: no error")
	}
	if _, err := w.TableSchema(t.Context(), "missing"); err == nil {
		t.Error("schema of a missing table: no error")
	}
}
