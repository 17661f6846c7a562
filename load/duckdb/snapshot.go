//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/fhirlake/fhirlake/load"
)

// The Parquet writer of the lakes is DuckDB's own COPY ... (FORMAT parquet,
// COMPRESSION zstd), chosen by measurement: BenchmarkLakeWriters
// (lake_bench_test.go) on 3,000,000 eob_item-like rows (VARCHAR ids and
// codes, 3 DECIMAL, 2 DATE, TIMESTAMPTZ, INTEGER), 2-core shared machine,
// DuckDB v1.5.x, arrow-go v18.8.0, -benchtime 3x, two runs (the machine is
// noisy):
//
//	writer                                 rows/s (run 1 / 2)    file MB
//	DuckDB COPY, one file                  1,097,501 / 934,791    14.3
//	DuckDB COPY, one COPY per year           327,811 / 906,051    27.4
//	WriteLake, COPY PARTITION_BY + renames         - / 620,860    33.9 (sorted by key)
//	arrow-go pqarrow via duckdb Arrow        195,344 / 374,983    23.3
//	parquet-go via duckdb Arrow + Go structs   838,294 (2x)       28.6
//
// COPY keeps the rows inside DuckDB and compresses on every core; pqarrow
// must pull each row through the Arrow C interface and compresses on one
// goroutine, is 2.5-5x slower, and imports arrow/flight and so grpc.
// parquet-go (lake_bench_parquetgo_test.go) comes closer, at about 80% of
// COPY's rows/s, but writes files twice as large (no per-column tuning)
// and needs a hand-written struct per table, where COPY takes any view's
// table as it is. All read back as DECIMAL, DATE and TIMESTAMPTZ.
// Partitioned tables are written with one COPY ... PARTITION_BY pass (not
// one COPY per partition).

// rowGroupRows is the Parquet row group size: DuckDB's own row group,
// which its COPY writes on every core at once. A full load of a 1 GB export
// wrote its Hive lake in 1.48-1.94 s against 1.82-2.39 s with four of
// DuckDB's row groups per Parquet one (three alternating runs each), and
// 1.8% more bytes (16.5 against 16.2 MB); copying eob_item_adjudication
// (1.7 million rows) alone, 0.29 s against 0.56 s, on a copy of either
// warehouse. A row group is still a few MB for the large tables, and
// readers that split work by row group get more of them.
const rowGroupRows = 122880

var _ load.Snapshot = (*Warehouse)(nil)

// TableSources lists the sources with rows in table.
func (w *Warehouse) TableSources(ctx context.Context, table string) ([]string, error) {
	out, err := w.queryStrings(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM %s ORDER BY 1", ident(load.DataSource), ident(table)))
	if err != nil {
		return nil, fmt.Errorf("sources of %s: %w", table, err)
	}
	return out, nil
}

// selection is the condition on the rows of t of sources in partitions
// vals (every partition when vals is nil). DuckDB takes an IN of one
// value as the equality, and skips row groups by it as well.
func selection(t load.Table, sources, vals []string) (string, error) {
	where := fmt.Sprintf("%s IN (%s)", ident(load.DataSource), sqlStrings(sources))
	if vals != nil {
		if t.Partition == nil {
			return "", fmt.Errorf("table %s has no partitions", t.Name)
		}
		list := sqlStrings(vals)
		if len(vals) == 0 {
			list = "NULL" // no partition: no row
		}
		where += fmt.Sprintf(" AND %s IN (%s)", partitionExpr(t.Partition), list)
	}
	return where, nil
}

// Records streams the rows of t of source in partitions vals through DuckDB's Arrow interface.
func (w *Warehouse) Records(ctx context.Context, t load.Table, source string, vals []string) (load.RecordReader, error) {
	where, err := selection(t, []string{source}, vals)
	if err != nil {
		return nil, err
	}
	rr, err := w.rowsOf(ctx, t.Name, where, inSlices)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return rr, nil
}

// RecordsOf streams the rows of t of source of the resources ids, a
// slice of rowids at a time, only the slices that hold any: the rows a
// run loaded were appended, so they are in the last few slices. When the
// run's appended rows are the table's last rowids and all of them are of
// ids (lastRows), those are read, without the list; otherwise one query
// finds the slices that hold any. (Binding the list again for every
// slice of a large table cost more than the slices saved: a 1%
// incremental run of a 10 GB export took 17-20 s of CPU against 12; in
// one query, a 10% run held about 1.7 million rows of
// eob_item_adjudication at once.)
func (w *Warehouse) RecordsOf(ctx context.Context, t load.Table, source string, ids []string, appended int64) (load.RecordReader, error) {
	where := fmt.Sprintf("%s = $1 AND %s IN (SELECT unnest($2::VARCHAR[]))", ident(load.DataSource), ident(t.Key))
	rr, err := w.read(ctx, t.Name, where, inMatchingSlices, appended, source, ids)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", t.Name, err)
	}
	return rr, nil
}

