//go:build duckdb_arrow

package load

// The lake writer is DuckDB's own COPY ... (FORMAT parquet, COMPRESSION
// zstd), chosen by measurement: BenchmarkLakeWriters (lake_bench_test.go)
// on 3,000,000 eob_item-like rows (VARCHAR ids and codes, 3 DECIMAL, 2
// DATE, TIMESTAMPTZ, INTEGER), 2-core shared machine, DuckDB v1.5.x,
// arrow-go v18.8.0, -benchtime 3x, two runs (the machine is noisy):
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
// COPY's rows/s, but writes files twice as large
// (no per-column tuning) and needs a hand-written struct per table, where
// COPY takes any view's table as it is. All read back as DECIMAL, DATE and
// TIMESTAMPTZ. Partitioned tables are
// written with one COPY ... PARTITION_BY pass (not one COPY per partition)
// into a hidden staging folder, whose files are then renamed into place.

// Layout of a lake directory DIR:
//
//	DIR/<table>/data.parquet                   an unpartitioned table
//	DIR/<table>/<key>=<value>/data.parquet     one partition of a table
//	DIR/_fhirlake/<bookkeeping table>.parquet  fhirlake_runs, fhirlake_watermarks, ...
//	DIR/_fhirlake/lake.json                    table definitions, partitions, views
//
// <value> is the year of the partition column, or NullPartition. Files hold
// every column of the table and nothing else: the partition column itself
// stays (a reader without hive partitioning still sees it and can derive the
// year), while the Hive key (service_year) lives only in the path, so
// read_parquet(..., hive_partitioning = true) adds it as one extra column and
// a plain read_parquet returns exactly the table's columns.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// LakeFile is the name of the Parquet file that holds an unpartitioned
// table under DIR/<table>/, or one partition under DIR/<table>/<key>=<value>/.
const LakeFile = "data.parquet"

// MetaDir is the lake folder that mirrors the bookkeeping tables and holds
// LakeMetaFile.
const MetaDir = "_fhirlake"

// LakeMetaFile, under MetaDir, records what the lake alone needs to restore
// the warehouse: each table's CREATE statement and partition, and the
// warehouse's views.
const LakeMetaFile = "lake.json"

// BookkeepingPrefix starts the name of every bookkeeping table.
const BookkeepingPrefix = "fhirlake_"

// rowGroupRows is the Parquet row group size: four of DuckDB's own row
// groups, a few MB to a few tens of MB compressed for our tables; large
// enough for good compression and min/max skipping, small enough to keep
// the writer's memory low.
const rowGroupRows = 4 * 122880

// LakeMeta is the content of DIR/_fhirlake/lake.json.
type LakeMeta struct {
	// Version is the format version, 1.
	Version int `json:"version"`
	// Tables maps each table of the lake, bookkeeping tables included, to
	// its definition.
	Tables map[string]LakeTable `json:"tables"`
	// Views are the CREATE VIEW statements of the warehouse, in creation
	// order.
	Views []string `json:"views,omitempty"`
}

// LakeTable is one table of LakeMeta.
type LakeTable struct {
	// SQL is the CREATE TABLE statement of the warehouse table, with its
	// exact column types and constraints.
	SQL string `json:"sql"`
	// Partition is the table's partitioning, nil when unpartitioned.
	Partition *Partition `json:"partition,omitempty"`
}

// WriteLake makes the lake in dir mirror the committed warehouse. touched
// is the Stats.Touched of the run just committed: only those tables and
// partitions are rewritten. A nil touched rewrites every table, and so does
// a lake that is behind the warehouse by more than that run (an earlier
// WriteLake failed or was skipped) or is new, so a rerun always converges.
//
// Each file is written under a hidden temporary name in its final
// directory, synced, and renamed over the old one; a partition left without
// rows is removed. A reader therefore sees each partition either whole in
// its old state or whole in its new one, never torn or doubled (a resource
// that moved between two partitions may, for the instant between the two
// renames, be seen in both or neither). A table whose layout changed (it
// became partitioned, or its key was renamed) is built in a new directory
// and swapped in. The bookkeeping mirror and lake.json are written last.
func (w *Warehouse) WriteLake(ctx context.Context, dir string, tables []Table, touched map[string][]string) error {
	if err := os.MkdirAll(filepath.Join(dir, MetaDir), 0o755); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	sweepLake(dir)
	full := touched == nil
	if !full {
		behind, err := w.lakeBehind(ctx, dir)
		if err != nil {
			return err
		}
		full = behind
	}
	for _, t := range tables {
		if strings.HasPrefix(t.Name, BookkeepingPrefix) {
			continue
		}
		if err := w.writeTable(ctx, dir, t, touched, full); err != nil {
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
	}
	if err := w.writeLakeMeta(ctx, dir, tables); err != nil {
		return fmt.Errorf("lake bookkeeping: %w", err)
	}
	return nil
}

// sweepLake removes the staging and replacement folders a crashed
// WriteLake left in the lake root. Errors are ignored: the leftovers are
// hidden from readers.
func sweepLake(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() && strings.HasPrefix(n, ".") && (strings.Contains(n, ".stage-") || strings.Contains(n, ".new-")) {
			os.RemoveAll(filepath.Join(dir, n))
		}
	}
}

