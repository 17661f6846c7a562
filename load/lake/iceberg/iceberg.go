// Package iceberg is the scale-out lake target: one Apache Iceberg table
// per view (and per bookkeeping table) on a local folder or on S3, in an
// Iceberg SQL catalog (SQLite or PostgreSQL, the layout Spark's and
// Trino's JDBC catalogs open), so that Trino, Spark, Athena and DuckDB
// query the same tables with atomic commits and time travel.
//
// Each Publish commits each table a run changed in one catalog commit
// whose snapshots record the run id and the source. A run that names its
// changed resources commits merge-on-read: position-delete files for the
// rows it replaces or deletes, new data files for their current rows; a
// table whose delete files pile up is compacted (iceberg-go's bin-pack
// rewrite). Tables are partitioned by data_source (identity) and, where
// the view says so (the fhirlake/partition tag), by the year of a date
// column. Several warehouses, on several machines, may write one
// namespace: the lake holds each source's state, a warehouse restores a
// source another published since before it runs it (namespace.go), a run
// leases its source in the catalog database (lease.go), and a commit that
// loses a race with another writer's is redone on the fresh table
// (retry.go).
//
// The library is apache/iceberg-go; this package adds only what is ours:
// the table layout, the filters of a run's changes and the position
// deletes they make, found by reading key columns only (rowdelta.go), the
// catch-up of a lake that fell behind, and the sources' state and leases.
package iceberg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/io"
	_ "github.com/apache/iceberg-go/io/gocloud/s3" // s3:// locations
	"github.com/apache/iceberg-go/metrics"
	"github.com/apache/iceberg-go/table"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"golang.org/x/sync/errgroup"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/fhirlake/fhirlake/load"
)

// Format is the lake format name of this target (--lake-format).
const Format = "iceberg"

// catalogName is the name under which the SQL catalog keeps its entries
// (the catalog_name column of its tables).
const catalogName = "fhirlake"

// DefaultNamespace is the Iceberg namespace of the tables.
const DefaultNamespace = "fhirlake"

// propSQL, a table property, is the warehouse's CREATE statement of the
// table: what a rebuild from the lake creates.
const propSQL = "fhirlake.sql"

// Snapshot summary properties of each commit.
const (
	SummaryRunID  = "fhirlake.run-id"
	SummarySource = "fhirlake.source"
)

func init() {
	load.RegisterLake(Format, load.ChangesByKey, func(ctx context.Context, location string, opts load.LakeOptions) (load.Lake, error) {
		return Open(ctx, location, opts)
	})
}

// Lake is a set of Iceberg tables under one location, in one namespace of
// a SQL catalog.
type Lake struct {
	location string // file:///abs/path or s3://bucket/prefix, no trailing slash
	db       *sql.DB
	dialect  sqlcat.SupportedDialect
	cat      *sqlcat.Catalog
	ns       table.Identifier
	// retries counts commits retried after losing a race (CommitRetries);
	// reporterID is its key in counters.
	retries    atomic.Pointer[commitCounter]
	reporterID string
	// atHome is set once the catalog was found to keep the namespace's
	// tables under location (checkHome).
	atHome atomic.Bool
	// pre is the prefetch of the run being committed (Prefetch);
	// prefetchUses counts the tables whose publish used it.
	pre struct {
		sync.Mutex
		p *prefetches
	}
	prefetchUses atomic.Int64
}

var _ load.Lake = (*Lake)(nil)

// Open connects to the catalog and returns the lake at location: a local
// path, file:///path or s3://bucket/prefix. The catalog is opts.Catalog
// (sqlite:PATH or postgres://...; by default sqlite: catalog.db beside the
// warehouse). S3 settings follow the AWS conventions: AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3 (or
// opts.S3Endpoint), with opts.S3PathStyle for gateways that need
// path-style addressing.
func Open(ctx context.Context, location string, opts load.LakeOptions) (*Lake, error) {
	loc, err := normaliseLocation(location)
	if err != nil {
		return nil, err
	}
	dsn := opts.Catalog
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(filepath.Dir(opts.Warehouse), "catalog.db")
	}
	db, dialect, err := openCatalogDB(dsn)
	if err != nil {
		return nil, err
	}
	reporterID := uuid.NewString()
	counter := &commitCounter{}
	counters.Store(reporterID, counter)
	props := iceberg.Properties{"warehouse": loc, metrics.ReporterImplKey: reporterName, propReporterID: reporterID}
	for k, v := range ioProps(loc, opts) {
		props[k] = v
	}
	cat, err := newCatalog(db, dialect, props)
	if err != nil {
		counters.Delete(reporterID)
		db.Close()
		return nil, fmt.Errorf("iceberg catalog %s: %w", redactDSN(dsn), err)
	}
	ns := opts.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	lk := &Lake{location: loc, db: db, dialect: dialect, cat: cat, ns: table.Identifier{ns}, reporterID: reporterID}
	lk.retries.Store(counter)
	return lk, nil
}

// newCatalog opens the SQL catalog, creating its tables in a new
// database. Workers that start at the same time on a new PostgreSQL
// database race to create them, and PostgreSQL fails all but one
// (unique violation, duplicate table or type): the others try again and
// find them.
func newCatalog(db *sql.DB, dialect sqlcat.SupportedDialect, props iceberg.Properties) (*sqlcat.Catalog, error) {
	for attempt := 1; ; attempt++ {
		cat, err := sqlcat.NewCatalog(catalogName, db, dialect, props)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || !slices.Contains([]string{"23505", "42P07", "42710"}, pgErr.Code) {
			return cat, err
		}
		time.Sleep(time.Duration(attempt*(50+rand.IntN(50))) * time.Millisecond)
	}
}

// normaliseLocation makes a location a URL: a local path becomes an
// absolute file:// URL; s3:// and file:// stay; a trailing slash goes.
func normaliseLocation(location string) (string, error) {
	switch {
	case strings.HasPrefix(location, "s3://"), strings.HasPrefix(location, "s3a://"):
		u, err := url.Parse(location)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("lake %q: want s3://bucket/prefix", location)
		}
		return "s3://" + u.Host + strings.TrimRight(u.Path, "/"), nil
	case strings.HasPrefix(location, "file://"):
		return strings.TrimRight(location, "/"), nil
	case strings.Contains(location, "://"):
		return "", fmt.Errorf("lake %q: the iceberg lake takes a path, file:// or s3://", location)
	}
	abs, err := filepath.Abs(location)
	if err != nil {
		return "", fmt.Errorf("lake %q: %w", location, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", fmt.Errorf("lake %q: %w", location, err)
	}
	return "file://" + abs, nil
}

// openCatalogDB opens the catalog's database: sqlite:PATH or a PostgreSQL
// URL.
func openCatalogDB(dsn string) (*sql.DB, sqlcat.SupportedDialect, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, "", fmt.Errorf("catalog %q: want sqlite:PATH", dsn)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, "", fmt.Errorf("catalog %s: %w", dsn, err)
		}
		// WAL and a busy timeout let a reader (Trino's JDBC catalog, say)
		// share the file with the writer.
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return nil, "", fmt.Errorf("catalog %s: %w", dsn, err)
		}
		db.SetMaxOpenConns(1)
		return db, sqlcat.SQLite, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, "", fmt.Errorf("catalog %s: %w", redactDSN(dsn), err)
		}
		return db, sqlcat.Postgres, nil
	}
	return nil, "", fmt.Errorf("catalog %q: want sqlite:PATH or a postgres:// URL", redactDSN(dsn))
}

// redactDSN drops the password of a database URL, for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ioProps are the file IO settings of the location.
func ioProps(loc string, opts load.LakeOptions) iceberg.Properties {
	props := iceberg.Properties{}
	if !strings.HasPrefix(loc, "s3") {
		return props
	}
	set := func(key, value string) {
		if value != "" {
			props[key] = value
		}
	}
	set(io.S3AccessKeyID, os.Getenv("AWS_ACCESS_KEY_ID"))
	set(io.S3SecretAccessKey, os.Getenv("AWS_SECRET_ACCESS_KEY"))
	set(io.S3SessionToken, os.Getenv("AWS_SESSION_TOKEN"))
	region := opts.S3Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = "us-east-1"
	}
	set(io.S3Region, region)
	endpoint := opts.S3Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	set(io.S3EndpointURL, endpoint)
	props[io.S3ForceVirtualAddressing] = strconv.FormatBool(!opts.S3PathStyle)
	return props
}

// Location is the lake's root URL.
func (lk *Lake) Location() string { return lk.location }

