package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Warehouse is the store of record of the committed tables and their
// bookkeeping (runs, watermarks, the resource index, deletes, rejects, the
// person crosswalk). One process writes it at a time. Implementations:
// load/duckdb (the DuckDB file) and, for tests, Memory.
type Warehouse interface {
	// Path is where the warehouse lives (a file, a DSN), for messages.
	Path() string
	// ID is the warehouse's identity, made when it was created; lakes
	// record it. "" for a warehouse of an earlier layout before Upgrade.
	ID() string
	// Version is the warehouse's layout version (SchemaVersion when
	// current).
	Version() int
	// Upgrade converts a warehouse of an earlier layout, in one
	// transaction; tables describe the current views. A current warehouse
	// is left alone.
	Upgrade(ctx context.Context, tables []Table) error
	// Begin starts staging one run of source into tables.
	Begin(ctx context.Context, source string, tables []Table) (Loader, error)
	// Watermark is the transaction time up to which source and scope are
	// loaded for all of types; ok is false when any type has none.
	Watermark(ctx context.Context, source, scope string, types []string) (t time.Time, ok bool, err error)
	// CommittedJobs says which of jobs (Run.Job values) a committed or
	// rejected run recorded.
	CommittedJobs(ctx context.Context, jobs []string) (map[string]bool, error)
	// ApplySQL (re)creates the analytics views of fsys (*.sql) and
	// returns an error for each one that could not be created.
	ApplySQL(ctx context.Context, fsys fs.FS) []error
	// TableRows counts the rows of each named table.
	TableRows(ctx context.Context, tables []string) (map[string]int64, error)
	// Compact reclaims the space of the rows runs replaced or deleted,
	// when enough of it has piled up or when force says so, changing no
	// row, and says what it did; on error, no row changed.
	Compact(ctx context.Context, force bool) (Compaction, error)
	// Query runs a read-only SQL query (status, demo, ad-hoc reads).
	// A warehouse that speaks no SQL returns ErrNoSQL.
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	// Snapshot reads the committed state, for lake targets.
	Snapshot
	// Close releases the warehouse.
	Close() error
}

// Compaction is what Compact did: nothing (the zero value), or a rewrite
// of the warehouse file, which reclaimed the space of Tables' deleted
// rows and of the file's free blocks.
type Compaction struct {
	Rewritten bool
	Tables    []Compacted
	// Before and After are the sizes of the file, in bytes.
	Before, After int64
}

// Compacted is a table whose space Compact reclaimed: the rows it holds,
// and the deleted ones whose space it reclaimed.
type Compacted struct {
	Table   string
	Rows    int64
	Deleted int64
}

// Loader stages one run and commits it. It is safe for concurrent use
// (transform workers write batches from several goroutines). Exactly one
// of Commit, CommitRejected or Rollback ends it; Rollback after either is
// a no-op, so `defer l.Rollback(ctx)` is the usual pattern.
type Loader interface {
	// WriteBatch stages a batch of table (or of the Resources stream). It
	// does not keep rec.
	WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error
	// Reject records a reject of the run.
	Reject(ctx context.Context, r Reject) error
	// Delete stages tombstones, applied at commit before the run's rows.
	Delete(ctx context.Context, ts []Tombstone) error
	// MemberMatches stages the run's Payer-to-Payer matches.
	MemberMatches(ctx context.Context, ms []MemberMatch) error
	// NewValues returns the distinct staged values of table.column, and
	// of also, that the committed table does not hold for the run's
	// source, sorted.
	NewValues(ctx context.Context, table, column string, also []string) ([]string, error)
	// Duplicates returns, for each resource staged more than once, the
	// line of the version that wins.
	Duplicates(ctx context.Context) ([]Located, error)
	// Unstage drops the staged table rows of these resources (not their
	// Resources records), so that the winner can be staged again.
	Unstage(ctx context.Context, srcs []Located) error
	// Rejects is the number of rejects recorded so far.
	Rejects() int64
	// Commit replaces, in one transaction, every row of each resource the
	// run carried, applies its deletes and records the run.
	Commit(ctx context.Context, run Run) (Stats, error)
	// CommitRejected records the run as rejected, with its rejects and
	// none of its data.
	CommitRejected(ctx context.Context, run Run) error
	// Rollback abandons the run.
	Rollback(ctx context.Context)
}