// lakeBehind reports whether the lake's copy of fhirlake_runs misses more
// than one run of the warehouse, or has runs the warehouse does not know.
func (w *Warehouse) lakeBehind(ctx context.Context, dir string) (bool, error) {
	path := filepath.Join(dir, MetaDir, "fhirlake_runs.parquet")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	var missing, extra int64
	lake := "read_parquet(" + sqlString(path) + ")"
	q := fmt.Sprintf(`SELECT
		(SELECT count(*) FROM fhirlake_runs WHERE run_id NOT IN (SELECT run_id FROM %[1]s)),
		(SELECT count(*) FROM %[1]s WHERE run_id NOT IN (SELECT run_id FROM fhirlake_runs))`, lake)
	if err := w.conn.QueryRowContext(ctx, q).Scan(&missing, &extra); err != nil {
		return false, fmt.Errorf("lake: compare runs: %w", err)
	}
	return missing > 1 || extra > 0, nil
}

// writeTable brings one table of the lake up to date.
func (w *Warehouse) writeTable(ctx context.Context, dir string, t Table, touched map[string][]string, full bool) error {
	tdir := filepath.Join(dir, t.Name)
	lay, err := readLayout(tdir)
	if err != nil {
		return err
	}
	if !lay.exists || !lay.fits(t.Partition) {
		return w.replaceTableDir(ctx, dir, t)
	}
	lay.sweep()
	vals, ok := touched[t.Name]
	switch {
	case full:
		return w.writeAll(ctx, dir, tdir, t, lay)
	case !ok:
		return nil
	case t.Partition == nil:
		_, err := w.copyFile(ctx, tableQuery(t, ""), filepath.Join(tdir, LakeFile))
		return err
	default:
		return w.writePartitions(ctx, dir, tdir, t, vals, lay)
	}
}

// writeAll rewrites every file of table t in tdir and removes partitions
// that no longer have rows.
func (w *Warehouse) writeAll(ctx context.Context, lake, tdir string, t Table, lay layout) error {
	if t.Partition == nil {
		_, err := w.copyFile(ctx, tableQuery(t, ""), filepath.Join(tdir, LakeFile))
		return err
	}
	return w.writePartitions(ctx, lake, tdir, t, nil, lay)
}

// replaceTableDir builds the whole table in a hidden folder of the lake and
// swaps it in place of DIR/<table>.
func (w *Warehouse) replaceTableDir(ctx context.Context, dir string, t Table) error {
	tmp := filepath.Join(dir, "."+t.Name+".new-"+randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := w.writeAll(ctx, dir, tmp, t, layout{dir: tmp}); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return err
	}
	return swapDir(tmp, filepath.Join(dir, t.Name))
}

// writePartitions rewrites the partitions vals of t (every partition when
// vals is nil) in one pass over the table: DuckDB writes them with
// PARTITION_BY into a hidden staging folder of the lake (which no
// DIR/<table>/** glob reaches), then each file is synced and renamed over
// the live one. Partitions that got no rows are removed.
func (w *Warehouse) writePartitions(ctx context.Context, lake, tdir string, t Table, vals []string, lay layout) error {
	p := t.Partition
	where := ""
	if vals != nil {
		if len(vals) == 0 {
			return nil
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			if err := checkPartitionValue(v); err != nil {
				return err
			}
			quoted[i] = sqlString(v)
		}
		where = fmt.Sprintf("%s IN (%s)", p.expr(), strings.Join(quoted, ", "))
	}
	stage := filepath.Join(lake, "."+t.Name+".stage-"+randomSuffix())
	defer os.RemoveAll(stage)
	q := fmt.Sprintf(`COPY (SELECT *, %s AS %s FROM (%s)) TO %s
		(FORMAT parquet, PARTITION_BY (%s), FILENAME_PATTERN 'data', COMPRESSION zstd, ROW_GROUP_SIZE %d)`,
		p.expr(), ident(p.Name), tableQuery(t, where), sqlString(stage), ident(p.Name), rowGroupRows)
	if err := w.exec(ctx, q); err != nil {
		return fmt.Errorf("write parquet: %w", err)
	}
	written, err := publishStaged(stage, tdir)
	if err != nil {
		return err
	}
	gone := vals
	if vals == nil {
		for _, d := range lay.parts {
			gone = append(gone, d.value)
		}
	}
	for _, d := range lay.parts {
		if d.key == p.Name && !written[d.value] && slices.Contains(gone, d.value) {
			if err := removePartition(tdir, d.dir); err != nil {
				return err
			}
		}
	}
	return nil
}

