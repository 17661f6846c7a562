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
//	DIR/<table>/data_source=<source>/data.parquet                an unpartitioned table
//	DIR/<table>/data_source=<source>/<key>=<value>/data.parquet  one partition of a table
//	DIR/_fhirlake/<bookkeeping table>.parquet                    fhirlake_runs, fhirlake_watermarks, ...
//	DIR/_fhirlake/lake.json                                      table definitions, partitions, views, owner
//
// Every table is split by source first, so a run rewrites only its own
// source's files and never another's. <value> is the year of the partition
// column, or NullPartition. Files hold every column of the table and nothing
// else: data_source and the partition column stay in the file (a reader
// without hive partitioning still sees them), while the year's Hive key
// (service_year) lives only in the path, so read_parquet(...,
// hive_partitioning = true) adds it as one extra column (data_source, in the
// path and in the file alike, stays one column, and a filter on it skips the
// other sources' folders) and a plain read_parquet returns exactly the
// table's columns.

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
	"github.com/fhirlake/fhirlake/internal/private"
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

// LakeMetaVersion is the lake.json format this release writes: 2 adds the
// owner warehouse and the folders by source.
const LakeMetaVersion = 2

// LakeMeta is the content of DIR/_fhirlake/lake.json.
type LakeMeta struct {
	// Version is the format version, LakeMetaVersion.
	Version int `json:"version"`
	// WarehouseID is the ID of the warehouse the lake mirrors, and
	// Warehouse its path when it last wrote the lake: a run of another
	// warehouse must not overwrite the lake (see CheckLake).
	WarehouseID string `json:"warehouse_id,omitempty"`
	Warehouse   string `json:"warehouse,omitempty"`
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

// WriteLake makes the lake in dir mirror the committed warehouse. changes
// are the Stats.Changes of the run just committed: only its source's files
// of the tables and partitions it names are rewritten. A nil changes
// rewrites every table, and so does a lake that is behind the warehouse by
// more than that run (an earlier WriteLake failed or was skipped) or is new,
// so a rerun always converges.
//
// Each file is written under a hidden temporary name in its final
// directory, synced, and renamed over the old one; a partition left without
// rows is removed. A reader therefore sees each partition either whole in
// its old state or whole in its new one, never torn or doubled (a resource
// that moved between two partitions may, for the instant between the two
// renames, be seen in both or neither). A table whose layout changed (it
// became partitioned, its key was renamed, or it has the folders of an
// earlier release) is built in a new directory and swapped in. The
// bookkeeping mirror and lake.json are written last.
func (w *Warehouse) WriteLake(ctx context.Context, dir string, tables []Table, changes *Changes) error {
	if err := os.MkdirAll(filepath.Join(dir, MetaDir), 0o755); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	if err := CheckLake(dir, w.path, w.id); err != nil {
		return err
	}
	SweepLake(dir)
	full := changes == nil
	if !full {
		behind, err := w.lakeBehind(ctx, dir)
		if err != nil {
			return err
		}
		full = behind
	}
	for _, t := range tables {
		if strings.HasPrefix(t.Name, BookkeepingPrefix) || t.Name == PersonTable {
			continue
		}
		if err := w.writeTable(ctx, dir, t, changes, full); err != nil {
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
	}
	if full || changes.Person {
		if err := w.writePerson(ctx, dir); err != nil {
			return fmt.Errorf("lake %s: %w", PersonTable, err)
		}
	}
	if err := w.writeLakeMeta(ctx, dir, tables); err != nil {
		return fmt.Errorf("lake bookkeeping: %w", err)
	}
	return nil
}

// ErrLakeMismatch means a lake mirrors another warehouse than the one a
// command writes.
var ErrLakeMismatch = errors.New("the lake mirrors another warehouse")

// CheckLake refuses to let the warehouse at warehousePath (with ID
// warehouseID, "" when it does not exist yet) write the lake in dir when
// the lake records another warehouse as its owner: a run pointed at the
// wrong warehouse, or at a new one beside an old lake, would otherwise
// overwrite the lake with other data. A lake without an owner (new, or
// written by the first release) may be adopted.
func CheckLake(dir, warehousePath, warehouseID string) error {
	meta, err := ReadLakeMeta(dir)
	if err != nil {
		return err
	}
	if meta.WarehouseID == "" || meta.WarehouseID == warehouseID {
		return nil
	}
	return fmt.Errorf("%w: lake %s mirrors warehouse %s (id %s), but this command writes warehouse %s: point --lake at this warehouse's own lake (or a new directory), or restore this warehouse from the lake with fhirlake rebuild --from lake",
		ErrLakeMismatch, dir, meta.Warehouse, meta.WarehouseID, warehousePath)
}

// SweepLake removes what crashed writes left anywhere in the lake: the
// staging and replacement folders of WriteLake in its root, and temporary
// files (the hidden *.tmp names of crash-safe writes, and the tmp_*
// names DuckDB's COPY writes through) in every folder, _fhirlake/
// included. It also narrows what an earlier release left readable by
// others (see internal/private). Errors are ignored: the leftovers are
// hidden from readers, and the next sweep tries again.
func SweepLake(dir string) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		private.Tighten(path)
		if path == dir {
			return nil
		}
		n := d.Name()
		switch {
		case d.IsDir() && strings.HasPrefix(n, ".") && (strings.Contains(n, ".stage-") || strings.Contains(n, ".new-")):
			os.RemoveAll(path)
			return fs.SkipDir
		case !d.IsDir() && (strings.HasPrefix(n, "tmp_") || strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".tmp")):
			os.Remove(path)
		}
		return nil
	})
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
func (w *Warehouse) writeTable(ctx context.Context, dir string, t Table, changes *Changes, full bool) error {
	tdir := filepath.Join(dir, t.Name)
	lay, err := readLayout(tdir)
	if err != nil {
		return err
	}
	if !lay.exists || !lay.fits(t.Partition) {
		return w.replaceTableDir(ctx, dir, t)
	}
	if full {
		return w.writeAll(ctx, dir, tdir, t, lay)
	}
	vals, ok := changes.Tables[t.Name]
	if !ok {
		return nil
	}
	return w.writeSource(ctx, dir, tdir, t, changes.Source, vals, lay.sources[changes.Source])
}