// Snapshot is the committed state of a warehouse as a lake target reads
// it: the rows of one source of a table, whole or by partition, as Arrow
// or as Parquet files, and the definitions a rebuild needs. Its record
// streams may be open at once, from several goroutines: a lake may
// publish several tables at a time.
type Snapshot interface {
	// TableSources lists, sorted, the sources with rows in table.
	TableSources(ctx context.Context, table string) ([]string, error)
	// Records streams the rows of t of source, of the partitions vals
	// (every row of the source when vals is nil), in no particular order.
	Records(ctx context.Context, t Table, source string, vals []string) (RecordReader, error)
	// RecordsOf streams the rows of t of source whose resource (t.Key) is
	// one of ids, in no particular order. appended, when positive, is
	// Changes.Appended[t.Name] of the run that changed ids, the last one
	// committed: a Snapshot may look for the rows among those it inserted
	// last.
	RecordsOf(ctx context.Context, t Table, source string, ids []string, appended int64) (RecordReader, error)
	// WriteParquet writes the same rows as zstd Parquet: into the file
	// dst for an unpartitioned table, or for a partitioned one into the
	// new folder dst, one folder <t.Partition.Name>=<value>/ per partition
	// value holding one file. It returns the number of rows written.
	WriteParquet(ctx context.Context, t Table, source string, vals []string, dst string) (int64, error)
	// WriteTableParquet writes a whole table (a bookkeeping table, the
	// person crosswalk) into the file dst.
	WriteTableParquet(ctx context.Context, table, dst string) (int64, error)
	// TableRecords streams a whole table (a bookkeeping table, the person
	// crosswalk).
	TableRecords(ctx context.Context, table string) (RecordReader, error)
	// SourceRecords streams the rows of such a table whose column (source
	// or data_source) is one of sources.
	SourceRecords(ctx context.Context, table, column string, sources []string) (RecordReader, error)
	// RunIndex streams the rows of the version index (IndexTable) that the
	// run runID of source wrote: the versions it loaded. appended, when
	// positive, is Changes.Appended[IndexTable] of that run, the last one
	// committed: a Snapshot may look for the rows among those it inserted
	// last.
	RunIndex(ctx context.Context, source, runID string, appended int64) (RecordReader, error)
	// TableDefs maps every table, bookkeeping ones included, to its
	// CREATE statement.
	TableDefs(ctx context.Context) (map[string]string, error)
	// Views are the CREATE VIEW statements, in creation order.
	Views(ctx context.Context) ([]string, error)
	// Sources lists, sorted, the sources of the committed runs.
	Sources(ctx context.Context) ([]string, error)
	// RunIDs lists the ids of the committed runs.
	RunIDs(ctx context.Context) ([]string, error)
	// SourceRunIDs lists, sorted, the ids of the committed runs of source.
	SourceRunIDs(ctx context.Context, source string) ([]string, error)
}

// PartFilesWriter is a Snapshot that also writes rows as Parquet files
// laid out for a lake that partitions by source and year, as the Iceberg
// lake does: the DuckDB warehouse writes them with its own COPY, on every
// core, with a third of the CPU a lake's Go writer spends on them.
type PartFilesWriter interface {
	// WriteParquetParts writes the rows of t of sources into new Parquet
	// files under dir (which must not exist): one file per source and,
	// for a partitioned table, UTC year of the partition column (one for
	// the rows without a value). vals, when not nil, are partition values
	// as Changes.Tables names them: only the rows in those partitions are
	// written. Each file holds every column of t, under the Parquet field
	// id ids gives it (every column must have one; the elements of a list
	// column c have theirs under c+ElementID), in row groups of at
	// most rowGroup rows (0: the writer's own size). It returns the files'
	// paths, none when there are no rows.
	WriteParquetParts(ctx context.Context, t Table, sources, vals []string, ids map[string]int, rowGroup int, dir string) ([]string, error)
	// WriteSourceParts writes the rows of table (a bookkeeping table, the
	// person crosswalk) whose column is one of sources as
	// WriteParquetParts does, one file per source.
	WriteSourceParts(ctx context.Context, table, column string, sources []string, ids map[string]int, rowGroup int, dir string) ([]string, error)
	// WriteRunParts writes the rows RecordsOf gives (of t of source, of
	// the resources ids, which the last committed run appended, appended
	// of them) as WriteParquetParts does: a lake's merge-on-read append
	// of a run's rows.
	WriteRunParts(ctx context.Context, t Table, source string, ids []string, appended int64, fieldIDs map[string]int, rowGroup int, dir string) ([]string, error)
	// TableSchema is the Arrow schema of table's rows as the Snapshot's
	// readers give them, and of the columns of the files it writes.
	TableSchema(ctx context.Context, table string) (*arrow.Schema, error)
}