// Close releases the catalog connection.
func (lk *Lake) Close() error {
	lk.swapPrefetch(nil).discard()
	counters.Delete(lk.reporterID)
	return errors.Join(lk.cat.Close(), lk.db.Close())
}

// Table loads the Iceberg table of name (for tests and tools).
func (lk *Lake) Table(ctx context.Context, name string) (*table.Table, error) {
	if err := lk.checkHome(ctx); err != nil {
		return nil, err
	}
	return lk.cat.LoadTable(ctx, append(slices.Clone(lk.ns), name))
}

// nsProps reads the namespace properties; nil when the namespace does
// not exist yet.
func (lk *Lake) nsProps(ctx context.Context) (iceberg.Properties, error) {
	if err := lk.checkHome(ctx); err != nil {
		return nil, err
	}
	exists, err := lk.cat.CheckNamespaceExists(ctx, lk.ns)
	if err != nil || !exists {
		return nil, err
	}
	return lk.cat.LoadNamespaceProperties(ctx, lk.ns)
}

// Check refuses every warehouse but its own in a lake of an earlier
// release (one warehouse's). Any warehouse may run any source of a lake of
// this release: it restores the source first when another published it
// since (Stale, RestoreSource), under the source's lease.
func (lk *Lake) Check(ctx context.Context, warehousePath, warehouseID, source string) error {
	props, err := lk.nsProps(ctx)
	if err != nil {
		return fmt.Errorf("iceberg lake: %w", err)
	}
	return namespace{props}.check(lk, warehousePath, warehouseID)
}

// Published lists the sources the lake holds, with the runs of each it
// mirrors. A lake of an earlier release, which does not record them, is
// ErrLakeMismatch: one publish with this release records them.
func (lk *Lake) Published(ctx context.Context) (map[string]load.Published, error) {
	props, err := lk.nsProps(ctx)
	if err != nil {
		return nil, fmt.Errorf("iceberg lake: %w", err)
	}
	ns := namespace{props}
	if legacy := props[propWarehouseID]; legacy != "" {
		return nil, fmt.Errorf("%w: the Iceberg lake %s (namespace %s) was written by an earlier release, which does not record its sources: run a source of warehouse %s once with this release, or restore the whole warehouse with rebuild --from lake",
			load.ErrLakeMismatch, lk.location, lk.ns[0], props[propWarehouse])
	}
	return ns.published(), nil
}

// Stale reports whether the warehouse with warehouseID lacks the latest
// published state of source: another warehouse published it last.
func (lk *Lake) Stale(ctx context.Context, warehouseID, source string) (bool, error) {
	props, err := lk.nsProps(ctx)
	if err != nil {
		return false, fmt.Errorf("iceberg lake: %w", err)
	}
	return namespace{props}.stale(warehouseID, source), nil
}

// Publish commits the changes of the run just committed to the warehouse:
// one commit per changed table. A lake that is new, or that does not
// mirror every earlier run of the source, has the rows of every source
// the warehouse publishes rewritten from snap. The sources a warehouse
// publishes are those it published last or nobody has: a source another
// warehouse published since holds older rows here, and is left alone; a
// run of it is refused unless the warehouse restored it first.
func (lk *Lake) Publish(ctx context.Context, snap load.Snapshot, id load.Identity, tables []load.Table, changes *load.Changes) error {
	props, err := lk.nsProps(ctx)
	if err != nil {
		return fmt.Errorf("iceberg lake: %w", err)
	}
	if props == nil {
		err := lk.cat.CreateNamespace(ctx, lk.ns, nil)
		if err != nil && !errors.Is(err, catalog.ErrNamespaceAlreadyExists) {
			return fmt.Errorf("iceberg lake: create namespace %s: %w", lk.ns[0], err)
		}
		if props, err = lk.nsProps(ctx); err != nil {
			return fmt.Errorf("iceberg lake: %w", err)
		}
	}
	ns := namespace{props}
	if err := ns.check(lk, id.Path, id.ID); err != nil {
		return err
	}
	sources, err := snap.Sources(ctx)
	if err != nil {
		return err
	}
	// Sources this warehouse published before but holds no run of any
	// more (a rebuild, a cleaned warehouse) are its to empty.
	var mine []string
	for _, s := range union(sources, ns.owned(id.ID)) {
		if !ns.stale(id.ID, s) {
			mine = append(mine, s)
		}
	}
	full := changes == nil
	runs := map[string][]string{}
	if changes != nil {
		s := changes.Source
		if runs[s], err = snap.SourceRunIDs(ctx, s); err != nil {
			return err
		}
		// A restored warehouse holds the lake's last run of the source. (A
		// lake of the previous release does not name it: trust the run,
		// which restores a stale source before it exports.)
		if last := ns.lastRun(s); ns.stale(id.ID, s) && last != "" && !slices.Contains(runs[s], last) {
			owner, ownerPath := ns.owner(s)
			return fmt.Errorf("%w: in the Iceberg lake %s (namespace %s), source %s was published last by warehouse %s (id %s), whose rows warehouse %s does not hold: a run restores the source from the lake first",
				load.ErrLakeMismatch, lk.location, lk.ns[0], s, ownerPath, owner, id.Path)
		}
		mine = union(mine, []string{s})
		full = ns.behind(s, runs[s], changes.RunID)
		// The lake's only writer also catches up its other sources now.
		// With other writers it leaves them to their own next runs: it
		// holds no lease on them, and one of those writers may be taking
		// one over.
		for _, o := range mine {
			if full || ns.shared(id.ID) {
				break
			}
			if o != s {
				if runs[o], err = snap.SourceRunIDs(ctx, o); err != nil {
					return err
				}
				full = ns.behind(o, runs[o], "")
			}
		}
	}
	if full {
		for _, s := range mine {
			if _, ok := runs[s]; !ok {
				if runs[s], err = snap.SourceRunIDs(ctx, s); err != nil {
					return err
				}
			}
		}
		if changes != nil && len(ns.owned(id.ID)) > 0 {
			// The last publish did not finish: it may have left files no
			// snapshot references. Only old ones are surely its orphans:
			// a younger one may belong to another writer's commit in
			// progress.
			if err := lk.cleanOrphans(ctx, orphanAge); err != nil {
				return err
			}
		}
	}
	runID, source := "", ""
	if changes != nil {
		runID, source = changes.RunID, changes.Source
	}
	p := publication{snap: snap, changes: changes, full: full, shared: ns.shared(id.ID), mine: mine, scratch: scratchOf(id.Path),
		summary: iceberg.Properties{SummaryRunID: runID, SummarySource: source}}
	if changes != nil {
		p.ids = &idSets{keys: changes.Keys}
	}
	p.scratch.sweep()
	defs, err := snap.TableDefs(ctx)
	if err != nil {
		return err
	}
	// Tables are independent Iceberg tables, each with its own commits:
	// the changes of a run (small, in proportion to the run) are published
	// to several at once; a whole copy of the warehouse, or of the
	// partitions a run too large to name its resources changed (they may
	// be every partition), one table at a time, which bounds its memory.
	// Data tables first, then the bookkeeping that says what they hold.
	at := publishers
	if p.full || changes.Keys == nil || changedKeys(changes.Keys) > manyKeys {
		at = 1
	}
	var data []string
	byName := map[string]load.Table{}
	for _, t := range tables {
		if !strings.HasPrefix(t.Name, load.BookkeepingPrefix) && t.Name != load.PersonTable {
			data = append(data, t.Name)
			byName[t.Name] = t
		}
	}
	err = lk.publishEach(ctx, at, data, func(ctx context.Context, name string) error {
		err := lk.publishTable(ctx, p, byName[name], defs[name])
		if at == 1 {
			// A whole table's copy leaves Go's heap large and mostly
			// free; returned now, it does not add to the next table's
			// (see duckdb.copyMemory).
			debug.FreeOSMemory()
		}
		return err
	})
	if err != nil {
		return err
	}
	err = lk.publishEach(ctx, at, slices.Sorted(maps.Keys(defs)), func(ctx context.Context, name string) error {
		return lk.publishBookkeeping(ctx, p, name, defs[name])
	})
	if err != nil {
		return err
	}
	mirrored := map[string]mirror{}
	for _, s := range p.sources() {
		last := lastOf(runs[s])
		if changes != nil && s == changes.Source {
			last = changes.RunID
		}
		mirrored[s] = mirror{runs: len(runs[s]), last: last}
	}
	removals, updates := ns.record(id.ID, id.Path, mirrored)
	if _, err := lk.cat.UpdateNamespaceProperties(ctx, lk.ns, removals, updates); err != nil {
		return fmt.Errorf("iceberg lake: record the runs mirrored: %w", err)
	}
	return nil
}