// publishStaged moves each stage/<key>=<value>/ file DuckDB wrote to
// tdir/<key>=<value>/data.parquet, synced first, and returns the values.
func publishStaged(stage, tdir string) (map[string]bool, error) {
	written := map[string]bool{}
	ents, err := os.ReadDir(stage)
	if errors.Is(err, fs.ErrNotExist) {
		return written, nil // no rows at all
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		_, v, ok := strings.Cut(e.Name(), "=")
		if !e.IsDir() || !ok {
			continue
		}
		files, err := filepath.Glob(filepath.Join(stage, e.Name(), "*.parquet"))
		if err != nil {
			return nil, err
		}
		if len(files) != 1 {
			return nil, fmt.Errorf("partition %s: DuckDB wrote %d files, want 1", e.Name(), len(files))
		}
		if err := syncFile(files[0]); err != nil {
			return nil, err
		}
		pdir := filepath.Join(tdir, e.Name())
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(files[0], filepath.Join(pdir, LakeFile)); err != nil {
			return nil, fmt.Errorf("partition %s: %w", e.Name(), err)
		}
		if err := atomicfile.SyncDir(pdir); err != nil {
			return nil, err
		}
		written[v] = true
	}
	return written, atomicfile.SyncDir(tdir)
}

// checkPartitionValue refuses values that would escape the table folder.
func checkPartitionValue(v string) error {
	if v == "" || strings.HasPrefix(v, ".") || strings.ContainsAny(v, `/\=`) {
		return fmt.Errorf("bad partition value %q", v)
	}
	return nil
}

// removePartition deletes DIR/<table>/<pdir>: its data file first (the
// one step a reader can observe), then the folder.
func removePartition(tdir, pdir string) error {
	if err := os.Remove(filepath.Join(tdir, pdir, LakeFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove partition %s: %w", pdir, err)
	}
	if err := os.RemoveAll(filepath.Join(tdir, pdir)); err != nil {
		return fmt.Errorf("remove partition %s: %w", pdir, err)
	}
	return atomicfile.SyncDir(tdir)
}

// tableQuery selects the rows of t matching where (all when empty), in
// key order so that row groups cluster by resource.
func tableQuery(t Table, where string) string {
	q := "SELECT * FROM " + ident(t.Name)
	if where != "" {
		q += " WHERE " + where
	}
	if t.Key != "" {
		q += " ORDER BY " + ident(t.Key)
	}
	return q
}

// copyFile writes the result of query to path the crash-safe way and
// returns the number of rows written.
func (w *Warehouse) copyFile(ctx context.Context, query, path string) (int64, error) {
	f, err := atomicfile.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	tmp := f.Name()
	// DuckDB writes through its own handle.
	f.File.Close()
	q := fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", query, sqlString(tmp), rowGroupRows)
	res, err := w.conn.ExecContext(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("write parquet: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("write parquet: %w", err)
	}
	// Reopen so that Commit syncs the bytes DuckDB wrote before the rename.
	if f.File, err = os.OpenFile(tmp, os.O_RDWR, 0); err != nil {
		return 0, err
	}
	return n, f.Commit()
}

// writeLakeMeta mirrors every bookkeeping table to DIR/_fhirlake/ and then
// writes lake.json.
func (w *Warehouse) writeLakeMeta(ctx context.Context, dir string, tables []Table) error {
	old, err := ReadLakeMeta(dir)
	if err != nil {
		return err
	}
	defs, err := w.tableDefs(ctx)
	if err != nil {
		return err
	}
	meta := LakeMeta{Version: 1, Tables: map[string]LakeTable{}}
	for name, sql := range defs {
		if strings.HasPrefix(name, BookkeepingPrefix) {
			path := filepath.Join(dir, MetaDir, name+".parquet")
			if _, err := w.copyFile(ctx, "SELECT * FROM "+ident(name), path); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			meta.Tables[name] = LakeTable{SQL: sql}
		}
	}
	// Tables of the lake: those written now and those already there.
	parts := map[string]*Partition{}
	for name, lt := range old.Tables {
		parts[name] = lt.Partition
	}
	for _, t := range tables {
		parts[t.Name] = t.Partition
	}
	for name, p := range parts {
		if sql, ok := defs[name]; ok && !strings.HasPrefix(name, BookkeepingPrefix) {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				meta.Tables[name] = LakeTable{SQL: sql, Partition: p}
			}
		}
	}
	if meta.Views, err = w.queryStrings(ctx, `SELECT sql FROM duckdb_views()
		WHERE NOT internal AND NOT temporary AND schema_name = 'main' AND database_name = current_database()
		ORDER BY view_oid`); err != nil {
		return err
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, MetaDir, LakeMetaFile), append(b, '\n'))
}