// WriteParquet writes the rows of t of source in partitions vals with
// COPY: one file dst, or for a partitioned table one PARTITION_BY pass
// into the folder dst.
func (w *Warehouse) WriteParquet(ctx context.Context, t load.Table, source string, vals []string, dst string) (int64, error) {
	where, err := selection(t, []string{source}, vals)
	if err != nil {
		return 0, err
	}
	// No ORDER BY: no reader needs the rows sorted, and sorting cost a
	// fifth of the lake's time and held the table in memory.
	q := "SELECT * FROM " + ident(t.Name) + " WHERE " + where
	if t.Partition == nil {
		return w.copyTo(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", q, sqlString(dst), rowGroupRows))
	}
	p := t.Partition
	return w.copyTo(ctx, fmt.Sprintf(`COPY (SELECT *, %s AS %s FROM (%s)) TO %s
		(FORMAT parquet, PARTITION_BY (%s), FILENAME_PATTERN 'data', COMPRESSION zstd, ROW_GROUP_SIZE %d)`,
		partitionExpr(p), ident(p.Name), q, sqlString(dst), ident(p.Name), rowGroupRows))
}

var _ load.PartFilesWriter = (*Warehouse)(nil)

// WriteParquetParts writes the rows of t of sources with one COPY ...
// PARTITION_BY pass into folders under dir, one file each (see
// load.PartFilesWriter), by the year in UTC (utcYear).
func (w *Warehouse) WriteParquetParts(ctx context.Context, t load.Table, sources, vals []string, ids map[string]int, rowGroup int, dir string) ([]string, error) {
	if len(sources) == 0 || vals != nil && len(vals) == 0 {
		return nil, nil
	}
	where, err := selection(t, sources, vals)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	cols, err := tableColumns(ctx, w.conn, t.Name)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	return w.writeParts(ctx, w.copyConn, t.Name, cols, load.DataSource, t.Partition, where, ids, rowGroup, dir)
}

// WriteRunParts writes the rows RecordsOf would stream (of t of source,
// of the resources ids, the last run's appended rows) as
// WriteParquetParts does (see load.PartFilesWriter). The run deleted the
// older rows of those resources, so theirs are the only rows of ids, and
// the last appended rowids of the table: the COPY looks for them there
// first, where it reads the key column of those rows alone, and in the
// whole table when it finds fewer. (DuckDB skips no row group by a bound
// on rowid, but reads a vector's other columns only when some of its
// rowids pass.)
func (w *Warehouse) WriteRunParts(ctx context.Context, t load.Table, source string, ids []string, appended int64, fieldIDs map[string]int, rowGroup int, dir string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	// The transaction reads; its rollback also drops the list of ids.
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if _, err := conn.ExecContext(ctx, "CREATE TEMP TABLE fhirlake_run_ids AS SELECT unnest($1::VARCHAR[]) AS id", ids); err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	of := fmt.Sprintf("%s = %s AND %s IN (SELECT id FROM fhirlake_run_ids)", ident(load.DataSource), sqlString(source), ident(t.Key))
	var written int64
	exec := func(ctx context.Context, q string) error {
		return outOfMemory(unordered(ctx, conn, func() error {
			res, err := conn.ExecContext(ctx, q)
			if err != nil {
				return err
			}
			written, err = res.RowsAffected()
			return err
		}))
	}
	cols, err := tableColumns(ctx, conn, t.Name)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", t.Name, err)
	}
	if hidden := slices.Contains(cols, "rowid"); !hidden && appended > 0 {
		top, err := lastRowid(ctx, conn, t.Name)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", t.Name, err)
		}
		if from := top - appended + 1; from > 0 {
			files, err := w.writeParts(ctx, exec, t.Name, cols, load.DataSource, t.Partition, fmt.Sprintf("rowid >= %d AND %s", from, of), fieldIDs, rowGroup, dir)
			if err != nil || written == appended {
				return files, err
			}
			if err := os.RemoveAll(dir); err != nil {
				return nil, fmt.Errorf("write %s: %w", t.Name, err)
			}
		}
	}
	return w.writeParts(ctx, exec, t.Name, cols, load.DataSource, t.Partition, of, fieldIDs, rowGroup, dir)
}