// writeAll rewrites every file of table t in tdir, one source after the
// other, and removes the folders of sources without rows.
func (w *Warehouse) writeAll(ctx context.Context, lake, tdir string, t Table, lay layout) error {
	sources, err := w.queryStrings(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM %s ORDER BY 1", ident(DataSource), ident(t.Name)))
	if err != nil {
		return fmt.Errorf("list sources: %w", err)
	}
	for _, src := range sources {
		if err := w.writeSource(ctx, lake, tdir, t, src, nil, lay.sources[src]); err != nil {
			return err
		}
	}
	for src, sl := range lay.sources {
		if !slices.Contains(sources, src) {
			if err := removeSource(tdir, sl); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeSource rewrites the files of one source of table t: its one file,
// or its partitions vals (every partition when vals is nil). sl is what
// the source's folder holds now. A folder left without rows is removed.
func (w *Warehouse) writeSource(ctx context.Context, lake, tdir string, t Table, source string, vals []string, sl sourceLayout) error {
	if err := CheckSource(source); err != nil {
		return err
	}
	sl.dir = filepath.Join(tdir, SourceKey+"="+source)
	where := ident(DataSource) + " = " + sqlString(source)
	if t.Partition == nil {
		if err := os.MkdirAll(sl.dir, 0o755); err != nil {
			return err
		}
		n, err := w.copyFile(ctx, tableQuery(t, where), filepath.Join(sl.dir, LakeFile))
		if err != nil || n > 0 {
			return err
		}
		return removeSource(tdir, sl)
	}
	left, err := w.writePartitions(ctx, lake, t, where, vals, sl)
	if err != nil || left > 0 {
		return err
	}
	return removeSource(tdir, sl)
}

// writePerson writes the person crosswalk as one file,
// DIR/person/data.parquet: the one table that spans sources (a run that
// links a patient of its source to another source's changes both rows),
// so it is not split by source.
func (w *Warehouse) writePerson(ctx context.Context, dir string) error {
	var n int
	err := w.conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE table_name = ? AND NOT temporary AND schema_name = 'main' AND database_name = current_database()`, PersonTable).Scan(&n)
	if err != nil || n == 0 {
		return err
	}
	pdir := filepath.Join(dir, PersonTable)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return err
	}
	if _, err := w.copyFile(ctx, "SELECT * FROM "+PersonTable+" ORDER BY data_source, patient_id", filepath.Join(pdir, LakeFile)); err != nil {
		return err
	}
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if n := e.Name(); n != LakeFile && !strings.HasPrefix(n, ".") {
			if err := os.RemoveAll(filepath.Join(pdir, n)); err != nil {
				return err
			}
		}
	}
	return nil
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

// writePartitions rewrites the partitions vals (every partition when vals
// is nil) of the rows of t that match where, in one pass over the table,
// into the source folder sl: DuckDB writes them with PARTITION_BY into a
// hidden staging folder of the lake (which no DIR/<table>/** glob
// reaches), then each file is synced and renamed over the live one.
// Partitions that got no rows are removed. It returns the number of
// partitions the folder holds afterwards.
func (w *Warehouse) writePartitions(ctx context.Context, lake string, t Table, where string, vals []string, sl sourceLayout) (int, error) {
	p := t.Partition
	if vals != nil {
		if len(vals) == 0 {
			return len(sl.parts), nil
		}
		quoted := make([]string, len(vals))
		for i, v := range vals {
			if err := checkPartitionValue(v); err != nil {
				return 0, err
			}
			quoted[i] = sqlString(v)
		}
		where += fmt.Sprintf(" AND %s IN (%s)", p.expr(), strings.Join(quoted, ", "))
	}
	stage := filepath.Join(lake, "."+t.Name+".stage-"+randomSuffix())
	defer os.RemoveAll(stage)
	q := fmt.Sprintf(`COPY (SELECT *, %s AS %s FROM (%s)) TO %s
		(FORMAT parquet, PARTITION_BY (%s), FILENAME_PATTERN 'data', COMPRESSION zstd, ROW_GROUP_SIZE %d)`,
		p.expr(), ident(p.Name), tableQuery(t, where), sqlString(stage), ident(p.Name), rowGroupRows)
	if err := w.exec(ctx, q); err != nil {
		return 0, fmt.Errorf("write parquet: %w", err)
	}
	written, err := publishStaged(stage, sl.dir)
	if err != nil {
		return 0, err
	}
	left := len(written)
	for _, d := range sl.parts {
		switch {
		case written[d.value]:
		case d.key == p.Name && (vals == nil || slices.Contains(vals, d.value)):
			if err := removePartition(sl.dir, d.dir); err != nil {
				return 0, err
			}
		default:
			left++ // a partition this write did not touch
		}
	}
	return left, nil
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

// removePartition deletes sdir/<pdir>: its data file first (the one step
// a reader can observe), then the folder.
func removePartition(sdir, pdir string) error {
	if err := os.Remove(filepath.Join(sdir, pdir, LakeFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove partition %s: %w", pdir, err)
	}
	if err := os.RemoveAll(filepath.Join(sdir, pdir)); err != nil {
		return fmt.Errorf("remove partition %s: %w", pdir, err)
	}
	return atomicfile.SyncDir(sdir)
}

// removeSource deletes the folder of a source that has no rows left in a
// table: its data files first, then the folders.
func removeSource(tdir string, sl sourceLayout) error {
	if sl.dir == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(sl.dir, LakeFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", sl.dir, err)
	}
	for _, d := range sl.parts {
		if err := removePartition(sl.dir, d.dir); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(sl.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", sl.dir, err)
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
	meta := LakeMeta{Version: LakeMetaVersion, WarehouseID: w.id, Warehouse: w.path, Tables: map[string]LakeTable{}}
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
	parts[PersonTable] = nil
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
	meta := LakeMeta{Version: LakeMetaVersion, Tables: map[string]LakeTable{}}
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

// SourceKey is the Hive key of the first folder level of every table of
// the lake: one folder per source, data_source=<name>.
const SourceKey = DataSource

// layout is what a table folder of the lake holds.
type layout struct {
	dir    string
	exists bool
	// foreign is set when the folder holds anything but source folders:
	// the flat file or year folders of the first release's layout.
	foreign bool
	sources map[string]sourceLayout // by source name
}

// sourceLayout is what the folder of one source of a table holds.
type sourceLayout struct {
	dir   string    // DIR/<table>/data_source=<source>; "" when absent
	flat  bool      // dir/data.parquet is there
	parts []partDir // dir/<key>=<value>/ folders, sorted
}

type partDir struct{ dir, key, value string }

// readLayout lists a table folder; a missing one gives exists false.
// Hidden entries (temporary files and folders) are not part of it.
func readLayout(tdir string) (layout, error) {
	lay := layout{dir: tdir, sources: map[string]sourceLayout{}}
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
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "tmp_") {
			continue
		}
		k, v, ok := strings.Cut(name, "=")
		if !e.IsDir() || !ok || k != SourceKey {
			lay.foreign = true
			continue
		}
		sl, err := readSourceLayout(filepath.Join(tdir, name))
		if err != nil {
			return lay, err
		}
		lay.sources[v] = sl
	}
	return lay, nil
}

// readSourceLayout lists the folder of one source.
func readSourceLayout(sdir string) (sourceLayout, error) {
	sl := sourceLayout{dir: sdir}
	ents, err := os.ReadDir(sdir)
	if err != nil {
		return sl, err
	}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "tmp_"):
		case name == LakeFile:
			sl.flat = true
		case e.IsDir() && strings.Contains(name, "="):
			k, v, _ := strings.Cut(name, "=")
			sl.parts = append(sl.parts, partDir{dir: name, key: k, value: v})
		}
	}
	sort.Slice(sl.parts, func(i, j int) bool { return sl.parts[i].dir < sl.parts[j].dir })
	return sl, nil
}

// fits reports whether the folder's layout matches partitioning p, so that
// files can be replaced one by one.
func (l layout) fits(p *Partition) bool {
	if l.foreign {
		return false
	}
	for _, sl := range l.sources {
		if p == nil && len(sl.parts) > 0 || p != nil && sl.flat {
			return false
		}
		for _, d := range sl.parts {
			if d.key != p.Name {
				return false
			}
		}
	}
	return true
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
