//go:build duckdb_arrow

package duckdb

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/hive"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// From names the side a rebuild restores the other one from.
type From string

// The two directions of a rebuild.
const (
	// FromLake recreates the warehouse file from the lake.
	FromLake From = "lake"
	// FromWarehouse rewrites the whole lake from the warehouse.
	FromWarehouse From = "warehouse"
)

// RebuildOptions says what to rebuild.
type RebuildOptions struct {
	// Lake is the lake directory.
	Lake string
	// Warehouse is the DuckDB file.
	Warehouse string
	// From is the side to restore from; empty means FromLake.
	From From
	// Tables are the views' tables. Writing the lake, they give the
	// partitioning (and sort key); tables not listed keep the
	// partitioning recorded in the existing lake, else are written
	// unpartitioned. Restoring the warehouse, they give the columns
	// stored dictionary-encoded (load.Table.Coded), which the lake's
	// CREATE statements do not record.
	Tables []load.Table
	// Reader, when set, is the lake to restore the warehouse from (an
	// Iceberg lake), read table by table; nil reads the Hive lake in the
	// folder Lake. It serves FromLake only.
	Reader load.LakeReader
	// Target, when set, is the lake to rewrite from the warehouse (an
	// Iceberg lake: every table gets a snapshot of the warehouse's rows);
	// nil rebuilds the Hive lake in the folder Lake beside it and swaps it
	// in. It serves FromWarehouse only.
	Target load.Lake
}

// RebuildPlan is what a rebuild will do. PlanRebuild makes it without
// changing anything; Execute carries it out.
type RebuildPlan struct {
	Options RebuildOptions
	// Tables are the tables to restore, data tables first, by name.
	Tables []PlanTable
	// Views is the number of views to recreate (FromLake).
	Views int
	// Replaces describes the target that will be replaced, or says that it
	// will be created.
	Replaces string
	// Drops lists tables of the current target that the source lacks;
	// they will be gone after the rebuild.
	Drops []string

	views []string
}

// PlanTable is one table of a RebuildPlan.
type PlanTable struct {
	Name string
	// Bookkeeping is set for fhirlake_* tables (kept under DIR/_fhirlake).
	Bookkeeping bool
	// Partition is the table's partitioning in the lake, nil for none.
	Partition *load.Partition
	// Rows is the number of rows to restore.
	Rows int64
	// Partitions lists the table's folders in the lake and their rows:
	// one per source, or per source and year for a partitioned table.
	Partitions []PlanPartition

	sql   string   // CREATE TABLE statement, empty when unknown
	key   string   // sort key, when known
	files []string // lake files (FromLake)
	// read streams the table from a LakeReader (FromLake, Reader set).
	read func(ctx context.Context) (load.RecordReader, error)
}

// PlanPartition is one folder of a PlanTable in the lake.
type PlanPartition struct {
	// Value is the folder below the table's, such as
	// data_source=medicare/service_year=2024 (or service_year=2024 in a
	// lake of the first release).
	Value string
	Rows  int64
}

// PlanRebuild inspects both sides and returns the plan. It changes nothing.
func PlanRebuild(ctx context.Context, o RebuildOptions) (*RebuildPlan, error) {
	if o.From == "" {
		o.From = FromLake
	}
	if o.Lake == "" || o.Warehouse == "" {
		return nil, errors.New("rebuild: both the lake and the warehouse must be named")
	}
	switch o.From {
	case FromLake:
		if o.Reader != nil {
			return planFromReader(ctx, o)
		}
		return planFromLake(ctx, o)
	case FromWarehouse:
		return planFromWarehouse(ctx, o)
	default:
		return nil, fmt.Errorf("rebuild: unknown source %q (want lake or warehouse)", o.From)
	}
}

// Execute carries out the plan. The target is built beside the old one and
// swapped in by a rename only when complete: a failed or interrupted
// rebuild leaves the old target as it was.
func (p *RebuildPlan) Execute(ctx context.Context) error {
	if p.Options.From == FromWarehouse {
		return p.executeToLake(ctx)
	}
	return p.executeToWarehouse(ctx)
}