// ElementID ends the key of the field id of a list column's elements in
// the ids of PartFilesWriter.
const ElementID = ".element"

// RecordReader is an Arrow record stream that must be released.
type RecordReader interface {
	Schema() *arrow.Schema
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
	Release()
}

// ErrNoSQL means a warehouse cannot answer SQL (the in-memory one).
var ErrNoSQL = errors.New("this warehouse does not answer SQL")

// ErrNoDriver means the binary was built without the warehouse's driver.
var ErrNoDriver = errors.New("this fhirlake was built without a warehouse driver: build it with -tags duckdb_arrow (make build)")

// Opener opens the warehouse at path, read-write (creating it if needed)
// or, with readOnly, an existing one for reading.
type Opener func(ctx context.Context, path string, readOnly bool) (Warehouse, error)

var (
	mu     sync.Mutex // guards opener and lakes
	opener Opener
	lakes  = map[string]LakeOpener{}
	needs  = map[string]ChangeNeed{}
)

// RegisterWarehouse makes open the warehouse Open uses; a driver package
// (load/duckdb) calls it from init.
func RegisterWarehouse(open Opener) {
	mu.Lock()
	defer mu.Unlock()
	opener = open
}

// Open opens (creating if needed) the warehouse at path with the
// registered driver.
func Open(ctx context.Context, path string) (Warehouse, error) {
	return open(ctx, path, false)
}

// OpenReadOnly opens an existing warehouse for reading.
func OpenReadOnly(ctx context.Context, path string) (Warehouse, error) {
	return open(ctx, path, true)
}

func open(ctx context.Context, path string, readOnly bool) (Warehouse, error) {
	mu.Lock()
	o := opener
	mu.Unlock()
	if o == nil {
		return nil, ErrNoDriver
	}
	return o(ctx, path, readOnly)
}

// Lake is a target that mirrors the committed warehouse: the local
// Hive-style Parquet folder (load/lake/hive) or Apache Iceberg tables
// (load/lake/iceberg). Publishing happens after the warehouse commit; a
// lake that fell behind (a crash between the two) catches up on the next
// Publish.
type Lake interface {
	// Location is where the lake is, for messages (never with secrets).
	Location() string
	// Check refuses, before anything is exported, a lake where another
	// warehouse than the one with warehouseID at warehousePath ("" for
	// one not created yet) writes source ("": any of its sources):
	// ErrLakeMismatch.
	Check(ctx context.Context, warehousePath, warehouseID, source string) error
	// Publish makes the lake mirror snap after a commit whose changes are
	// given (nil: every table is rewritten).
	Publish(ctx context.Context, snap Snapshot, w Identity, tables []Table, changes *Changes) error
	// Close releases the lake's resources.
	Close() error
}

// Prefetcher is a Lake that can prepare the publish of a run's changes
// while the warehouse commits them (Run.Decided): what it prepares
// depends only on the lake and on which resources change, never on the
// rows the commit writes. Prefetch returns at once; Publish uses what it
// prepared when it still holds (the same keys, the lake as it was), and
// Close discards what no Publish used.
type Prefetcher interface {
	Lake
	Prefetch(ctx context.Context, source string, keys map[string][]string, tables []Table)
}

// LakeReader is a lake a warehouse can be restored from (rebuild --from
// lake) by streaming its tables, as the Iceberg lake is.
type LakeReader interface {
	// Contents lists the lake's tables, data and bookkeeping, with the
	// CREATE statement each was published with ("" when unknown).
	Contents(ctx context.Context) ([]LakeTableInfo, error)
	// ReadTable streams the current rows of a table.
	ReadTable(ctx context.Context, name string) (RecordReader, error)
}