// copyConn runs the COPY q on a connection of its own (copyTo).
func (w *Warehouse) copyConn(ctx context.Context, q string) error {
	_, err := w.copyTo(ctx, q)
	return err
}

// WriteSourceParts writes the rows of table whose column is one of
// sources as WriteParquetParts does, one file per source (see
// load.PartFilesWriter).
func (w *Warehouse) WriteSourceParts(ctx context.Context, table, column string, sources []string, ids map[string]int, rowGroup int, dir string) ([]string, error) {
	if len(sources) == 0 {
		return nil, nil
	}
	cols, err := tableColumns(ctx, w.conn, table)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", table, err)
	}
	where := fmt.Sprintf("%s IN (%s)", ident(column), sqlStrings(sources))
	return w.writeParts(ctx, w.copyConn, table, cols, column, nil, where, ids, rowGroup, dir)
}

// writeParts writes the rows of table (whose columns are cols) that
// where selects with one COPY ... PARTITION_BY pass (run by exec) into
// folders under dir, one file per value of the column source and, with
// p, UTC year of its column, every column under its field id in ids (a
// list's elements too).
func (w *Warehouse) writeParts(ctx context.Context, exec func(context.Context, string) error, table string, cols []string, source string, p *load.Partition, where string, ids map[string]int, rowGroup int, dir string) ([]string, error) {
	if rowGroup <= 0 {
		rowGroup = rowGroupRows
	}
	fields := make([]string, len(cols))
	for i, c := range cols {
		id, ok := ids[c]
		if !ok {
			return nil, fmt.Errorf("write %s: no field id for column %s", table, c)
		}
		fields[i] = fmt.Sprintf("%s: %d", ident(c), id)
		if elem, ok := ids[c+load.ElementID]; ok {
			fields[i] = fmt.Sprintf("%s: {__duckdb_field_id: %d, element: %d}", ident(c), id, elem)
		}
	}
	// DuckDB leaves a PARTITION_BY column out of the files: the files are
	// split by copies of the source and the year, named unlike any column.
	unused := func(name string) string {
		for slices.Contains(cols, name) {
			name += "_"
		}
		return name
	}
	partSource := unused("fhirlake_part_source")
	parts := []string{ident(partSource)}
	sel := fmt.Sprintf("SELECT *, %s AS %s", ident(source), ident(partSource))
	if p != nil {
		partYear := unused("fhirlake_part_year")
		parts = append(parts, ident(partYear))
		sel += fmt.Sprintf(", %s AS %s", utcYear(p.Column), ident(partYear))
	}
	q := fmt.Sprintf(`COPY (%s FROM %s WHERE %s) TO %s
		(FORMAT parquet, PARTITION_BY (%s), COMPRESSION zstd, ROW_GROUP_SIZE %d, FIELD_IDS {%s})`,
		sel, ident(table), where, sqlString(dir),
		strings.Join(parts, ", "), rowGroup, strings.Join(fields, ", "))
	if err := exec(ctx, q); err != nil {
		return nil, fmt.Errorf("write %s: %w", table, err)
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".parquet") {
			files = append(files, path)
		}
		if errors.Is(err, fs.ErrNotExist) && path == dir {
			return nil // no rows: DuckDB made no folder
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", table, err)
	}
	return files, nil
}

// WriteTableParquet writes a whole table to the file dst.
func (w *Warehouse) WriteTableParquet(ctx context.Context, table, dst string) (int64, error) {
	return w.copyTo(ctx, fmt.Sprintf("COPY (SELECT * FROM %s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)",
		ident(table), sqlString(dst), rowGroupRows))
}