// Print writes the plan for a human.
func (p *RebuildPlan) Print(w io.Writer) error {
	var b strings.Builder
	if p.Options.From == FromWarehouse {
		fmt.Fprintf(&b, "rebuild lake %s from warehouse %s\n", p.Options.Lake, p.Options.Warehouse)
	} else {
		fmt.Fprintf(&b, "rebuild warehouse %s from lake %s\n", p.Options.Warehouse, p.Options.Lake)
	}
	for _, t := range p.Tables {
		kind := "table"
		if t.Bookkeeping {
			kind = "bookkeeping"
		}
		fmt.Fprintf(&b, "  %s %s: %d rows", kind, t.Name, t.Rows)
		if len(t.Partitions) > 0 {
			parts := make([]string, len(t.Partitions))
			for i, pp := range t.Partitions {
				parts[i] = fmt.Sprintf("%s: %d", pp.Value, pp.Rows)
			}
			fmt.Fprintf(&b, " in %d folders (%s)", len(t.Partitions), strings.Join(parts, ", "))
		}
		b.WriteString("\n")
	}
	if p.Options.From != FromWarehouse {
		fmt.Fprintf(&b, "  views: %d\n", p.Views)
	}
	fmt.Fprintf(&b, "replaces: %s\n", p.Replaces)
	if len(p.Drops) > 0 {
		fmt.Fprintf(&b, "drops (not in the source): %s\n", strings.Join(p.Drops, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// planFromLake reads the lake's folders, lake.json and Parquet footers,
// and looks at the warehouse it would replace.
func planFromLake(ctx context.Context, o RebuildOptions) (*RebuildPlan, error) {
	if fi, err := os.Stat(o.Lake); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("rebuild: no lake at %s", o.Lake)
	}
	meta, err := hive.ReadLakeMeta(o.Lake)
	if err != nil {
		return nil, err
	}
	p := &RebuildPlan{Options: o, views: meta.Views, Views: len(meta.Views)}
	ents, err := os.ReadDir(o.Lake)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || e.Name() == hive.MetaDir {
			continue
		}
		t, err := lakeTable(o.Lake, e.Name(), meta.Tables[e.Name()])
		if err != nil {
			return nil, err
		}
		p.Tables = append(p.Tables, t)
	}
	for name, lt := range meta.Tables {
		if !strings.HasPrefix(name, load.BookkeepingPrefix) {
			if _, err := os.Stat(filepath.Join(o.Lake, name)); errors.Is(err, fs.ErrNotExist) {
				// A partitioned table without rows has no folder content;
				// a table without a folder at all is still restored empty.
				p.Tables = append(p.Tables, PlanTable{Name: name, Partition: lt.Partition, sql: lt.SQL})
			}
			continue
		}
		t := PlanTable{Name: name, Bookkeeping: true, sql: lt.SQL}
		if f := filepath.Join(o.Lake, hive.MetaDir, name+".parquet"); exists(f) {
			t.files = []string{f}
		}
		p.Tables = append(p.Tables, t)
	}
	sortPlanTables(p.Tables)

	db, err := openDuckDB(ctx, "")
	if err != nil {
		return nil, err
	}
	defer db.close()
	for i := range p.Tables {
		if err := db.countFiles(ctx, &p.Tables[i]); err != nil {
			return nil, err
		}
	}
	release, old, err := db.lockWarehouse(ctx, o.Warehouse)
	if err != nil {
		return nil, err
	}
	defer release()
	p.Replaces = "nothing: " + o.Warehouse + " will be created"
	if old != nil {
		p.Replaces = fmt.Sprintf("warehouse %s (%d tables)", o.Warehouse, len(old))
		restored := map[string]bool{}
		for _, t := range p.Tables {
			restored[t.Name] = true
		}
		for _, name := range old {
			if !restored[name] {
				p.Drops = append(p.Drops, name)
			}
		}
	} else if exists(o.Warehouse) {
		p.Replaces = fmt.Sprintf("warehouse %s (unreadable)", o.Warehouse)
	}
	return p, nil
}

// planFromReader lists the tables of a LakeReader and looks at the
// warehouse it would replace.
func planFromReader(ctx context.Context, o RebuildOptions) (*RebuildPlan, error) {
	contents, err := o.Reader.Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	if len(contents) == 0 {
		return nil, fmt.Errorf("rebuild: the lake %s holds no tables", o.Lake)
	}
	p := &RebuildPlan{Options: o}
	for _, c := range contents {
		name := c.Name
		p.Tables = append(p.Tables, PlanTable{Name: name, Bookkeeping: strings.HasPrefix(name, load.BookkeepingPrefix),
			Rows: c.Rows, sql: c.SQL,
			read: func(ctx context.Context) (load.RecordReader, error) { return o.Reader.ReadTable(ctx, name) }})
	}
	sortPlanTables(p.Tables)
	db, err := openDuckDB(ctx, "")
	if err != nil {
		return nil, err
	}
	defer db.close()
	release, old, err := db.lockWarehouse(ctx, o.Warehouse)
	if err != nil {
		return nil, err
	}
	defer release()
	p.Replaces = "nothing: " + o.Warehouse + " will be created"
	if old != nil {
		p.Replaces = fmt.Sprintf("warehouse %s (%d tables)", o.Warehouse, len(old))
	}
	return p, nil
}

// lakeTable describes DIR/<name>/: the folders by source of this
// release, or the flat file and year folders of the first release.
func lakeTable(lake, name string, lt hive.LakeTable) (PlanTable, error) {
	t := PlanTable{Name: name, Partition: lt.Partition, sql: lt.SQL}
	tdir := filepath.Join(lake, name)
	var files []string
	err := filepath.WalkDir(tdir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if path != tdir && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "tmp_")) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && n == hive.LakeFile {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return t, fmt.Errorf("rebuild: %w", err)
	}
	sort.Strings(files)
	flat, folders := false, false
	for _, f := range files {
		rel, _ := filepath.Rel(tdir, filepath.Dir(f))
		rel = filepath.ToSlash(rel)
		if rel == "." {
			flat = true
			t.files = append(t.files, f)
			continue
		}
		folders = true
		keys := strings.Split(rel, "/")
		if k, _, ok := strings.Cut(keys[len(keys)-1], "="); ok && k != hive.SourceKey && t.Partition == nil {
			// No lake.json: the folder names tell the key, not the column.
			t.Partition = &load.Partition{Name: k}
		}
		t.files = append(t.files, f)
		t.Partitions = append(t.Partitions, PlanPartition{Value: rel})
	}
	if flat && folders {
		return t, fmt.Errorf("rebuild: lake table %s has both %s and partition folders; rewrite the lake from the warehouse", name, hive.LakeFile)
	}
	return t, nil
}

// countFiles fills the row counts of t from the Parquet footers.
func (db *duckDB) countFiles(ctx context.Context, t *PlanTable) error {
	for i, f := range t.files {
		var n int64
		q := "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(" + sqlString(f) + ")"
		if err := db.conn.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return fmt.Errorf("rebuild: read %s: %w", f, err)
		}
		t.Rows += n
		if t.Partitions != nil {
			t.Partitions[i].Rows = n
		}
	}
	return nil
}

