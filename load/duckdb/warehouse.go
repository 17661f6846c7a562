//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/fhirlake/fhirlake/internal/private"
	"github.com/fhirlake/fhirlake/load"
)

// Warehouse is an open DuckDB warehouse file. It holds one connection: all
// writes of a run go through it, one statement at a time.
type Warehouse struct {
	path    string
	db      *sql.DB
	conn    *sql.Conn
	release func() error // of the instance (openFile)
	ar      *duckdb.Arrow
	version int    // layout version, see Version
	id      string // see ID
	// discarding counts the stage folders of finished runs still being
	// removed (discardStage); Close waits for them.
	discarding sync.WaitGroup
}

// Open opens (creating if needed) the DuckDB database at path. A new
// warehouse gets the bookkeeping tables of load.SchemaVersion and an id; an
// existing one is opened as it is: one written by an earlier release
// (Version() < load.SchemaVersion) must be brought up to date by Upgrade before
// anything is loaded into it.
func Open(ctx context.Context, path string) (*Warehouse, error) {
	// The file holds PHI: one an earlier release made world-readable is
	// narrowed (new files are private by the process umask, see
	// internal/private).
	if err := private.Tighten(path, path+".wal"); err != nil {
		return nil, fmt.Errorf("open warehouse %s: %w", path, err)
	}
	db, conn, release, err := openFile(ctx, path, false)
	if err != nil {
		return nil, openError(path, err)
	}
	w, err := attach(path, db, conn, release)
	if err != nil {
		return nil, err
	}
	if err := w.init(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// init reads the warehouse's layout version and id, creating the
// bookkeeping tables of a new warehouse.
func (w *Warehouse) init(ctx context.Context) error {
	if err := w.readIdentity(ctx); err != nil {
		return err
	}
	if w.version != 0 {
		return nil
	}
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("create bookkeeping tables: %w", err)
	}
	err := w.exec(ctx, bookkeepingDDL)
	if err == nil {
		err = w.exec(ctx, `INSERT INTO fhirlake_warehouse VALUES ('id', uuid()::VARCHAR), ('schema_version', ?)`, fmt.Sprint(load.SchemaVersion))
	}
	if err == nil {
		err = w.exec(ctx, "COMMIT")
	}
	if err != nil {
		w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("create bookkeeping tables: %w", err)
	}
	return w.readIdentity(ctx)
}

// readIdentity sets w.version and w.id from fhirlake_warehouse: version 1
// for a warehouse of the first layout (it has tables but no
// fhirlake_warehouse), 0 for an empty database.
func (w *Warehouse) readIdentity(ctx context.Context) error {
	names, err := w.queryStrings(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE NOT temporary AND schema_name = 'main' AND database_name = current_database()`)
	if err != nil {
		return fmt.Errorf("read warehouse layout: %w", err)
	}
	switch {
	case slices.Contains(names, "fhirlake_warehouse"):
		var version string
		err := w.conn.QueryRowContext(ctx, `SELECT max(value) FILTER (WHERE key = 'id'), max(value) FILTER (WHERE key = 'schema_version')
			FROM fhirlake_warehouse`).Scan(&w.id, &version)
		if err != nil {
			return fmt.Errorf("read warehouse identity: %w", err)
		}
		if w.version, err = strconv.Atoi(version); err != nil {
			return fmt.Errorf("read warehouse identity: schema version %q: %w", version, err)
		}
		if w.version > load.SchemaVersion {
			return fmt.Errorf("%w: %s has layout %d, this release knows up to %d; use a newer fhirlake", load.ErrNewerWarehouse, w.path, w.version, load.SchemaVersion)
		}
	case len(names) > 0:
		// Tables without fhirlake_warehouse: the first release's layout.
		w.version, w.id = 1, ""
	default:
		w.version, w.id = 0, ""
	}
	return nil
}

// Version is the warehouse's layout: load.SchemaVersion, or 1 for a warehouse
// of the first release (rows not keyed by source) that Upgrade converts.
func (w *Warehouse) Version() int { return w.version }

// ID is the warehouse's identity, a UUID made when it was created (or
// upgraded). The lake records it, so a lake is never overwritten by
// another warehouse's run. "" before Upgrade of a version 1 warehouse.
func (w *Warehouse) ID() string { return w.id }

// OpenReadOnly opens an existing warehouse for reading only (status,
// rebuild, ad-hoc queries); it creates nothing. Another process holding
// the file read-write is ErrInUse.
func OpenReadOnly(ctx context.Context, path string) (*Warehouse, error) {
	if !exists(path) {
		return nil, fmt.Errorf("open warehouse: no warehouse at %s", path)
	}
	db, conn, release, err := openFile(ctx, path, true)
	if err != nil {
		return nil, openError(path, err)
	}
	w, err := attach(path, db, conn, release)
	if err != nil {
		return nil, err
	}
	if err := w.readIdentity(ctx); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// openError explains a failed connect: ErrInUse when another process holds
// the file.
func openError(path string, err error) error {
	if isLockError(err) {
		return inUse(path, err)
	}
	return fmt.Errorf("open warehouse %s: %w", path, err)
}

// attach wraps an open connection as a Warehouse with its Arrow interface;
// release is openFile's. Its path is absolute: the lake records it, for
// messages read elsewhere.
func attach(path string, db *sql.DB, conn *sql.Conn, release func() error) (*Warehouse, error) {
	if abs, err := filepath.Abs(path); err == nil && path != "" && !strings.HasPrefix(path, ":memory:") {
		path = abs
	}
	w := &Warehouse{path: path, db: db, conn: conn, release: release}
	ar, err := connArrow(conn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open arrow interface: %w", err)
	}
	w.ar = ar
	return w, nil
}

// MemoryEnv names the environment variable that bounds the memory DuckDB
// may use for a warehouse (its memory_limit, e.g. 2GB). Beyond it DuckDB
// spills to a temporary folder beside the file (WAREHOUSE.tmp), so a run's
// peak memory does not grow with its input.
const MemoryEnv = "FHIRLAKE_WAREHOUSE_MEMORY"

// defaultMemoryMB is the bound when MemoryEnv is unset, in DuckDB's MB
// (10^6 bytes; a variable for tests). A full load of a 10 GB export took
// as long with 256MB, 384MB or 512MB (69 s) and peaked at 746, 793 and
// 938 MB of RSS; the rest of a run (transform batches, Go's heap, the
// binary, DuckDB's allocations outside its buffer pool) takes about 400
// MB. A large incremental run needs more than 256MB (see outOfMemory).
var defaultMemoryMB int64 = 384

// blockSize is the block size of the warehouse files fhirlake creates,
// a quarter of DuckDB's default. Each checkpoint writes the row groups a
// run appended to a table into blocks of their own, so with 256 kB
// blocks a run of a few thousand resources took a block per table it
// touched, mostly empty: sixteen runs of different 1% changes took a
// 1 GB export's warehouse from 41.0 MB to 62.5 MB. With 64 kB blocks the
// full load writes 37.0 MB (1.10 times the DuckDB-native tables, against
// 1.22) and the same sixteen runs end at 50.5 MB; the full load is as
// fast. Smaller blocks cost more than they save: 32 kB wrote 50.7 MB,
// 16 kB 61.1 MB (DuckDB's segments are bounded by the block). A file
// keeps the block size it was created with, so this applies to new
// warehouses, and to a file Compact rewrites. DuckDB 1.1 and later open
// such files.
const blockSize = 64 << 10

// settings sets up a new instance on its first connection: DuckDB's
// memory bounded (MemoryEnv), and the settings fhirlake relies on.
func settings(ctx context.Context, conn *sql.Conn) error {
	limit := memoryLimit()
	if _, err := conn.ExecContext(ctx, "SET memory_limit = "+sqlString(limit)); err != nil {
		return fmt.Errorf("%s=%q: %w", MemoryEnv, limit, err)
	}
	// DuckDB's sessions take the machine's time zone, in which a timestamp
	// read through the Arrow interface is labelled (the Iceberg lake
	// refused every timestamp column labelled other than UTC) and turned
	// into dates and years: every connection of fhirlake's works in UTC.
	if _, err := conn.ExecContext(ctx, "SET GLOBAL TimeZone = 'UTC'"); err != nil {
		return fmt.Errorf("time zone: %w", err)
	}
	// The checkpoint of a commit merges neighbouring row groups whose
	// rows, once the commit's deletes are taken out, fit in fewer: the
	// parallel insert of a whole load leaves a partly filled row group
	// in the middle of a table, beside which a 1% run's deletes free
	// enough room, so the checkpoint rewrote three or four of a big
	// table's row groups at every run. Compact reclaims deleted rows
	// instead, when they are worth it. A 1% run of a 10 GB export
	// committed in 0.59 s without these merges against 1.69 s with them,
	// and two such runs left a 384 MB file against 420 MB (the rewritten
	// row groups' old blocks stay free in the file).
	if _, err := conn.ExecContext(ctx, "SET GLOBAL max_vacuum_tasks = 0"); err != nil {
		return fmt.Errorf("checkpoint settings: %w", err)
	}
	return nil
}

// outOfMemory turns DuckDB's out-of-memory error into load.ErrOutOfMemory,
// naming the setting to raise; any other error is returned as it is.
// DuckDB spills what a query builds, but holds a transaction's changes in
// memory until it commits: a 10 GB warehouse's run of 392,000 changed
// resources committed with the default 384MB and failed with 256MB.
// DuckDB's message names settings of its own (threads, insertion order)
// that a user of fhirlake cannot set, so only its first line is kept.
func outOfMemory(err error) error {
	if err == nil || !strings.Contains(err.Error(), "Out of Memory Error") {
		return err
	}
	first, _, _ := strings.Cut(err.Error(), "\n")
	return fmt.Errorf("%w: raise %s (now %s) and the task's memory with it, then rerun: %s", load.ErrOutOfMemory, MemoryEnv, memoryLimit(), first)
}

// memoryLimit is DuckDB's memory_limit: MemoryEnv, or defaultMemoryMB.
func memoryLimit() string {
	if limit := os.Getenv(MemoryEnv); limit != "" {
		return limit
	}
	return strconv.FormatInt(defaultMemoryMB, 10) + "MB"
}

// isLockError recognises DuckDB's "Could not set lock on file" error.
func isLockError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not set lock") || strings.Contains(s, "Conflicting lock")
}

func inUse(path string, err error) error {
	return fmt.Errorf("%w: %s is open elsewhere (a running fhirlake run, or a DuckDB client); stop it and retry: %w", load.ErrInUse, path, err)
}

// Close releases the connection and the file's instance, which closes
// with its last user (openFile).
func (w *Warehouse) Close() error {
	w.discarding.Wait()
	var errs []error
	if w.conn != nil {
		errs = append(errs, w.conn.Close())
	}
	if w.release != nil { // nil after a compaction that could not open the file again
		errs = append(errs, w.release())
	}
	return errors.Join(errs...)
}

// Path is the database file.
func (w *Warehouse) Path() string { return w.path }

// Query runs a read-only query on the warehouse connection.
func (w *Warehouse) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return w.conn.QueryContext(ctx, query, args...)
}

// Exec runs a statement on the warehouse connection (for maintenance and
// tests; loads go through Begin and Commit).
func (w *Warehouse) Exec(ctx context.Context, query string, args ...any) error {
	return w.exec(ctx, query, args...)
}

// unordered runs fn, the bulk writes of a commit or a lake, with DuckDB
// free to write rows in any order: no reader needs a table's or a lake
// file's rows in the order they were staged, and keeping it serialises
// much of an INSERT ... SELECT or a COPY. A full load of a 1 GB export:
// 8.5 to 9.4 s against 9.4 to 9.7 s (load stage 5.2-5.5 s against
// 6.2-6.4 s; three alternating runs each), peak RSS 650-750 MB against
// 530-640 MB; of a 4 GB export 34.5 s against 39.7 s, 839 MB against
// 771 MB. Queries (a user's, the analytics views) keep the default.
func (w *Warehouse) unordered(ctx context.Context, fn func() error) error {
	return unordered(ctx, w.conn, fn)
}

// unordered is Warehouse.unordered on the connection conn, which alone it
// changes (a plain SET of the setting is global: it would also reach
// another connection's query, and its RESET would undo another's SET).
func unordered(ctx context.Context, conn *sql.Conn, fn func() error) error {
	if _, err := conn.ExecContext(ctx, "SET SESSION preserve_insertion_order = false"); err != nil {
		return fmt.Errorf("bulk write: %w", err)
	}
	err := fn()
	if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "RESET SESSION preserve_insertion_order"); rerr != nil && err == nil {
		err = fmt.Errorf("bulk write: %w", rerr)
	}
	return err
}

func (w *Warehouse) exec(ctx context.Context, query string, args ...any) error {
	_, err := w.conn.ExecContext(ctx, query, args...)
	return err
}

// Watermark returns the transaction time up to which source and scope are
// loaded for all of types: the oldest of their watermarks. ok is false
// when any type has none (the next run must be a full export).
func (w *Warehouse) Watermark(ctx context.Context, source, scope string, types []string) (t time.Time, ok bool, err error) {
	if len(types) == 0 {
		return time.Time{}, false, nil
	}
	var n int
	var min sql.NullTime
	err = w.conn.QueryRowContext(ctx, `SELECT count(*), min(transaction_time) FROM fhirlake_watermarks
		WHERE source = ? AND scope = ? AND list_contains(?, resource_type)`, source, scope, types).Scan(&n, &min)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read watermark: %w", err)
	}
	if n < len(types) || !min.Valid {
		return time.Time{}, false, nil
	}
	return min.Time.UTC(), true, nil
}

// CommittedJobs returns which of jobs (Run.Job values) a committed or
// rejected run recorded: their data are in the warehouse (or were
// refused), so their downloads and server jobs are no longer needed.
func (w *Warehouse) CommittedJobs(ctx context.Context, jobs []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(jobs) == 0 || w.version < 2 { // version 1 recorded no jobs
		return out, nil
	}
	// A run that loaded several exports keeps their jobs in one value
	// (load.JobsText).
	got, err := w.queryStrings(ctx, `SELECT DISTINCT j FROM (SELECT unnest(string_split(job, ' ')) AS j FROM fhirlake_runs WHERE job IS NOT NULL)
		WHERE list_contains(?, j)`, jobs)
	if err != nil {
		return nil, fmt.Errorf("read committed jobs: %w", err)
	}
	for _, j := range got {
		out[j] = true
	}
	return out, nil
}

// queryStrings runs a query whose rows are one string each.
func (w *Warehouse) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	return connStrings(ctx, w.conn, q, args...)
}

// connArrow is the Arrow interface of the connection conn.
func connArrow(conn *sql.Conn) (ar *duckdb.Arrow, err error) {
	err = conn.Raw(func(dc any) (err error) {
		ar, err = duckdb.NewArrowFromConn(dc.(driver.Conn))
		return err
	})
	return ar, err
}

// connStrings is queryStrings on the connection conn.
func connStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TableRows returns the row count of each named table that exists.
func (w *Warehouse) TableRows(ctx context.Context, tables []string) (map[string]int64, error) {
	out := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := w.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+ident(t)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t, err)
		}
		out[t] = n
	}
	return out, nil
}

// bookkeepingDDL creates the bookkeeping tables of a new warehouse.
const bookkeepingDDL = `
CREATE TABLE fhirlake_warehouse (
	key   VARCHAR PRIMARY KEY,
	value VARCHAR NOT NULL
);
CREATE TABLE fhirlake_runs (
	run_id           VARCHAR PRIMARY KEY,
	source           VARCHAR NOT NULL,
	scope            VARCHAR NOT NULL,
	started_at       TIMESTAMPTZ NOT NULL,
	finished_at      TIMESTAMPTZ NOT NULL,
	status           VARCHAR NOT NULL,
	since            TIMESTAMPTZ,
	transaction_time TIMESTAMPTZ,
	resources        BIGINT NOT NULL,
	skipped_older    BIGINT NOT NULL,
	deleted          BIGINT NOT NULL,
	rejects          BIGINT NOT NULL,
	watermark_types  VARCHAR[] NOT NULL,
	rows_per_table   MAP(VARCHAR, BIGINT) NOT NULL,
	job              VARCHAR
);
` + resourcesDDL + `
CREATE TABLE fhirlake_watermarks (
	source           VARCHAR NOT NULL,
	scope            VARCHAR NOT NULL,
	resource_type    VARCHAR NOT NULL,
	transaction_time TIMESTAMPTZ NOT NULL,
	run_id           VARCHAR NOT NULL,
	PRIMARY KEY (source, scope, resource_type)
);
` + deletedDDL + rejectsDDL + personDDL + exportErrorsDDL

// exportErrorsDDL records, per run, the issues of the export's error[]
// files by resource type and severity: what the server says went wrong,
// which also holds those types' watermarks back.
const exportErrorsDDL = `
CREATE TABLE IF NOT EXISTS fhirlake_export_errors (
	run_id        VARCHAR NOT NULL,
	source        VARCHAR NOT NULL,
	resource_type VARCHAR,
	severity      VARCHAR NOT NULL,
	issues        BIGINT NOT NULL,
	codes         VARCHAR[] NOT NULL
);
`

// The bookkeeping tables whose layout changed in version 2 (Upgrade
// recreates them). fhirlake_resources holds one row per (source,
// resource_type, id) without a primary-key index, which would cost a tenth
// of the warehouse: the commit deletes the versions it replaces before it
// inserts them from fhirlake_accepted, one per resource (TestVersionIndexUnique).
// content_hash came in version 3. Its source and resource_type hold a few
// values each, dictionary-encoded like the tables' coded columns (see
// columnCompression).
const (
	resourcesDDL = `
CREATE TABLE fhirlake_resources (
	source            VARCHAR NOT NULL USING COMPRESSION dictionary,
	resource_type     VARCHAR NOT NULL USING COMPRESSION dictionary,
	id                VARCHAR NOT NULL,
	meta_last_updated TIMESTAMPTZ,
	version_id        VARCHAR,
	run_id            VARCHAR NOT NULL,
	content_hash      BIGINT
);
`
	deletedDDL = `
CREATE TABLE fhirlake_deleted (
	run_id           VARCHAR NOT NULL,
	source           VARCHAR NOT NULL,
	resource_type    VARCHAR NOT NULL,
	id               VARCHAR NOT NULL,
	transaction_time TIMESTAMPTZ
);
`
	rejectsDDL = `
CREATE TABLE fhirlake_rejects (
	run_id        VARCHAR NOT NULL,
	source        VARCHAR NOT NULL,
	file          VARCHAR NOT NULL,
	line          BIGINT NOT NULL,
	resource_type VARCHAR,
	resource_id   VARCHAR,
	column_name   VARCHAR,
	reason        VARCHAR NOT NULL
);
`
)

// ident quotes a table or column name. Names come from compiled
// ViewDefinitions, which already restrict them; quoting is belt and braces.
func ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// sqlString quotes a string literal (for paths in COPY, which takes no
// parameters).
func sqlString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// sqlStrings quotes each of vals as sqlString does, comma-separated: a
// list written into a COPY or a read_parquet call.
func sqlStrings(vals []string) string {
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = sqlString(v)
	}
	return strings.Join(quoted, ", ")
}

var (
	_ load.Warehouse = (*Warehouse)(nil)
	_ load.Loader    = (*Loader)(nil)
)

// init makes this the driver of load.Open: the DuckDB file warehouse.
func init() {
	load.RegisterWarehouse(func(ctx context.Context, path string, readOnly bool) (load.Warehouse, error) {
		var w *Warehouse
		var err error
		if readOnly {
			w, err = OpenReadOnly(ctx, path)
		} else {
			w, err = Open(ctx, path)
		}
		if err != nil {
			return nil, err
		}
		return w, nil
	})
}

// copyMemory is DuckDB's memory_limit while whole tables are copied out
// of the warehouse (LimitMemoryForCopy), with the default bound: reads of
// rowid slices need little, and a smaller cache leaves room for the lake
// writer's buffers. A full load of a 10 GB export into an Iceberg lake
// peaked at 841-899 MB with it (and Go's free heap returned after each
// table), against 944-1027 MB (four runs each, alternating; the same time
// within this host's noise).
const copyMemory = "256MB"

// LimitMemoryForCopy lowers DuckDB's memory_limit to copyMemory when the
// bound is the default (MemoryEnv unset: a bound a user set holds
// throughout), and returns the function that puts it back.
func (w *Warehouse) LimitMemoryForCopy(ctx context.Context) (restore func(), err error) {
	if os.Getenv(MemoryEnv) != "" {
		return func() {}, nil
	}
	if err := w.exec(ctx, "SET memory_limit = "+sqlString(copyMemory)); err != nil {
		return nil, fmt.Errorf("memory limit: %w", err)
	}
	return func() {
		w.exec(context.WithoutCancel(ctx), "SET memory_limit = "+sqlString(memoryLimit()))
	}, nil
}