// SourceRecords streams the rows of table whose column is one of sources.
func (w *Warehouse) SourceRecords(ctx context.Context, table, column string, sources []string) (load.RecordReader, error) {
	rr, err := w.rowsOf(ctx, table, ident(column)+" IN (SELECT unnest($1::VARCHAR[]))", inSlices, sources)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return rr, nil
}

// RunIndex streams the version index rows the run runID of source wrote,
// as RecordsOf does: the run appended them, so with appended they are
// its last rows, read without looking at the others. (Finding them by
// their run id scanned all 2.9 million rows of a 10 GB export's index:
// reading a 1% run's versions took 0.24-0.26 s against 0.02-0.12 s,
// three alternating runs each.)
func (w *Warehouse) RunIndex(ctx context.Context, source, runID string, appended int64) (load.RecordReader, error) {
	rr, err := w.read(ctx, load.IndexTable, "source = $1 AND run_id = $2", inMatchingSlices, appended, source, runID)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", load.IndexTable, err)
	}
	return rr, nil
}

// TableRecords streams a whole table through DuckDB's Arrow interface.
func (w *Warehouse) TableRecords(ctx context.Context, table string) (load.RecordReader, error) {
	rr, err := w.rowsOf(ctx, table, "true", inSlices)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return rr, nil
}