// executeToWarehouse builds a new warehouse file beside the old one from
// the lake, then renames it over the old one.
func (p *RebuildPlan) executeToWarehouse(ctx context.Context) error {
	o := p.Options
	lockDB, err := openDuckDB(ctx, "")
	if err != nil {
		return err
	}
	defer lockDB.close()
	// Hold a read lock on the old file while building, so that no run
	// starts writing to a warehouse about to be replaced.
	release, _, err := lockDB.lockWarehouse(ctx, o.Warehouse)
	if err != nil {
		return err
	}
	defer release()

	tmp := o.Warehouse + ".rebuild-" + randomSuffix() + ".tmp"
	defer func() {
		os.Remove(tmp)
		os.Remove(tmp + ".wal")
	}()
	db, err := openDuckDB(ctx, tmp)
	if err != nil {
		return err
	}
	if err := p.restoreTables(ctx, db); err != nil {
		db.close()
		return err
	}
	// A lake of an earlier release restores a warehouse of its layout:
	// bring it up to date before it replaces anything.
	nw := &Warehouse{path: tmp, db: db.db, conn: db.conn}
	if err := nw.readIdentity(ctx); err != nil {
		db.close()
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := nw.Upgrade(ctx, o.Tables); err != nil {
		db.close()
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := db.exec(ctx, "CHECKPOINT"); err != nil {
		db.close()
		return fmt.Errorf("rebuild: checkpoint: %w", err)
	}
	if err := db.close(); err != nil {
		return fmt.Errorf("rebuild: close %s: %w", tmp, err)
	}
	release()
	// The old file's write-ahead log belongs to the old file: left beside
	// the new one it would be replayed into it.
	if err := os.Remove(o.Warehouse + ".wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rebuild: remove old write-ahead log: %w", err)
	}
	if err := replaceFile(tmp, o.Warehouse); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return nil
}

// restoreTables creates and fills every table of the plan, then the views.
func (p *RebuildPlan) restoreTables(ctx context.Context, db *duckDB) error {
	for _, t := range p.Tables {
		if t.read != nil {
			if err := restoreStream(ctx, db, t, p.Options.Tables); err != nil {
				return fmt.Errorf("rebuild: %s: %w", t.Name, err)
			}
			continue
		}
		src := ""
		if len(t.files) > 0 {
			// Hive partitioning stays off: the key in the path must not
			// become a column of the table.
			src = fmt.Sprintf("read_parquet([%s], hive_partitioning = false)", sqlStrings(t.files))
		}
		create := t.sql
		if create == "" {
			if src == "" {
				continue
			}
			create = fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s LIMIT 0", ident(t.Name), src)
		}
		if err := createTable(ctx, db.conn, create, codedTable(t.Name, p.Options.Tables)); err != nil {
			return fmt.Errorf("rebuild: create %s: %w", t.Name, err)
		}
		if src == "" {
			continue
		}
		if err := db.exec(ctx, fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM %s", ident(t.Name), src)); err != nil {
			return fmt.Errorf("rebuild: fill %s: %w", t.Name, err)
		}
	}
	// Views may depend on each other: retry until no more succeed.
	pending := p.views
	for len(pending) > 0 {
		var failed []string
		var lastErr error
		for _, v := range pending {
			if err := db.exec(ctx, v); err != nil {
				failed, lastErr = append(failed, v), err
			}
		}
		if len(failed) == len(pending) {
			return fmt.Errorf("rebuild: %d views cannot be recreated: %w", len(failed), lastErr)
		}
		pending = failed
	}
	return nil
}

// planFromWarehouse reads the warehouse (read-only) and the lake it would
// replace.
func planFromWarehouse(ctx context.Context, o RebuildOptions) (*RebuildPlan, error) {
	w, err := OpenReadOnly(ctx, o.Warehouse)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	meta, err := hive.ReadLakeMeta(o.Lake)
	if err != nil {
		return nil, err
	}
	given := map[string]load.Table{}
	for _, t := range o.Tables {
		given[t.Name] = t
	}
	defs, err := w.TableDefs(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuild: %w", err)
	}
	p := &RebuildPlan{Options: o}
	for name := range defs {
		t := PlanTable{Name: name, Bookkeeping: strings.HasPrefix(name, load.BookkeepingPrefix)}
		if g, ok := given[name]; ok {
			t.Partition, t.key = g.Partition, g.Key
		} else if !t.Bookkeeping {
			t.Partition = meta.Tables[name].Partition
		}
		if t.Partition != nil && t.Partition.Column == "" {
			t.Partition = nil
		}
		if err := w.countRows(ctx, &t); err != nil {
			return nil, err
		}
		p.Tables = append(p.Tables, t)
	}
	sortPlanTables(p.Tables)
	p.Replaces = "nothing: " + o.Lake + " will be created"
	if ents, err := os.ReadDir(o.Lake); err == nil {
		restored := map[string]bool{hive.MetaDir: true}
		for _, t := range p.Tables {
			restored[t.Name] = true
		}
		n := 0
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != hive.MetaDir {
				n++
				if !restored[e.Name()] {
					p.Drops = append(p.Drops, e.Name())
				}
			}
		}
		p.Replaces = fmt.Sprintf("lake %s (%d tables)", o.Lake, n)
	}
	return p, nil
}