// tableDefs maps each table of the warehouse to its CREATE statement.
func (w *Warehouse) tableDefs(ctx context.Context) (map[string]string, error) {
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

// ReadLakeMeta reads DIR/_fhirlake/lake.json; a lake without one gives an
// empty LakeMeta.
func ReadLakeMeta(dir string) (LakeMeta, error) {
	meta := LakeMeta{Version: 1, Tables: map[string]LakeTable{}}
	b, err := os.ReadFile(filepath.Join(dir, MetaDir, LakeMetaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return meta, nil
	}
	if err != nil {
		return meta, fmt.Errorf("read lake metadata: %w", err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return meta, fmt.Errorf("read lake metadata %s: %w", filepath.Join(dir, MetaDir, LakeMetaFile), err)
	}
	if meta.Tables == nil {
		meta.Tables = map[string]LakeTable{}
	}
	return meta, nil
}

// layout is what a table folder of the lake holds.
type layout struct {
	dir    string
	exists bool
	flat   bool      // DIR/<table>/data.parquet is there
	parts  []partDir // DIR/<table>/<key>=<value>/ folders, sorted
	stale  []string  // temporary files left by a crashed write
}

type partDir struct{ dir, key, value string }

// readLayout lists a table folder; a missing one gives exists false.
func readLayout(tdir string) (layout, error) {
	lay := layout{dir: tdir}
	ents, err := os.ReadDir(tdir)
	if errors.Is(err, fs.ErrNotExist) {
		return lay, nil
	}
	if err != nil {
		return lay, err
	}
	lay.exists = true
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "."):
			if strings.HasSuffix(name, ".tmp") {
				lay.stale = append(lay.stale, name)
			}
		case name == LakeFile:
			lay.flat = true
		case e.IsDir() && strings.Contains(name, "="):
			k, v, _ := strings.Cut(name, "=")
			lay.parts = append(lay.parts, partDir{dir: name, key: k, value: v})
			sub, err := os.ReadDir(filepath.Join(tdir, name))
			if err != nil {
				return lay, err
			}
			for _, s := range sub {
				if strings.HasPrefix(s.Name(), ".") && strings.HasSuffix(s.Name(), ".tmp") {
					lay.stale = append(lay.stale, filepath.Join(name, s.Name()))
				}
			}
		}
	}
	sort.Slice(lay.parts, func(i, j int) bool { return lay.parts[i].dir < lay.parts[j].dir })
	return lay, nil
}

// fits reports whether the folder's layout matches partitioning p, so that
// files can be replaced one by one.
func (l layout) fits(p *Partition) bool {
	if p == nil {
		return len(l.parts) == 0
	}
	if l.flat {
		return false
	}
	for _, d := range l.parts {
		if d.key != p.Name {
			return false
		}
	}
	return true
}

// sweep removes temporary files left by a crashed write. Errors are
// ignored: a leftover temp file is invisible to readers.
func (l layout) sweep() {
	for _, s := range l.stale {
		os.Remove(filepath.Join(l.dir, s))
	}
}

// describe lists "name TYPE" for each column of a query's result.
func (w *Warehouse) describe(ctx context.Context, q string) ([]string, error) {
	return w.queryStrings(ctx, "SELECT column_name || ' ' || column_type FROM (DESCRIBE "+q+")")
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