// SourceLake is a lake that holds the state of each source it mirrors, so
// that a source's runs need not all come from one warehouse (the Iceberg
// lake: several machines, one catalog). A run leases its source for its
// duration; a warehouse that does not hold the source's latest published
// state (another warehouse published it since, or the warehouse is new)
// restores the source's rows from the lake before it exports anything.
type SourceLake interface {
	Lake
	LakeReader
	// Lease takes source for holder (a name that is the same for every
	// run of one warehouse on one machine) until Release, renewing it
	// every ttl/4; it is another run's after ttl without renewal.
	// ErrLeased, naming the holder, when another holds it.
	Lease(ctx context.Context, source, holder, info string, ttl time.Duration) (Lease, error)
	// Stale reports whether the warehouse with warehouseID ("" for a new
	// one) lacks the latest published state of source.
	Stale(ctx context.Context, warehouseID, source string) (bool, error)
	// ReadSource streams the rows of source in a table of Contents (for
	// a table without a source column, none).
	ReadSource(ctx context.Context, table, source string) (RecordReader, error)
	// Published lists the sources the lake holds and what it mirrors of
	// each.
	Published(ctx context.Context) (map[string]Published, error)
}

// Published is what a SourceLake holds of a source: the number of its
// committed runs, and the last of them.
type Published struct {
	Runs    int
	LastRun string
}

// Lease is a run's hold on its source in a SourceLake.
type Lease interface {
	// Lost is closed when the lease could not be renewed before it
	// expired: another run may hold the source now.
	Lost() <-chan struct{}
	// Release gives the source up.
	Release(ctx context.Context) error
}

// SourceRestorer is a warehouse that can replace a source's rows with a
// SourceLake's.
type SourceRestorer interface {
	// RestoreSource replaces, in one transaction, every row of source in
	// every table (data, bookkeeping and the person crosswalk) with the
	// lake's, creating the tables the warehouse lacks (tables, the
	// views' tables, say how those store their columns).
	RestoreSource(ctx context.Context, source string, from SourceLake, tables []Table) (RestoreStats, error)
}

// RestoreStats says what RestoreSource copied.
type RestoreStats struct {
	Tables int
	Rows   int64
}

// ErrLeased means another run holds the source's lease.
var ErrLeased = errors.New("source is leased by another run")

// ErrLeaseLost means a run's lease expired before it could be renewed.
var ErrLeaseLost = errors.New("the source's lease was lost")

// SourceColumn is the column that names a row's source in table: source
// in a bookkeeping table, data_source in a data table and the person
// crosswalk; "" for fhirlake_warehouse, which has none.
func SourceColumn(table string) string {
	switch {
	case table == "fhirlake_warehouse":
		return ""
	case strings.HasPrefix(table, BookkeepingPrefix):
		return "source"
	default:
		return DataSource
	}
}

// LakeTableInfo is one table of a LakeReader.
type LakeTableInfo struct {
	Name string
	SQL  string
	Rows int64
}

// Identity names the warehouse a lake mirrors.
type Identity struct {
	Path string
	ID   string
}

// LakeOptions configure a lake target.
type LakeOptions struct {
	// Warehouse is the warehouse's path: a catalog that is not named is
	// kept beside it.
	Warehouse string
	// Catalog is the Iceberg catalog: sqlite:PATH or postgres://...
	Catalog string
	// Namespace is the Iceberg namespace of the tables (default fhirlake).
	Namespace string
	// S3 settings, for an s3:// location.
	S3Endpoint  string
	S3PathStyle bool
	S3Region    string
}

// LakeOpener opens a lake of one format at location.
type LakeOpener func(ctx context.Context, location string, opts LakeOptions) (Lake, error)

// RegisterLake makes open the opener of lakes of format, whose Publish
// reads of a run's Changes what need says; the target packages call it
// from init.
func RegisterLake(format string, need ChangeNeed, open LakeOpener) {
	mu.Lock()
	defer mu.Unlock()
	lakes[format] = open
	needs[format] = need
}

// LakeNeeds says what a lake of format reads of a run's Changes:
// ChangesAll for a format not registered.
func LakeNeeds(format string) ChangeNeed {
	mu.Lock()
	defer mu.Unlock()
	return needs[format]
}

// OpenLake opens the lake of format at location.
func OpenLake(ctx context.Context, format, location string, opts LakeOptions) (Lake, error) {
	mu.Lock()
	o, ok := lakes[format]
	var formats []string
	for f := range lakes {
		formats = append(formats, f)
	}
	mu.Unlock()
	if !ok {
		sort.Strings(formats)
		return nil, fmt.Errorf("%w %q: this fhirlake knows %v", ErrLakeFormat, format, formats)
	}
	return o(ctx, location, opts)
}

// ErrLakeFormat means no lake target of the asked format is built in.
var ErrLakeFormat = errors.New("unknown lake format")