// countRows fills t's row counts from the warehouse: per lake folder (see
// PlanPartition) for a data table.
func (w *Warehouse) countRows(ctx context.Context, t *PlanTable) error {
	if t.Bookkeeping {
		err := w.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+ident(t.Name)).Scan(&t.Rows)
		if err != nil {
			return fmt.Errorf("rebuild: count %s: %w", t.Name, err)
		}
		return nil
	}
	folder := fmt.Sprintf("'%s=' || %s", hive.SourceKey, ident(load.DataSource))
	if w.version < 2 {
		folder = "'(upgraded on execute)'" // no data_source yet
	}
	if t.Partition != nil {
		folder += fmt.Sprintf(" || '/%s=' || %s", t.Partition.Name, partitionExpr(t.Partition))
	}
	rows, err := w.conn.QueryContext(ctx, fmt.Sprintf("SELECT %s, count(*) FROM %s GROUP BY 1 ORDER BY 1", folder, ident(t.Name)))
	if err != nil {
		return fmt.Errorf("rebuild: count %s: %w", t.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var pp PlanPartition
		if err := rows.Scan(&pp.Value, &pp.Rows); err != nil {
			return fmt.Errorf("rebuild: count %s: %w", t.Name, err)
		}
		t.Partitions = append(t.Partitions, pp)
		t.Rows += pp.Rows
	}
	return rows.Err()
}