// manyKeys is how many changed resources a run names (load.Changes.Keys)
// beyond which its tables are published one at a time, to bound memory:
// a 10% incremental run of a 10 GB export (274,000 resources) peaked at
// 1.07 GB two tables at a time, and at 830-854 MB one at a time, under a
// second slower (20.5-22.0 s against 19.8-21.7 s; two alternating runs
// each).
const manyKeys = 50_000

// changedKeys counts the resources keys (load.Changes.Keys) names.
func changedKeys(keys map[string][]string) int {
	n := 0
	for _, ids := range keys {
		n += len(ids)
	}
	return n
}

// publishers is how many tables one Publish of a run's changes writes at
// a time: each reads its rows from the warehouse, encodes Parquet and
// commits, and those overlap. A 1% incremental load of a 1 GB export
// with an Iceberg lake: 2.53 to 2.62 s against 2.89 to 3.07 s one table
// at a time (three alternating runs each); peak RSS 430 to 470 MB against
// 380 to 440 MB. A whole
// publish, the same time within the noise and 20% more memory (over
// 1 GB), stays one table at a time.
var publishers = max(2, runtime.GOMAXPROCS(0))

// publishEach runs step for each of the tables names, at most at a time,
// each redone on the fresh table when its commit loses a race
// (retryConflicts); the first failure ends the others.
func (lk *Lake) publishEach(ctx context.Context, at int, names []string, step func(ctx context.Context, name string) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(at)
	for _, name := range names {
		g.Go(func() error {
			if err := lk.retryConflicts(gctx, func() error { return step(gctx, name) }); err != nil {
				return fmt.Errorf("iceberg lake %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// publication is what one Publish writes.
type publication struct {
	snap    load.Snapshot
	changes *load.Changes // nil: everything
	full    bool          // every row of the warehouse's sources
	shared  bool          // other warehouses write other sources
	mine    []string      // the warehouse's sources
	summary iceberg.Properties
	ids     *idSets // of changes.Keys
	// scratch is where the warehouse's Parquet files for a lake on object
	// storage wait for their upload (publishParts).
	scratch scratch
}

// scratch names the private folders, one per table being published,
// where the warehouse's Parquet files wait for their upload: in the
// warehouse's folder, named after its file, which only the warehouse's
// one writer uses.
type scratch struct{ dir, prefix string }

// scratchOf is the scratch of the warehouse at path; a warehouse without
// a file uses the system's temporary folder.
func scratchOf(path string) scratch {
	if path == "" || strings.HasPrefix(filepath.Base(path), ":memory:") {
		return scratch{dir: os.TempDir(), prefix: "fhirlake-lake-"}
	}
	return scratch{dir: filepath.Dir(path), prefix: "." + filepath.Base(path) + ".lake-"}
}

// sweep removes what a killed publish left in the warehouse's scratch
// folders (they hold PHI).
func (s scratch) sweep() {
	if !strings.HasPrefix(s.prefix, ".") {
		return // the shared temporary folder: only our own, removed as we go
	}
	left, _ := filepath.Glob(filepath.Join(s.dir, s.prefix+"*"))
	for _, d := range left {
		os.RemoveAll(d)
	}
}

// idSets are the sets of a run's changed ids (load.Changes.Keys), one per
// resource type, each made when first asked for and shared by the tables
// of the type and the version index, which may be published at once.
type idSets struct {
	keys map[string][]string
	mu   sync.Mutex
	sets map[string]idSet
}

// of is the set of the ids of resource type typ.
func (s *idSets) of(typ string) idSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set, ok := s.sets[typ]; ok {
		return set
	}
	set := make(idSet, len(s.keys[typ]))
	for _, id := range s.keys[typ] {
		set[id] = struct{}{}
	}
	if s.sets == nil {
		s.sets = map[string]idSet{}
	}
	s.sets[typ] = set
	return set
}

// maxFilterIDs is how many ids a commit's planning filter lists (id IN
// ...); with more it selects by source (and type) alone. The list only
// skips a data file whose ids' bounds hold none of them, which a run of
// many changes (random ids, spread over every file) leaves to none, and
// iceberg-go binds and evaluates the whole list against every file.
var maxFilterIDs = 1000

// idFilter selects the rows whose column col holds one of ids, or every
// row when they are more than maxFilterIDs.
func idFilter(col string, ids []string) iceberg.BooleanExpression {
	if len(ids) > maxFilterIDs {
		return iceberg.AlwaysTrue{}
	}
	return iceberg.IsIn(iceberg.Reference(col), ids...)
}

// sources are the sources whose rows the publication replaces.
func (p publication) sources() []string {
	if p.full {
		return p.mine
	}
	return []string{p.changes.Source}
}

// publishBookkeeping commits a bookkeeping table or the person
// crosswalk: the rows of the publication's sources (the version index by
// the run's changes when it can), as for a data table.
func (lk *Lake) publishBookkeeping(ctx context.Context, p publication, name, def string) error {
	var column string
	switch {
	case name == load.PersonTable:
		if !p.full && !p.changes.Person {
			return nil
		}
		column = load.DataSource
	case name == "fhirlake_warehouse":
		if p.shared {
			return nil // one row set per warehouse: only a lake's sole writer keeps it
		}
	case strings.HasPrefix(name, load.BookkeepingPrefix):
		column = "source"
	default:
		return nil // a data table
	}
	if name == load.IndexTable && !p.full {
		if !p.changes.Index && lk.exists(ctx, name) {
			return nil
		}
		done, err := lk.publishIndexDelta(ctx, p.snap, p.changes, p.ids, p.summary, def)
		if done || err != nil {
			return err
		}
	}
	if name == load.RunsTable && !p.full {
		done, err := lk.appendRuns(ctx, p, def)
		if done || err != nil {
			return err
		}
	}
	if column == "" {
		return lk.replaceWhole(ctx, p.snap, name, p.summary, def)
	}
	if name == load.PersonTable {
		// A relink may change the persons of every source of the warehouse.
		p.full = true
	}
	pw, writes := p.snap.(load.PartFilesWriter)
	var sc *arrow.Schema
	var err error
	if writes {
		sc, err = pw.TableSchema(ctx, name)
	} else {
		var rr load.RecordReader
		if rr, err = p.snap.SourceRecords(ctx, name, column, nil); err == nil { // no rows: the schema
			sc = rr.Schema()
			rr.Release()
		}
	}
	if err != nil {
		return err
	}
	tbl, err := lk.ensureTable(ctx, name, sc, nil)
	if err != nil {
		return err
	}
	// The warehouse writes the files of a table of plain columns and
	// lists of them (the version index among them: 2.7 million rows at
	// 10 GB); the field ids of other nested ones (the run log's maps) it
	// is not given.
	if !writes || !flat(tbl.Schema()) {
		rr, err := p.snap.SourceRecords(ctx, name, column, p.sources())
		if err != nil {
			return err
		}
		defer rr.Release()
		return commitDelta(ctx, tbl, inSources(column, p.sources()), rr, p.summary, def)
	}
	replaced := func(*table.Table) (iceberg.BooleanExpression, error) { return inSources(column, p.sources()), nil }
	return addWarehouseFiles(ctx, p, tbl, def, replaced, func(ids map[string]int, rowGroup int, dir string) ([]string, error) {
		return pw.WriteSourceParts(ctx, name, column, p.sources(), ids, rowGroup, dir)
	})
}

// appendRuns appends to the lake's run log the runs of the run's source
// it lacks (the run's own, and any the warehouse recorded without
// publishing, such as rejected runs), in one snapshot: a run's row never
// changes once written. Rewriting the source's rows at every run wrote
// 26 kB of the 31 kB an unchanged reload wrote to the lake, and grows
// with the source's runs. done is false when the lake holds a run of the
// source the warehouse does not (one restored from elsewhere), or no run
// log yet: the caller rewrites the source's rows.
func (lk *Lake) appendRuns(ctx context.Context, p publication, def string) (done bool, err error) {
	tbl, err := lk.Table(ctx, load.RunsTable)
	if errors.Is(err, catalog.ErrNoSuchTable) {
		return false, nil
	}
	if err != nil || tbl.CurrentSnapshot() == nil {
		return false, err
	}
	src := p.changes.Source
	lrr, err := lk.readTable(ctx, load.RunsTable, inSources("source", []string{src}))
	if err != nil {
		return false, err
	}
	if len(lrr.Schema().FieldIndices("run_id")) != 1 {
		lrr.Release()
		return false, nil
	}
	inLake, err := rowStrings(lrr, "run_id")
	lrr.Release()
	if err != nil {
		return false, err
	}
	wrr, err := p.snap.SourceRecords(ctx, load.RunsTable, "source", []string{src})
	if err != nil {
		return false, err
	}
	inWarehouse, err := rowStrings(wrr, "run_id")
	wrr.Release()
	if err != nil {
		return false, err
	}
	have := runIDSet(inLake)
	want := runIDSet(inWarehouse)
	for id := range have {
		if !want[id] {
			return false, nil
		}
	}
	var missing []string
	for id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return true, nil
	}
	slices.Sort(missing)
	rr, err := p.snap.SourceRecords(ctx, load.RunsTable, "run_id", missing)
	if err != nil {
		return false, err
	}
	defer rr.Release()
	// A column the warehouse's run log gained is added first.
	if tbl, err = lk.ensureTable(ctx, load.RunsTable, rr.Schema(), nil); err != nil {
		return false, err
	}
	if err := commitDelta(ctx, tbl, nil, rr, p.summary, def); err != nil {
		return false, err
	}
	return true, lk.compactIfDue(ctx, load.RunsTable, p.summary)
}

// runIDSet is the set of the run ids rowStrings gives of a run_id
// column (each value ends with its separator).
func runIDSet(rows []string) map[string]bool {
	out := make(map[string]bool, len(rows))
	for _, r := range rows {
		out[strings.TrimSuffix(r, "\x00")] = true
	}
	return out
}

// inSources selects the rows whose column is one of sources.
func inSources(column string, sources []string) iceberg.BooleanExpression {
	if len(sources) == 0 {
		return iceberg.AlwaysFalse{}
	}
	return iceberg.IsIn(iceberg.Reference(column), sources...)
}

// union2 is a copy of a with b's properties added.
func union2(a, b iceberg.Properties) iceberg.Properties {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// union merges two sorted sets of strings.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// cleanOrphans deletes, in every table of the namespace, the files older
// than olderThan that no snapshot references: what a failed commit wrote.
// A file a snapshot references is never deleted (iceberg-go reads every
// snapshot's manifests first).
func (lk *Lake) cleanOrphans(ctx context.Context, olderThan time.Duration) error {
	idents, err := lk.tables(ctx)
	if err != nil {
		return err
	}
	for _, ident := range idents {
		tbl, err := lk.cat.LoadTable(ctx, ident)
		if err != nil {
			return fmt.Errorf("iceberg lake: load %s: %w", ident[len(ident)-1], err)
		}
		if _, err := tbl.DeleteOrphanFiles(ctx, table.WithFilesOlderThan(olderThan)); err != nil {
			return fmt.Errorf("iceberg lake: remove orphan files of %s: %w", ident[len(ident)-1], err)
		}
	}
	return nil
}

// tables lists the tables of the namespace.
func (lk *Lake) tables(ctx context.Context) ([]table.Identifier, error) {
	if err := lk.checkHome(ctx); err != nil {
		return nil, err
	}
	var out []table.Identifier
	for ident, err := range lk.cat.ListTables(ctx, lk.ns) {
		if err != nil {
			return nil, fmt.Errorf("iceberg lake: list tables: %w", err)
		}
		out = append(out, ident)
	}
	return out, nil
}

// ExpireStats says what Expire removed.
type ExpireStats struct {
	Tables    int
	Snapshots int
}

// Expire removes the snapshots of every table older than olderThan (the
// current one always stays), then the files only they referenced and any
// orphan file of a failed commit. Time travel reaches back olderThan
// afterwards.
func (lk *Lake) Expire(ctx context.Context, olderThan time.Duration) (ExpireStats, error) {
	var st ExpireStats
	idents, err := lk.tables(ctx)
	if err != nil {
		return st, err
	}
	for _, ident := range idents {
		tbl, err := lk.cat.LoadTable(ctx, ident)
		if err != nil {
			return st, fmt.Errorf("iceberg lake: load %s: %w", ident[len(ident)-1], err)
		}
		before := len(tbl.Metadata().Snapshots())
		txn := tbl.NewTransaction()
		if err := txn.ExpireSnapshots(table.WithOlderThan(olderThan), table.WithRetainLast(1)); err != nil {
			return st, fmt.Errorf("iceberg lake: expire %s: %w", ident[len(ident)-1], err)
		}
		if tbl, err = txn.Commit(ctx); err != nil {
			return st, fmt.Errorf("iceberg lake: expire %s: %w", ident[len(ident)-1], err)
		}
		st.Tables++
		st.Snapshots += before - len(tbl.Metadata().Snapshots())
	}
	return st, lk.cleanOrphans(ctx, orphanAge)
}

// publishTable commits one data table: the rows of the run's source in
// the partitions it changed replace what the lake holds there, or, when
// full, every row replaces the table's.
func (lk *Lake) publishTable(ctx context.Context, p publication, t load.Table, def string) error {
	snap := p.snap
	if p.full {
		// Every row of this warehouse's sources, and no other's: other
		// warehouses may write other sources of the same table at the
		// same time, and a warehouse's first publish cannot know yet.
		if len(p.mine) == 0 {
			return nil
		}
		replaced := func(*table.Table) (iceberg.BooleanExpression, error) { return inSources(load.DataSource, p.mine), nil }
		if done, err := lk.publishParts(ctx, p, t, def, p.mine, nil, replaced); done || err != nil {
			return err
		}
		rr, err := concatSources(ctx, snap, t, p.mine)
		if err != nil {
			return err
		}
		defer rr.Release()
		tbl, err := lk.ensureTable(ctx, t.Name, rr.Schema(), t.Partition)
		if err != nil {
			return err
		}
		if err := commitDelta(ctx, tbl, inSources(load.DataSource, p.mine), rr, p.summary, def); err != nil {
			return err
		}
		return lk.compactIfDue(ctx, t.Name, p.summary)
	}
	changes := p.changes
	vals, ok := changes.Tables[t.Name]
	if !ok {
		return nil
	}
	done, err := lk.publishDelta(ctx, p, t, def)
	if err != nil {
		return err
	}
	if !done {
		replaced := func(tbl *table.Table) (iceberg.BooleanExpression, error) {
			return changeFilter(tbl, t, changes.Source, vals)
		}
		if done, err := lk.publishParts(ctx, p, t, def, []string{changes.Source}, vals, replaced); done || err != nil {
			return err
		}
		rr, err := snap.Records(ctx, t, changes.Source, vals)
		if err != nil {
			return err
		}
		defer rr.Release()
		tbl, err := lk.ensureTable(ctx, t.Name, rr.Schema(), t.Partition)
		if err != nil {
			return err
		}
		filter, err := changeFilter(tbl, t, changes.Source, vals)
		if err != nil {
			return err
		}
		// The filter selects whole partitions (the spec's identity on
		// data_source and year on the partition column), so no data file
		// is rewritten in part: a partial copy-on-write rewrite would not
		// apply the file's position deletes.
		if err := overwrite(ctx, tbl, rr, filter, p.summary, def); err != nil {
			return err
		}
	}
	return lk.compactIfDue(ctx, t.Name, p.summary)
}

// Merge-on-read: the table properties that make a table's deletes
// position-delete files (compactIfDue bounds them). iceberg-go does not
// replay a commit that lost a race (its replay of an overwrite mistook
// the files it added for files gone from the branch): retryConflicts
// redoes the whole step on the fresh table instead.
var mergeOnRead = iceberg.Properties{
	table.WriteDeleteModeKey:  table.WriteModeMergeOnRead,
	"write.update.mode":       table.WriteModeMergeOnRead,
	"write.merge.mode":        table.WriteModeMergeOnRead,
	table.CommitNumRetriesKey: "0",
}

// tableProps are the properties every table of the lake has: merge-on-read,
// zstd, row groups of at most rowGroupLimit rows, and no more than
// metadataVersions metadata files. (A table without one of them gets it
// at its next commit: see deltaTxn.)
var tableProps = union2(mergeOnRead, iceberg.Properties{
	"write.parquet.compression-codec":         "zstd",
	table.ParquetRowGroupLimitKey:             strconv.Itoa(rowGroupLimit),
	table.MetadataDeleteAfterCommitEnabledKey: "true",
	table.MetadataPreviousVersionsMaxKey:      strconv.Itoa(metadataVersions),
})

// metadataVersions is how many earlier metadata files of a table its
// metadata log names and the folder keeps; a commit deletes the one that
// falls out. Every commit writes a new metadata file: without the
// deletion they stayed until lake expire swept those the log no longer
// names, so a lake never expired grew by a file a run in the run log's
// folder alone (776 kB after 26 runs). Snapshots, which time travel
// reads, are not metadata files: they stay until lake expire. 100 is
// Iceberg's default length of the log.
const metadataVersions = 100

// rowGroupLimit is the most rows of a Parquet row group of the lake.
// iceberg-go writes one file per partition at once, each holding its row
// group in memory until it is full. With its default, 1M rows or 128 MB,
// a full load of a 10 GB export peaked at 1.92 GB of RSS; with DuckDB's
// own row group, 122,880 rows, at 1.37 GB (the same time, 98.7 and
// 101.7 s; one run each).
const rowGroupLimit = 122880

// publishParts commits the rows of t of sources (of their partitions
// vals, when not nil: one source's, as load.Changes names them) as the
// warehouse's own Parquet files, when the warehouse writes Parquet
// (load.PartFilesWriter): a file per partition of the table's spec, with
// the table's field ids, written into the table's data folder (for a lake
// on object storage, into a private folder beside the warehouse, from
// which each file is uploaded there). One commit deletes the rows they
// replace, when the table holds any (replaced gives the filter, which
// selects whole partitions: their files go, none is read or rewritten),
// and adds them. Encoding every row with iceberg-go's writer took 2.7
// times the CPU of DuckDB's COPY (5.5 s of a 1 GB export's 13 s full
// load, on 1.45 of 2 cores). done is false when the warehouse writes no
// files: the caller publishes as before. What happens to the files of a
// publish that fails: see addWarehouseFiles.
func (lk *Lake) publishParts(ctx context.Context, p publication, t load.Table, def string, sources, vals []string,
	replaced func(*table.Table) (iceberg.BooleanExpression, error)) (done bool, err error) {
	pw, ok := p.snap.(load.PartFilesWriter)
	if !ok {
		return false, nil
	}
	sc, err := pw.TableSchema(ctx, t.Name)
	if err != nil {
		return false, err
	}
	tbl, err := lk.ensureTable(ctx, t.Name, sc, t.Partition)
	if err != nil {
		return false, err
	}
	err = addWarehouseFiles(ctx, p, tbl, def, replaced, func(ids map[string]int, rowGroup int, dir string) ([]string, error) {
		return pw.WriteParquetParts(ctx, t, sources, vals, ids, rowGroup, dir)
	})
	if err != nil {
		return false, err
	}
	return true, lk.compactIfDue(ctx, t.Name, p.summary)
}

// flat reports whether every column of sc is of a primitive type or a
// list of one: the columns whose field ids addWarehouseFiles names.
func flat(sc *iceberg.Schema) bool {
	for _, f := range sc.Fields() {
		typ := f.Type
		if lt, ok := typ.(*iceberg.ListType); ok {
			typ = lt.Element
		}
		if _, ok := typ.(iceberg.PrimitiveType); !ok {
			return false
		}
	}
	return true
}

// addWarehouseFiles commits to tbl the files write has the warehouse
// write under the folder it is given (see publishParts), with the rows
// they replace deleted in the same commit when the table holds any
// (replaced gives the filter). The files of a publish that fails before
// its commit, or whose commit is refused, are removed.
func addWarehouseFiles(ctx context.Context, p publication, tbl *table.Table, def string,
	replaced func(*table.Table) (iceberg.BooleanExpression, error),
	write func(ids map[string]int, rowGroup int, dir string) ([]string, error)) (err error) {
	var filter iceberg.BooleanExpression
	if summaryInt(tbl, "total-data-files") > 0 || summaryInt(tbl, "total-delete-files") > 0 {
		if filter, err = replaced(tbl); err != nil {
			return err
		}
	}
	paths, remove, err := warehouseFiles(ctx, p.scratch, tbl, write)
	if err != nil {
		return err
	}
	keep := false // the files, after a commit that may have been taken
	defer func() {
		if err != nil && !keep {
			remove()
		}
	}()
	txn, err := deltaTxn(tbl, def)
	if err != nil {
		return err
	}
	if _, none := filter.(iceberg.AlwaysFalse); filter != nil && !none {
		if err := txn.Delete(ctx, filter, p.summary); err != nil {
			return fmt.Errorf("delete replaced rows: %w", err)
		}
	}
	if len(paths) > 0 {
		// The files are new (a folder of their own): no need to check
		// that the table does not know them already.
		if err := txn.AddFiles(ctx, paths, p.summary, true); err != nil {
			return fmt.Errorf("add files: %w", err)
		}
	}
	err = commitTxn(ctx, tbl, txn)
	// A commit that lost a race was refused; after any other failure the
	// catalog may have taken it, and its snapshot names the files: they
	// stay, and the next catch-up's sweep removes them if none does.
	keep = err != nil && !conflict(err)
	return err
}

// warehouseFiles has write put new Parquet files, with tbl's field ids and
// row group bound, into a folder of their own in tbl's data folder (for
// a lake on object storage, into one under sc, from which each is
// uploaded there). It returns their paths as the table names them, and
// remove, which deletes them; on error nothing is left.
func warehouseFiles(ctx context.Context, sc scratch, tbl *table.Table,
	write func(ids map[string]int, rowGroup int, dir string) ([]string, error)) (paths []string, remove func(), err error) {
	ids := map[string]int{}
	for _, f := range tbl.Schema().Fields() {
		ids[f.Name] = f.ID
		if lt, ok := f.Type.(*iceberg.ListType); ok {
			ids[f.Name+load.ElementID] = lt.ElementID
		}
	}
	rowGroup, _ := strconv.Atoi(tbl.Properties()[table.ParquetRowGroupLimitKey])
	folder := "fhirlake-" + uuid.NewString()
	remote := tbl.Location() + "/data/" + folder
	local, onDisk := strings.CutPrefix(remote, "file://")
	var fs io.IO // of a lake on object storage
	remove = func() {
		if onDisk {
			os.RemoveAll(local)
			return
		}
		for _, path := range paths {
			fs.Remove(path)
		}
	}
	defer func() {
		if err != nil {
			remove()
			paths, remove = nil, nil
		}
	}()
	if onDisk {
		if err = os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return
		}
		var files []string
		if files, err = write(ids, rowGroup, local); err != nil {
			return
		}
		for _, f := range files {
			paths = append(paths, "file://"+f)
		}
		return paths, remove, nil
	}
	var scratch string
	if scratch, err = os.MkdirTemp(sc.dir, sc.prefix); err != nil {
		return
	}
	defer os.RemoveAll(scratch)
	var files []string
	if files, err = write(ids, rowGroup, filepath.Join(scratch, folder)); err != nil {
		return
	}
	if fs, err = tbl.FS(ctx); err != nil {
		return
	}
	for _, f := range files {
		var rel string
		if rel, err = filepath.Rel(filepath.Join(scratch, folder), f); err != nil {
			return
		}
		path := remote + "/" + filepath.ToSlash(rel)
		paths = append(paths, path)
		if err = upload(fs, f, path); err != nil {
			return
		}
	}
	return paths, remove, nil
}

// upload copies the local file src to path on fs.
func upload(fs io.IO, src, path string) error {
	wfs, ok := fs.(io.WriteFileIO)
	if !ok {
		return fmt.Errorf("the lake's file system %T cannot write files", fs)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := wfs.Create(path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	if _, err := in.WriteTo(out); err != nil {
		out.Close()
		return fmt.Errorf("upload %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("upload %s: %w", path, err)
	}
	return nil
}

// publishDelta commits the run's changes to t merge-on-read, when the run
// names its changed resources (changes.Keys) and the table exists: one
// commit deletes the stale rows (a delete file beside each data file that
// held one, or the file itself when all its rows go) and appends the
// resources' current rows. What it writes is in
// proportion to the change, not to the partitions the change touches.
// done is false when the caller must rewrite partitions instead.
//
// A warehouse that writes Parquet (load.PartFilesWriter) writes the
// appended rows' files itself, as for a full publish (publishParts): in
// a 1% run of a 10 GB export, iceberg-go's writer took 0.7-1.1 s for
// them (summed over the tables, two at a time), most of the second the
// lake took after the warehouse's commit.
func (lk *Lake) publishDelta(ctx context.Context, p publication, t load.Table, def string) (done bool, err error) {
	changes := p.changes
	if changes.Keys == nil || !lk.exists(ctx, t.Name) {
		return false, nil
	}
	ids := changes.Keys[t.Resource]
	appended := changes.Appended[t.Name]
	pw, direct := p.snap.(load.PartFilesWriter)
	var rr load.RecordReader
	var sc *arrow.Schema
	if direct {
		sc, err = pw.TableSchema(ctx, t.Name)
	} else if rr, err = p.snap.RecordsOf(ctx, t, changes.Source, ids, appended); err == nil {
		sc = rr.Schema()
	}
	if err != nil {
		return false, err
	}
	tbl, err := lk.ensureTable(ctx, t.Name, sc, t.Partition)
	if err != nil {
		if rr != nil {
			rr.Release()
		}
		return false, err
	}
	filter, match := deltaKeys(t, changes.Source, ids, p.ids)
	prefetched := lk.prefetchedFor(changes.Keys)
	if direct && !flat(tbl.Schema()) { // see flat
		if rr, err = p.snap.RecordsOf(ctx, t, changes.Source, ids, appended); err != nil {
			return false, err
		}
		direct = false
	}
	if !direct {
		defer rr.Release()
		_, err := commitRowDelta(ctx, tbl, filter, match, prefetched, written(tbl, readerOf(rr)), p.summary, def)
		return true, err
	}
	var remove func() // the appended files
	add := func(ctx context.Context) ([]iceberg.DataFile, error) {
		paths, rm, err := warehouseFiles(ctx, p.scratch, tbl, func(fieldIDs map[string]int, rowGroup int, dir string) ([]string, error) {
			return pw.WriteRunParts(ctx, t, changes.Source, ids, appended, fieldIDs, rowGroup, dir)
		})
		if err != nil {
			return nil, err
		}
		remove = rm
		fs, err := tbl.FS(ctx)
		if err != nil {
			return nil, err
		}
		added := make([]iceberg.DataFile, 0, len(paths))
		for _, path := range paths {
			df, err := table.FileToDataFile(ctx, fs, path, tbl.Schema(), tbl.Spec(), 0, tbl.Properties())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			added = append(added, df)
		}
		return added, nil
	}
	sent, err := commitRowDelta(ctx, tbl, filter, match, prefetched, add, p.summary, def)
	// A commit that lost a race was refused; after any other failure sent
	// to the catalog, it may have taken the commit, whose snapshot names
	// the files: they stay, and the next catch-up's sweep removes them if
	// none does.
	if err != nil && remove != nil && (!sent || conflict(err)) {
		remove()
	}
	return true, err
}

// deltaKeys are the filter and the keys of the rows of source in t that
// a run changing ids (of t's resource type; sets) replaces; a nil filter
// when it replaces none.
func deltaKeys(t load.Table, source string, ids []string, sets *idSets) (iceberg.BooleanExpression, rowKeys) {
	var filter iceberg.BooleanExpression
	match := rowKeys{cols: []string{load.DataSource, t.Key}, ids: map[string]idSet{source: sets.of(t.Resource)}}
	if len(ids) > 0 {
		filter = iceberg.NewAnd(iceberg.EqualTo(iceberg.Reference(load.DataSource), source), idFilter(t.Key, ids))
	}
	return filter, match
}

// prefetchedFor is the lookup of commitRowDelta for the deletes Prefetch
// wrote for a run changing keys.
func (lk *Lake) prefetchedFor(keys map[string][]string) func(context.Context, *table.Table) ([]iceberg.DataFile, bool) {
	return func(ctx context.Context, tbl *table.Table) ([]iceberg.DataFile, bool) {
		return lk.prefetched(ctx, tbl, keys)
	}
}

// publishIndexDelta commits the run's changes to the version index's
// mirror merge-on-read, as publishDelta does for a data table: the rows
// of the resources the run replaced or deleted go, the versions it loaded
// come in. done is false when the mirror must be replaced whole.
func (lk *Lake) publishIndexDelta(ctx context.Context, snap load.Snapshot, changes *load.Changes, sets *idSets, summary iceberg.Properties, def string) (done bool, err error) {
	if changes.Keys == nil || !lk.exists(ctx, load.IndexTable) {
		return false, nil
	}
	tbl, err := lk.Table(ctx, load.IndexTable)
	if err != nil {
		return false, fmt.Errorf("load table: %w", err)
	}
	rr, err := snap.RunIndex(ctx, changes.Source, changes.RunID, changes.Appended[load.IndexTable])
	if err != nil {
		return false, err
	}
	defer rr.Release()
	if tbl, err = addColumns(ctx, tbl, rr.Schema()); err != nil {
		return false, err
	}
	filter, match := indexKeys(changes.Source, changes.Keys, sets)
	if _, err := commitRowDelta(ctx, tbl, filter, match, lk.prefetchedFor(changes.Keys), written(tbl, readerOf(rr)), summary, def); err != nil {
		return true, err
	}
	return true, lk.compactIfDue(ctx, load.IndexTable, summary)
}

// indexKeys are the filter and the keys of the version index's rows of
// source that a run changing keys (by type; sets) replaces; a nil filter
// when it replaces none.
func indexKeys(source string, keys map[string][]string, sets *idSets) (iceberg.BooleanExpression, rowKeys) {
	types := slices.Sorted(maps.Keys(keys))
	var byType []iceberg.BooleanExpression
	match := rowKeys{cols: []string{"source", "resource_type", "id"}, ids: map[string]idSet{}}
	for _, typ := range types {
		byType = append(byType, iceberg.NewAnd(iceberg.EqualTo(iceberg.Reference("resource_type"), typ),
			idFilter("id", keys[typ])))
		match.ids[joinKey(source, typ)] = sets.of(typ)
	}
	var filter iceberg.BooleanExpression
	switch len(byType) {
	case 0:
	case 1:
		filter = byType[0]
	default:
		filter = iceberg.NewOr(byType[0], byType[1], byType[2:]...)
	}
	if filter != nil {
		filter = iceberg.NewAnd(iceberg.EqualTo(iceberg.Reference("source"), source), filter)
	}
	return filter, match
}

// commitDelta commits, in one transaction, a merge-on-read delete of the
// rows filter selects (none when filter is nil) and the append of rr's
// rows, switching the table to merge-on-read and recording its CREATE
// statement, def, when they changed.
func commitDelta(ctx context.Context, tbl *table.Table, filter iceberg.BooleanExpression, rr load.RecordReader, summary iceberg.Properties, def string) error {
	txn, err := deltaTxn(tbl, def)
	if err != nil {
		return err
	}
	if filter != nil {
		if err := txn.Delete(ctx, filter, summary); err != nil {
			return fmt.Errorf("delete changed rows: %w", err)
		}
	}
	if err := txn.Append(ctx, readerOf(rr), summary); err != nil {
		return fmt.Errorf("append changed rows: %w", err)
	}
	return commitTxn(ctx, tbl, txn)
}

// deltaTxn starts a merge-on-read transaction on tbl: it gives the table
// tableProps (merge-on-read among them) and records its CREATE statement,
// def, when they changed.
func deltaTxn(tbl *table.Table, def string) (*table.Transaction, error) {
	props := iceberg.Properties{}
	if def != "" && tbl.Properties()[propSQL] != def {
		props[propSQL] = def
	}
	for k, v := range tableProps {
		if tbl.Properties()[k] != v {
			props[k] = v
		}
	}
	txn := tbl.NewTransaction()
	if len(props) > 0 {
		if err := txn.SetProperties(props); err != nil {
			return nil, fmt.Errorf("set properties: %w", err)
		}
	}
	return txn, nil
}

// commitTxn commits a merge-on-read transaction of tbl, recording the
// table's base files first when it has none recorded yet.
func commitTxn(ctx context.Context, tbl *table.Table, txn *table.Transaction) error {
	if _, ok := tbl.Properties()[propBaseFiles]; !ok {
		if err := recordBaseFiles(txn); err != nil {
			return err
		}
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// recordBaseFiles sets propBaseFiles to the data files the transaction
// leaves (see compactionDue).
func recordBaseFiles(txn *table.Transaction) error {
	staged, err := txn.StagedTable()
	if err != nil {
		return fmt.Errorf("record the table's files: %w", err)
	}
	n := strconv.FormatInt(summaryInt(staged.Table, "total-data-files"), 10)
	if err := txn.SetProperties(iceberg.Properties{propBaseFiles: n}); err != nil {
		return fmt.Errorf("record the table's files: %w", err)
	}
	return nil
}

// summaryInt is a count from the summary of tbl's current snapshot (0
// without one).
func summaryInt(tbl *table.Table, key string) int64 {
	s := tbl.CurrentSnapshot()
	if s == nil || s.Summary == nil {
		return 0
	}
	n, _ := strconv.ParseInt(s.Summary.Properties[key], 10, 64)
	return n
}

// replaceWhole commits a whole table (bookkeeping, the crosswalk).
func (lk *Lake) replaceWhole(ctx context.Context, snap load.Snapshot, name string, summary iceberg.Properties, def string) error {
	rr, err := snap.TableRecords(ctx, name)
	if err != nil {
		return err
	}
	tbl, err := lk.ensureTable(ctx, name, rr.Schema(), nil)
	if err != nil {
		rr.Release()
		return err
	}
	// The warehouse's id and layout change once in its life; rewritten
	// at every run they were a third of the 42 kB an unchanged reload
	// wrote to the lake. (The table is a few rows: it is read again.)
	if tbl.CurrentSnapshot() != nil && (def == "" || tbl.Properties()[propSQL] == def) {
		same, err := lk.holdsRows(ctx, name, rr)
		rr.Release()
		if same || err != nil {
			return err
		}
		if rr, err = snap.TableRecords(ctx, name); err != nil {
			return err
		}
	}
	defer rr.Release()
	return overwrite(ctx, tbl, rr, iceberg.AlwaysTrue{}, summary, def)
}

// holdsRows reports whether the lake's table name holds the rows of rr
// (read to its end) and no other, column by column by name.
func (lk *Lake) holdsRows(ctx context.Context, name string, rr load.RecordReader) (bool, error) {
	want, err := rowStrings(rr)
	if err != nil {
		return false, err
	}
	lrr, err := lk.readTable(ctx, name, iceberg.AlwaysTrue{})
	if err != nil {
		return false, err
	}
	defer lrr.Release()
	cols := make([]string, rr.Schema().NumFields())
	for i, f := range rr.Schema().Fields() {
		cols[i] = f.Name
	}
	got, err := rowStrings(lrr, cols...)
	if err != nil {
		return false, err
	}
	return slices.Equal(got, want), nil
}

// rowStrings reads rr to its end and returns its rows, each its values of
// cols (every column when none are given) in text, sorted; none when a
// column is missing.
func rowStrings(rr load.RecordReader, cols ...string) ([]string, error) {
	var out []string
	for rr.Next() {
		rec := rr.RecordBatch()
		idx := make([]int, 0, rec.NumCols())
		if len(cols) == 0 {
			for i := range int(rec.NumCols()) {
				idx = append(idx, i)
			}
		}
		for _, c := range cols {
			is := rec.Schema().FieldIndices(c)
			if len(is) != 1 {
				return nil, nil // a column the other side lacks: not the same rows
			}
			idx = append(idx, is[0])
		}
		for r := range int(rec.NumRows()) {
			var b strings.Builder
			for _, i := range idx {
				col := rec.Column(i)
				if col.IsNull(r) {
					b.WriteString("\x00null")
				} else {
					b.WriteString(col.ValueStr(r))
				}
				b.WriteByte(0)
			}
			out = append(out, b.String())
		}
	}
	if err := rr.Err(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// overwrite commits one copy-on-write snapshot: the rows filter selects
// are removed (their files dropped or rewritten without them) and rr's
// rows added. The table's CREATE statement in the warehouse, def, is kept
// as a table property in the same commit when it changed.
func overwrite(ctx context.Context, tbl *table.Table, rr load.RecordReader, filter iceberg.BooleanExpression, summary iceberg.Properties, def string) error {
	txn := tbl.NewTransaction()
	if def != "" && tbl.Properties()[propSQL] != def {
		if err := txn.SetProperties(iceberg.Properties{propSQL: def}); err != nil {
			return fmt.Errorf("record the table's definition: %w", err)
		}
	}
	var deletes []iceberg.DataFile
	if _, all := filter.(iceberg.AlwaysTrue); all {
		var err error
		if deletes, err = deleteFiles(ctx, tbl); err != nil {
			return err
		}
	}
	if err := txn.Overwrite(ctx, readerOf(rr), summary, table.WithOverwriteFilter(filter)); err != nil {
		return fmt.Errorf("overwrite: %w", err)
	}
	if len(deletes) > 0 {
		// Every data file went, so every delete file applies to nothing:
		// a second snapshot of the same commit removes them (iceberg-go's
		// overwrite keeps them), and the table starts afresh.
		if err := txn.ReplaceFiles(ctx, nil, nil, deletes, summary); err != nil {
			return fmt.Errorf("remove delete files: %w", err)
		}
	}
	if _, all := filter.(iceberg.AlwaysTrue); all {
		if err := recordBaseFiles(txn); err != nil {
			return err
		}
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// deleteFiles lists the delete files of tbl's current snapshot.
func deleteFiles(ctx context.Context, tbl *table.Table) ([]iceberg.DataFile, error) {
	snap := tbl.CurrentSnapshot()
	if snap == nil {
		return nil, nil
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return nil, fmt.Errorf("list delete files: %w", err)
	}
	manifests, err := snap.Manifests(fs)
	if err != nil {
		return nil, fmt.Errorf("list delete files: %w", err)
	}
	var out []iceberg.DataFile
	for _, m := range manifests {
		if m.ManifestContent() != iceberg.ManifestContentDeletes {
			continue
		}
		for e, err := range m.Entries(fs, true) {
			if err != nil {
				return nil, fmt.Errorf("list delete files: %w", err)
			}
			out = append(out, e.DataFile())
		}
	}
	return out, nil
}

// ensureTable loads the Iceberg table of name, creating it from the
// warehouse's Arrow schema (with fresh field ids) and the partition spec
// when it does not exist yet.
func (lk *Lake) ensureTable(ctx context.Context, name string, sc *arrow.Schema, part *load.Partition) (*table.Table, error) {
	ident := append(slices.Clone(lk.ns), name)
	tbl, err := lk.cat.LoadTable(ctx, ident)
	if err == nil {
		return addColumns(ctx, tbl, sc)
	}
	if !errors.Is(err, catalog.ErrNoSuchTable) {
		return nil, fmt.Errorf("load table: %w", err)
	}
	isc, err := table.ArrowSchemaToIcebergWithFreshIDs(sc, false)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var opts []iceberg.PartitionOption
	if _, ok := isc.FindFieldByName(load.DataSource); ok {
		opts = append(opts, iceberg.AddPartitionFieldByName(load.DataSource, load.DataSource, iceberg.IdentityTransform{}, isc, nil))
	}
	if part != nil {
		opts = append(opts, iceberg.AddPartitionFieldByName(part.Column, part.Name, iceberg.YearTransform{}, isc, nil))
	}
	spec, err := iceberg.NewPartitionSpecOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("partition spec: %w", err)
	}
	tbl, err = lk.cat.CreateTable(ctx, ident, isc,
		catalog.WithLocation(lk.location+"/"+name),
		catalog.WithPartitionSpec(&spec),
		// Merge-on-read (publishDelta): Trino, Spark, Athena and DuckDB
		// apply position deletes; compactIfDue bounds them.
		catalog.WithProperties(tableProps))
	if errors.Is(err, catalog.ErrTableAlreadyExists) {
		// Another warehouse's publish created it a moment ago.
		if tbl, err = lk.cat.LoadTable(ctx, ident); err == nil {
			return addColumns(ctx, tbl, sc)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	return tbl, nil
}

// exists reports whether the lake has table name.
func (lk *Lake) exists(ctx context.Context, name string) bool {
	ok, err := lk.cat.CheckTableExists(ctx, append(slices.Clone(lk.ns), name))
	return err == nil && ok
}

// addColumns evolves tbl's schema with the columns of sc it lacks (a view
// or a bookkeeping table that gained a column), as optional columns at the
// end, in one commit; older data files read them as null.
func addColumns(ctx context.Context, tbl *table.Table, sc *arrow.Schema) (*table.Table, error) {
	var missing []arrow.Field
	for _, f := range sc.Fields() {
		if _, ok := tbl.Schema().FindFieldByName(f.Name); !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return tbl, nil
	}
	txn := tbl.NewTransaction()
	upd := txn.UpdateSchema(true, false)
	for _, f := range missing {
		typ, err := table.ArrowTypeToIceberg(f.Type, false)
		if err != nil {
			return nil, fmt.Errorf("add column %s: %w", f.Name, err)
		}
		upd = upd.AddColumn([]string{f.Name}, typ, "", false, nil)
	}
	if err := upd.Commit(); err != nil {
		return nil, fmt.Errorf("add columns: %w", err)
	}
	tbl, err := txn.Commit(ctx)
	if err != nil {
		return nil, fmt.Errorf("add columns: %w", err)
	}
	return tbl, nil
}

// changeFilter selects the rows a run of source replaces: its rows, in the
// changed partitions (year values, or NullPartition for a missing date).
func changeFilter(tbl *table.Table, t load.Table, source string, vals []string) (iceberg.BooleanExpression, error) {
	bySource := iceberg.EqualTo(iceberg.Reference(load.DataSource), source)
	if vals == nil || t.Partition == nil {
		return bySource, nil
	}
	field, ok := tbl.Schema().FindFieldByName(t.Partition.Column)
	if !ok {
		return nil, fmt.Errorf("no column %s", t.Partition.Column)
	}
	col := iceberg.Reference(t.Partition.Column)
	var years []iceberg.BooleanExpression
	for _, v := range vals {
		if v == load.NullPartition {
			years = append(years, iceberg.IsNull(col))
			continue
		}
		y, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("partition value %q: %w", v, err)
		}
		from := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		to := time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC)
		switch field.Type.(type) {
		case iceberg.DateType:
			years = append(years, iceberg.NewAnd(
				iceberg.GreaterThanEqual(col, iceberg.Date(from.Unix()/86400)),
				iceberg.LessThan(col, iceberg.Date(to.Unix()/86400))))
		case iceberg.TimestampTzType, iceberg.TimestampType:
			years = append(years, iceberg.NewAnd(
				iceberg.GreaterThanEqual(col, iceberg.Timestamp(from.UnixMicro())),
				iceberg.LessThan(col, iceberg.Timestamp(to.UnixMicro()))))
		default:
			return nil, fmt.Errorf("partition column %s is %s, not a date or timestamp", t.Partition.Column, field.Type)
		}
	}
	switch len(years) {
	case 0:
		return iceberg.AlwaysFalse{}, nil
	case 1:
		return iceberg.NewAnd(bySource, years[0]), nil
	}
	return iceberg.NewAnd(bySource, iceberg.NewOr(years[0], years[1], years[2:]...)), nil
}

var _ load.LakeReader = (*Lake)(nil)

// Contents lists the tables of the lake with their CREATE statements.
func (lk *Lake) Contents(ctx context.Context) ([]load.LakeTableInfo, error) {
	idents, err := lk.tables(ctx)
	if err != nil {
		return nil, err
	}
	var out []load.LakeTableInfo
	for _, ident := range idents {
		tbl, err := lk.cat.LoadTable(ctx, ident)
		if err != nil {
			return nil, fmt.Errorf("iceberg lake: load %s: %w", ident[len(ident)-1], err)
		}
		info := load.LakeTableInfo{Name: ident[len(ident)-1], SQL: tbl.Properties()[propSQL]}
		if s := tbl.CurrentSnapshot(); s != nil && s.Summary != nil {
			info.Rows, _ = strconv.ParseInt(s.Summary.Properties["total-records"], 10, 64)
		}
		out = append(out, info)
	}
	return out, nil
}

// ReadTable streams the current snapshot of a table.
func (lk *Lake) ReadTable(ctx context.Context, name string) (load.RecordReader, error) {
	return lk.readTable(ctx, name, iceberg.AlwaysTrue{})
}

// ReadSource streams the rows of source in the current snapshot of a
// table; none for a table without a source column.
func (lk *Lake) ReadSource(ctx context.Context, name, source string) (load.RecordReader, error) {
	var filter iceberg.BooleanExpression = iceberg.AlwaysFalse{}
	if column := load.SourceColumn(name); column != "" {
		filter = iceberg.EqualTo(iceberg.Reference(column), source)
	}
	return lk.readTable(ctx, name, filter)
}

func (lk *Lake) readTable(ctx context.Context, name string, filter iceberg.BooleanExpression) (load.RecordReader, error) {
	tbl, err := lk.Table(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("iceberg lake: load %s: %w", name, err)
	}
	sc, recs, err := tbl.Scan(table.WithRowFilter(filter)).ToArrowRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("iceberg lake: read %s: %w", name, err)
	}
	// A goroutine ranges over the batches and hands them over: the
	// reader's Next runs on DuckDB's threads (a cgo callback), where an
	// iter.Pull coroutine may not switch.
	p := &pulled{schema: sc, ch: make(chan batchOrErr), done: make(chan struct{})}
	go func() {
		defer close(p.ch)
		for rec, err := range recs {
			if rec != nil {
				rec.Retain()
			}
			select {
			case p.ch <- batchOrErr{rec, err}:
			case <-p.done:
				if rec != nil {
					rec.Release()
				}
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p, nil
}

type batchOrErr struct {
	rec arrow.RecordBatch
	err error
}

// pulled is a record reader over an iterator of batches.
type pulled struct {
	schema *arrow.Schema
	ch     chan batchOrErr
	done   chan struct{}
	closed bool
	cur    arrow.RecordBatch
	err    error
}

func (p *pulled) Schema() *arrow.Schema          { return p.schema }
func (p *pulled) RecordBatch() arrow.RecordBatch { return p.cur }
func (p *pulled) Err() error                     { return p.err }

func (p *pulled) Next() bool {
	if p.cur != nil {
		p.cur.Release()
		p.cur = nil
	}
	if p.err != nil {
		return false
	}
	b, ok := <-p.ch
	if !ok {
		return false
	}
	if b.err != nil {
		p.err = b.err
		return false
	}
	p.cur = b.rec
	return true
}

func (p *pulled) Release() {
	if p.cur != nil {
		p.cur.Release()
		p.cur = nil
	}
	if !p.closed {
		p.closed = true
		close(p.done)
		for b := range p.ch { // let the goroutine finish
			if b.rec != nil {
				b.rec.Release()
			}
		}
	}
}

// concatSources streams the rows of every source of t, one after the
// other.
func concatSources(ctx context.Context, snap load.Snapshot, t load.Table, sources []string) (load.RecordReader, error) {
	if len(sources) == 0 {
		// No rows: the schema still comes from the warehouse.
		return snap.Records(ctx, t, "", nil)
	}
	readers := make([]load.RecordReader, 0, len(sources))
	for _, s := range sources {
		rr, err := snap.Records(ctx, t, s, nil)
		if err != nil {
			for _, r := range readers {
				r.Release()
			}
			return nil, err
		}
		readers = append(readers, rr)
	}
	return &chain{readers: readers}, nil
}

// chain reads several record readers of one schema in turn.
type chain struct {
	readers []load.RecordReader
	cur     int
	err     error
}

func (c *chain) Schema() *arrow.Schema { return c.readers[0].Schema() }

func (c *chain) Next() bool {
	for c.cur < len(c.readers) {
		if c.readers[c.cur].Next() {
			return true
		}
		if err := c.readers[c.cur].Err(); err != nil {
			c.err = err
			return false
		}
		c.cur++
	}
	return false
}

func (c *chain) RecordBatch() arrow.RecordBatch { return c.readers[c.cur].RecordBatch() }
func (c *chain) Err() error                     { return c.err }
func (c *chain) Release() {
	for _, r := range c.readers {
		r.Release()
	}
}

// readerOf adapts a load.RecordReader to arrow's array.RecordReader, each
// batch copied into Go memory. The warehouse's batches live in memory
// DuckDB frees as the reader moves on, while iceberg-go keeps strings that
// point into the batches it wrote (the partition values of its manifests):
// read in place, those strings would change under it.
func readerOf(rr load.RecordReader) array.RecordReader {
	return &goCopy{rr: rr}
}

type goCopy struct {
	rr  load.RecordReader
	cur arrow.RecordBatch
	err error
}

func (g *goCopy) Retain()               {}
func (g *goCopy) Release()              { g.drop() }
func (g *goCopy) Schema() *arrow.Schema { return g.rr.Schema() }
func (g *goCopy) Err() error {
	if g.err != nil {
		return g.err
	}
	return g.rr.Err()
}

func (g *goCopy) drop() {
	if g.cur != nil {
		g.cur.Release()
		g.cur = nil
	}
}

func (g *goCopy) Next() bool {
	g.drop()
	if g.err != nil || !g.rr.Next() {
		return false
	}
	rec := g.rr.RecordBatch()
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		c, err := array.Concatenate([]arrow.Array{rec.Column(i)}, memory.DefaultAllocator)
		if err != nil {
			for _, d := range cols[:i] {
				d.Release()
			}
			g.err = fmt.Errorf("copy a batch: %w", err)
			return false
		}
		cols[i] = c
	}
	g.cur = array.NewRecordBatch(rec.Schema(), cols, rec.NumRows())
	for _, c := range cols {
		c.Release()
	}
	return true
}

func (g *goCopy) RecordBatch() arrow.RecordBatch { return g.cur }
func (g *goCopy) Record() arrow.RecordBatch      { return g.cur }