// copyTo runs a COPY on a connection of its own, so that a lake may
// write several tables at once (each with the committed rows), and
// returns the rows it wrote.
func (w *Warehouse) copyTo(ctx context.Context, q string) (int64, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var n int64
	err = unordered(ctx, conn, func() error {
		res, err := conn.ExecContext(ctx, q)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, outOfMemory(err)
}

// TableDefs maps each table of the warehouse to its CREATE statement.
func (w *Warehouse) TableDefs(ctx context.Context) (map[string]string, error) {
	rows, err := w.conn.QueryContext(ctx, `SELECT table_name, sql FROM duckdb_tables()
		WHERE NOT temporary AND schema_name = 'main' AND database_name = current_database()`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	defs := map[string]string{}
	for rows.Next() {
		var name, sql string
		if err := rows.Scan(&name, &sql); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		defs[name] = sql
	}
	return defs, rows.Err()
}

// Views are the warehouse's CREATE VIEW statements, in creation order.
func (w *Warehouse) Views(ctx context.Context) ([]string, error) {
	return w.queryStrings(ctx, `SELECT sql FROM duckdb_views()
		WHERE NOT internal AND NOT temporary AND schema_name = 'main' AND database_name = current_database()
		ORDER BY view_oid`)
}

// Sources lists the sources of the committed runs.
func (w *Warehouse) Sources(ctx context.Context) ([]string, error) {
	return w.queryStrings(ctx, "SELECT DISTINCT source FROM fhirlake_runs WHERE status = 'committed' ORDER BY source")
}

// SourceRunIDs lists the ids of the committed runs of source.
func (w *Warehouse) SourceRunIDs(ctx context.Context, source string) ([]string, error) {
	return w.queryStrings(ctx, "SELECT run_id FROM fhirlake_runs WHERE status = 'committed' AND source = ? ORDER BY run_id", source)
}

// RunIDs lists the ids of the committed runs.
func (w *Warehouse) RunIDs(ctx context.Context) ([]string, error) {
	return w.queryStrings(ctx, "SELECT run_id FROM fhirlake_runs WHERE status = 'committed' ORDER BY run_id")
}

// sliceRows is how many rowids one query of rowsOf covers: two of
// DuckDB's row groups. duckdb-go runs a query to its end before it hands
// over the first batch, so one query of a whole table held all its rows:
// reading eob_item_adjudication of a 10 GB export (16.7 million rows)
// took 2.5 GB of RSS and 5.5 s before the first batch, and a full load of
// that export with an Iceberg lake peaked at 4.9 GB. A query per slice of
// rowids (which DuckDB's scan skips to) holds one slice.
const sliceRows = 2 * 122880

// How rowsOf reads.
type reading int

const (
	inOneQuery       reading = iota
	inSlices                 // a slice of rowids at a time
	inMatchingSlices         // a slice at a time, only those with rows that match
)

// rowsOf streams the rows of table that match where (SQL on its columns,
// with args), a slice of rowids at a time or in one query, from a
// connection of its own that the reader closes when released: the
// Snapshot's readers are safe for concurrent use, so that a lake may read
// several tables at once (the connection of the warehouse runs one query
// at a time). Every slice is read in one transaction, so the reader sees
// the committed state as it was when it started.
func (w *Warehouse) rowsOf(ctx context.Context, table, where string, how reading, args ...any) (load.RecordReader, error) {
	return w.read(ctx, table, where, how, 0, args...)
}

// read is rowsOf; with inMatchingSlices, appended is how many rows the
// last run inserted into table (RecordsOf).
func (w *Warehouse) read(ctx context.Context, table, where string, how reading, appended int64, args ...any) (load.RecordReader, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	r := &sliceReader{ctx: ctx, conn: conn, args: args, appended: appended,
		q: fmt.Sprintf("SELECT * FROM %s WHERE (%s)", ident(table), where)}
	if err := r.start(ctx, table, where, how); err != nil {
		r.Release()
		return nil, outOfMemory(err)
	}
	return r, nil
}

// sliceReader reads the rows of a query slice by slice of rowids.
type sliceReader struct {
	ctx  context.Context
	conn *sql.Conn
	ar   *duckdb.Arrow
	q    string // the query, without its bounds on rowid
	args []any
	// todo holds the first rowids of the slices still to read. Without
	// slices (a table with a column named rowid, which hides DuckDB's)
	// the one query reads everything.
	todo     []int64
	sliced   bool
	appended int64 // see read
	opened   int   // queries run
	cur      array.RecordReader
	schema   *arrow.Schema
	err      error
	once     sync.Once
}

// start opens the transaction, finds the slices to read when it reads in
// slices, and opens the first (which gives the schema, even of no rows).
func (r *sliceReader) start(ctx context.Context, table, where string, how reading) error {
	if _, err := r.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	hidden, err := hidesRowid(ctx, r.conn, table)
	if err != nil {
		return err
	}
	r.sliced = how != inOneQuery && !hidden
	tail := false // reading the last rows (lastRows)
	if r.sliced && how == inMatchingSlices && r.appended > 0 {
		if tail, err = r.lastRows(ctx, table, where); err != nil {
			return err
		}
	}
	switch {
	case tail: // lastRows found the slices
	case r.sliced && how == inSlices:
		top, err := lastRowid(ctx, r.conn, table)
		if err != nil {
			return err
		}
		r.todo = slicesFrom(0, top)
	case r.sliced:
		rows, err := r.conn.QueryContext(ctx, fmt.Sprintf("SELECT DISTINCT rowid // %d * %[1]d FROM %s WHERE (%s) ORDER BY 1",
			sliceRows, ident(table), where), r.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var at int64
			if err := rows.Scan(&at); err != nil {
				return err
			}
			r.todo = append(r.todo, at)
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	if r.sliced && len(r.todo) == 0 {
		r.todo = []int64{0} // no rows: the first slice gives the schema
	}
	if r.ar, err = connArrow(r.conn); err != nil {
		return err
	}
	if err := r.open(); err != nil {
		return err
	}
	r.schema = r.cur.Schema()
	return nil
}

// lastRows points the reader at table's last r.appended rowids when
// every one of them is a row that where selects (so that, holding as
// many rows as the run inserted of the resources asked for, they are all
// of them); last is false, and the reader unchanged, otherwise.
func (r *sliceReader) lastRows(ctx context.Context, table, where string) (last bool, err error) {
	top, err := lastRowid(ctx, r.conn, table)
	if err != nil {
		return false, err
	}
	from := top - r.appended + 1
	if from < 0 {
		return false, nil
	}
	var n int64
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE rowid >= %d AND (%s)", ident(table), from, where)
	if err := r.conn.QueryRowContext(ctx, q, r.args...).Scan(&n); err != nil {
		return false, err
	}
	if n != r.appended {
		return false, nil
	}
	r.q, r.args = fmt.Sprintf("SELECT * FROM %s WHERE rowid >= %d", ident(table), from), nil
	r.todo = slicesFrom(from, top)
	return true, nil
}

// hidesRowid reports whether table has a column named rowid, which hides
// DuckDB's.
func hidesRowid(ctx context.Context, conn *sql.Conn, table string) (bool, error) {
	cols, err := tableColumns(ctx, conn, table)
	return slices.Contains(cols, "rowid"), err
}

// tableColumns lists the names of the columns of the main schema's
// table, in order (describeTable).
func tableColumns(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	cols, err := describeTable(ctx, conn, table)
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return names, err
}

// tableColumn is a column of a table as describeTable gives it.
type tableColumn struct {
	name, typ string
	notNull   bool
	defaults  bool // it has a DEFAULT
}

// describeTable lists the columns of the main schema's table, in order;
// an error when there is no such table. It asks the table itself
// (pragma_table_info): duckdb_columns() lists every column of every table
// and view, which took 5-7 ms against 1-2 ms on a warehouse with the
// built-in views, and a lake's publish asks two or three times a table.
func describeTable(ctx context.Context, conn *sql.Conn, table string) ([]tableColumn, error) {
	// Named with its catalog: a temporary table of the same name would
	// be found first under main alone.
	rows, err := conn.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value IS NOT NULL
		FROM pragma_table_info('"' || replace(current_database(), '"', '""') || '".main.' || $1) ORDER BY cid`, ident(table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []tableColumn
	for rows.Next() {
		var c tableColumn
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.defaults); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("no such table %s", table)
	}
	return cols, nil
}

// TableSchema is the Arrow schema of table's rows as Records and the
// other readers give them, from a query of no rows: a lake asks it of
// every table it publishes, and a reader of no rows costs a transaction
// and three queries of the catalog and the table.
func (w *Warehouse) TableSchema(ctx context.Context, table string) (*arrow.Schema, error) {
	conn, err := w.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", table, err)
	}
	defer conn.Close()
	ar, err := connArrow(conn)
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", table, err)
	}
	rr, err := ar.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s LIMIT 0", ident(table)))
	if err != nil {
		return nil, fmt.Errorf("schema of %s: %w", table, err)
	}
	defer rr.Release()
	return rr.Schema(), nil
}

// lastRowid is the largest rowid a row of table may have, -1 when it has
// none: one less than the table's rows in the catalog, which counts
// deleted rows too (a rowid is a row's place in the table). A max(rowid)
// read the versions of every row: after a run's deletes, spread over a
// large table, that was most of the CPU its Iceberg lake's publish spent
// in DuckDB. A table the catalog does not list is asked for its rows.
func lastRowid(ctx context.Context, conn *sql.Conn, table string) (int64, error) {
	stored, err := storedRows(ctx, conn)
	if err != nil {
		return 0, err
	}
	if n, ok := stored[table]; ok {
		return n - 1, nil
	}
	var top sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT max(rowid) FROM "+ident(table)).Scan(&top); err != nil {
		return 0, err
	}
	if !top.Valid {
		return -1, nil
	}
	return top.Int64, nil
}

// slicesFrom returns the first rowids of the slices from rowid from to
// rowid top.
func slicesFrom(from, top int64) []int64 {
	var out []int64
	for at := from; at <= top; at += sliceRows {
		out = append(out, at)
	}
	return out
}

// open starts the query of the next slice.
func (r *sliceReader) open() (err error) {
	r.opened++
	q := r.q
	if r.sliced {
		q += fmt.Sprintf(" AND rowid >= %d AND rowid < %d", r.todo[0], r.todo[0]+sliceRows)
		r.todo = r.todo[1:]
	}
	r.cur, err = r.ar.QueryContext(r.ctx, q, r.args...)
	return err
}

func (r *sliceReader) Schema() *arrow.Schema { return r.schema }
func (r *sliceReader) Err() error            { return outOfMemory(r.err) }

func (r *sliceReader) RecordBatch() arrow.RecordBatch {
	if r.cur == nil {
		return nil
	}
	return r.cur.RecordBatch()
}

func (r *sliceReader) Next() bool {
	for r.err == nil && r.cur != nil {
		if r.cur.Next() {
			return true
		}
		if err := r.cur.Err(); err != nil {
			r.err = err
			break
		}
		r.cur.Release()
		r.cur = nil
		if len(r.todo) > 0 {
			r.err = r.open()
		}
	}
	return false
}

// Release ends the reader's transaction and closes its connection.
func (r *sliceReader) Release() {
	r.once.Do(func() {
		if r.cur != nil {
			r.cur.Release()
		}
		r.conn.ExecContext(context.WithoutCancel(r.ctx), "ROLLBACK")
		r.conn.Close()
	})
}