// executeToLake writes the whole lake from the warehouse into a new folder
// beside the old one and swaps it in.
func (p *RebuildPlan) executeToLake(ctx context.Context) error {
	o := p.Options
	if err := upgradeFile(ctx, o.Warehouse, o.Tables); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	w, err := OpenReadOnly(ctx, o.Warehouse)
	if err != nil {
		return err
	}
	defer w.Close()
	var tables []load.Table
	for _, t := range p.Tables {
		if !t.Bookkeeping {
			tables = append(tables, load.Table{Name: t.Name, Key: t.key, Partition: t.Partition})
		}
	}
	if o.Target != nil {
		if err := o.Target.Publish(ctx, w, load.Identity{Path: w.path, ID: w.id}, tables, nil); err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
		return nil
	}
	lake := filepath.Clean(o.Lake)
	if err := os.MkdirAll(filepath.Dir(lake), 0o755); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	tmp := filepath.Join(filepath.Dir(lake), "."+filepath.Base(lake)+".rebuild-"+randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := hive.Open(tmp).Publish(ctx, w, load.Identity{Path: w.path, ID: w.id}, tables, nil); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	if err := hive.SwapDir(tmp, lake); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return nil
}

// sortPlanTables orders data tables before bookkeeping ones, each by name.
func sortPlanTables(ts []PlanTable) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].Bookkeeping != ts[j].Bookkeeping {
			return !ts[i].Bookkeeping
		}
		return ts[i].Name < ts[j].Name
	})
}

// duckDB is a bare DuckDB connection: an in-memory scratch database or a
// warehouse file being built, without the bookkeeping tables Open creates.
type duckDB struct {
	db      *sql.DB
	conn    *sql.Conn
	release func() error
}

// openDuckDB opens the file at path as a warehouse is opened (openFile),
// or an in-memory database for "".
func openDuckDB(ctx context.Context, path string) (*duckDB, error) {
	if path == "" {
		db, conn, err := connect(ctx, "", nil)
		if err != nil {
			return nil, fmt.Errorf("rebuild: open a scratch database: %w", err)
		}
		return &duckDB{db: db, conn: conn, release: db.Close}, nil
	}
	db, conn, release, err := openFile(ctx, path, false)
	if err != nil {
		return nil, fmt.Errorf("rebuild: open %s: %w", path, err)
	}
	return &duckDB{db: db, conn: conn, release: release}, nil
}

func (d *duckDB) exec(ctx context.Context, q string) error {
	_, err := d.conn.ExecContext(ctx, q)
	return err
}

func (d *duckDB) close() error {
	return errors.Join(d.conn.Close(), d.release())
}

// lockWarehouse attaches the warehouse file read-only, which holds a shared
// lock on it until release is called, and lists its tables. A missing or
// unreadable (say, corrupt) file gives no tables and no error: replacing
// it is the point of a rebuild. A file another process holds gives
// ErrInUse.
func (d *duckDB) lockWarehouse(ctx context.Context, path string) (release func(), tables []string, err error) {
	release = func() {}
	if !exists(path) {
		return release, nil, nil
	}
	if err := d.exec(ctx, "ATTACH "+sqlString(path)+" AS fhirlake_old (READ_ONLY)"); err != nil {
		if isLockError(err) {
			return release, nil, inUse(path, err)
		}
		return release, nil, nil
	}
	done := false
	release = func() {
		if !done {
			done = true
			d.exec(context.WithoutCancel(ctx), "DETACH fhirlake_old")
		}
	}
	rows, err := d.conn.QueryContext(ctx, "SELECT table_name FROM duckdb_tables() WHERE database_name = 'fhirlake_old' AND schema_name = 'main' ORDER BY 1")
	if err != nil {
		release()
		return func() {}, nil, fmt.Errorf("rebuild: list tables of %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			release()
			return func() {}, nil, fmt.Errorf("rebuild: list tables of %s: %w", path, err)
		}
		tables = append(tables, s)
	}
	return release, tables, rows.Err()
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// replaceFile puts next, a DuckDB file closed after its checkpoint, in
// place of dst, so that a crash leaves one or the other whole: it refuses
// a next whose WAL is left (the rows in it would be lost), syncs next,
// renames it over dst and syncs dst's folder. Rebuild and compaction
// replace the warehouse this way.
func replaceFile(next, dst string) error {
	if exists(next + ".wal") {
		return fmt.Errorf("%s.wal remains after its checkpoint", next)
	}
	if err := syncFile(next); err != nil {
		return err
	}
	if err := os.Rename(next, dst); err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// syncFile fsyncs a file written by DuckDB.
func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// upgradeFile upgrades the warehouse file at path when it has an earlier
// layout (see Warehouse.Upgrade).
func upgradeFile(ctx context.Context, path string, tables []load.Table) error {
	r, err := OpenReadOnly(ctx, path)
	if err != nil {
		return err
	}
	old := r.Version() < load.SchemaVersion
	r.Close()
	if !old {
		return nil
	}
	w, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Upgrade(ctx, tables)
}

func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// restoreStream creates table t from its CREATE statement (or, without
// one, from the stream's columns), with the coded columns of the view's
// table among tables, and fills it from t's record stream.
func restoreStream(ctx context.Context, db *duckDB, t PlanTable, tables []load.Table) error {
	rr, err := t.read(ctx)
	if err != nil {
		return err
	}
	defer rr.Release()
	ar, err := connArrow(db.conn)
	if err != nil {
		return fmt.Errorf("arrow interface: %w", err)
	}
	view := "fhirlake_restore_" + t.Name
	release, err := ar.RegisterView(readerOf(rr), view)
	if err != nil {
		return err
	}
	defer release()
	create := t.sql
	if create == "" {
		create = fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s LIMIT 0", ident(t.Name), ident(view))
	}
	if err := createTable(ctx, db.conn, create, codedTable(t.Name, tables)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if err := db.exec(ctx, fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM %s", ident(t.Name), ident(view))); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	return db.exec(ctx, "DROP VIEW IF EXISTS "+ident(view))
}

// readerOf makes a load.RecordReader an arrow one, for DuckDB.
func readerOf(rr load.RecordReader) array.RecordReader {
	if ar, ok := rr.(array.RecordReader); ok {
		return ar
	}
	return &arrowReader{rr}
}

type arrowReader struct{ load.RecordReader }

func (a *arrowReader) Retain()                   {}
func (a *arrowReader) Release()                  {}
func (a *arrowReader) Record() arrow.RecordBatch { return a.RecordBatch() }
