//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/fhirlake/fhirlake/load"
)

// partitionExpr is the SQL expression of a row's partition value: the
// year of its partition column, or load.NullPartition.
func partitionExpr(p *load.Partition) string {
	return fmt.Sprintf("coalesce(CAST(%s AS VARCHAR), '%s')", utcYear(p.Column), load.NullPartition)
}

// utcYear is the SQL expression of the year of the DATE or TIMESTAMPTZ
// column col in UTC, as Iceberg's year transform takes it, whatever the
// session's time zone. DuckDB's year() of a TIMESTAMPTZ is the year in
// the session's zone, the machine's unless set (connect sets UTC), so a
// New Year's Eve evening in New York went to the year before on a
// machine there and to the next one elsewhere; epoch_us counts from the
// epoch in UTC, for a date from its midnight.
func utcYear(col string) string {
	return fmt.Sprintf("year(make_timestamp(epoch_us(%s)))", ident(col))
}

// maxStoredRejects caps the rejects kept in memory and written to
// fhirlake_rejects for one run; the count goes on past it.
const maxStoredRejects = 100_000

// Loader stages one run. It is safe for concurrent use: batches from many
// transform workers are serialised onto the warehouse connection.
type Loader struct {
	w      *Warehouse
	source string
	tables map[string]load.Table
	// dir holds the stage files (see stage.go); stages has one stage per
	// table, the resource index included.
	dir    string
	stages map[string]*stage

	mu sync.Mutex // guards everything below and the connection
	// gen counts Unstage calls: rows staged after the n-th call are of
	// generation n, and a later Unstage of their resource drops them.
	gen int
	// ingested is the number of resource index segments copied into its
	// temp table (syncResources).
	ingested int
	// repeatedAt is ingested when anyRepeated last looked, -1 before
	// (Begin), and repeated what it found: the table only grows by
	// syncResources, so the answer stands until it does.
	repeatedAt int
	repeated   bool
	seq        int
	rows       map[string]int64
	resources  int64
	rejects    []load.Reject
	nrejects   int64
	deleted    []load.Tombstone
	// deletedResources counts the distinct resources deleted[] named,
	// set by merge.
	deletedResources int64
	matches          []load.MemberMatch
	// relinked and conflicts are what merge did about persons: relinked
	// is set when a patient's person changed.
	relinked  bool
	conflicts int64
	skipped   int64
	unchanged int64
	// indexChanged is set when the commit changes fhirlake_resources.
	indexChanged bool
	keys         map[string][]string // see load.Changes.Keys
	appended     map[string]int64    // see load.Changes.Appended
	// roomy is set while DuckDB's memory limit is raised for the
	// commit's deletes (roomForDeletes).
	roomy bool
	done  bool
}

// Begin starts staging a run of source into the given tables. Tables that
// do not exist yet are created from their schema, with DataSource in
// front. Every row the run stages belongs to source, and the run replaces
// and deletes rows of source only.
func (w *Warehouse) Begin(ctx context.Context, source string, tables []load.Table) (load.Loader, error) {
	if w.version != load.SchemaVersion {
		return nil, fmt.Errorf("load into %s: %w (layout %d); Upgrade it first", w.path, load.ErrOldWarehouse, w.version)
	}
	if err := load.CheckSource(source); err != nil {
		return nil, err
	}
	dir, err := w.newStageDir()
	if err != nil {
		return nil, err
	}
	l := &Loader{w: w, source: source, tables: map[string]load.Table{}, rows: map[string]int64{}, dir: dir, stages: map[string]*stage{}, repeatedAt: -1}
	all := append([]load.Table{{Name: load.Resources, Schema: load.ResourcesSchema}}, tables...)
	for _, t := range all {
		if _, dup := l.tables[t.Name]; dup {
			return nil, fmt.Errorf("table %s declared twice", t.Name)
		}
		if t.Name != load.Resources && (t.Key == "" || t.Schema.FieldIndices(t.Key) == nil) {
			return nil, fmt.Errorf("table %s: key column %q not in schema", t.Name, t.Key)
		}
		if t.Schema.FieldIndices(load.DataSource) != nil {
			return nil, fmt.Errorf("table %s: column %s is reserved (the source of each row)", t.Name, load.DataSource)
		}
		if t.Name == load.PersonTable || strings.HasPrefix(t.Name, load.BookkeepingPrefix) {
			return nil, fmt.Errorf("table %s: the name is reserved", t.Name)
		}
		l.tables[t.Name] = t
		l.stages[t.Name] = newStage(dir, stageFile(t.Name), t.Schema)
		if err := l.createStage(ctx, t); err != nil {
			l.drop(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return l, nil
}

func stageName(table string) string { return "fhirlake_stage_" + table }

// createStage makes the table's empty temp staging table, whose columns
// (DuckDB's reading of the Arrow schema) are those of the warehouse table.
// The resource index's is filled from its stage files (syncResources); the
// other tables' rows stay in their files until the commit.
func (l *Loader) createStage(ctx context.Context, t load.Table) error {
	view := "fhirlake_in_" + t.Name
	reader, err := array.NewRecordReader(t.Schema, nil)
	if err != nil {
		return fmt.Errorf("stage %s: %w", t.Name, err)
	}
	defer reader.Release()
	release, err := l.w.ar.RegisterView(reader, view)
	if err != nil {
		return fmt.Errorf("stage %s: %w", t.Name, err)
	}
	defer release()
	cols := "''::VARCHAR AS " + ident(load.DataSource) + ", *"
	if t.Name == load.Resources {
		cols = "*"
	}
	q := fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS SELECT %s FROM %s LIMIT 0; DROP VIEW IF EXISTS %s",
		ident(stageName(t.Name)), cols, ident(view), ident(view))
	if err := l.w.exec(ctx, q); err != nil {
		return fmt.Errorf("stage %s: %w", t.Name, err)
	}
	return nil
}

// stageFile is the file name prefix of a table's stage files.
func stageFile(table string) string {
	if table == load.Resources {
		return "resources"
	}
	return "table_" + table
}

// WriteBatch stages one batch of rows for table: it appends the batch to
// the table's stage file. Batches of different tables are written at once.
// It does not keep rec.
func (l *Loader) WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error {
	st, ok := l.stages[table]
	if !ok {
		return fmt.Errorf("stage batch: unknown table %s", table)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if table == load.Resources && !rec.Schema().Equal(load.ResourcesSchema) {
		var err error // the stream may carry more columns, or say a column is never null: keep the index's
		if rec, err = project(rec, load.ResourcesSchema); err != nil {
			return fmt.Errorf("stage batch for %s: %w", table, err)
		}
		defer rec.Release()
	}
	if !rec.Schema().Equal(st.schema) {
		return fmt.Errorf("stage batch for %s: the batch's columns %v are not the table's %v", table, rec.Schema(), st.schema)
	}
	l.mu.Lock()
	done, gen := l.done, l.gen
	l.mu.Unlock()
	if done {
		return fmt.Errorf("stage batch for %s: run already finished", table)
	}
	if err := st.write(rec, gen); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if table == load.Resources {
		l.resources += rec.NumRows()
	} else {
		l.rows[table] += rec.NumRows()
	}
	return nil
}

// project returns the columns of schema taken from rec, by name.
func project(rec arrow.RecordBatch, schema *arrow.Schema) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, len(schema.Fields()))
	for i, f := range schema.Fields() {
		idx := rec.Schema().FieldIndices(f.Name)
		if len(idx) == 0 {
			return nil, fmt.Errorf("column %s missing", f.Name)
		}
		cols[i] = rec.Column(idx[0])
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows()), nil
}

// stagedView registers a view of the table's staged rows, generation by
// generation, without those a later Unstage dropped, and returns the SQL
// of that selection and the function that releases it. It holds l.mu.
//
// Until the release, the connection's optimizer pushes neither column
// lists nor filters into scans: DuckDB hands both to the producer of an
// Arrow view, and the Go stream behind RegisterView ignores them, so a
// query naming some columns read the first ones instead, and a filter was
// dropped (TestStagedViewsAnswerRight).
func (l *Loader) stagedView(t load.Table) (string, func(), error) {
	return l.stagedViewAt(t, l.gen)
}

// stagedViewAt is stagedView as it was after the asOf-th Unstage.
func (l *Loader) stagedViewAt(t load.Table, asOf int) (string, func(), error) {
	st := l.stages[t.Name]
	var parts []string
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
		l.w.exec(context.Background(), "RESET disabled_optimizers")
	}
	if err := l.w.exec(context.Background(), "SET disabled_optimizers = 'filter_pushdown,unused_columns'"); err != nil {
		return "", nil, fmt.Errorf("read staged %s: %w", t.Name, err)
	}
	for g := 0; g <= asOf; g++ {
		segs, err := st.sealed(func(s segment) bool { return s.gen == g })
		if err != nil {
			release()
			return "", nil, err
		}
		if len(segs) == 0 {
			continue
		}
		l.seq++
		view := fmt.Sprintf("fhirlake_in_%s_%d", t.Name, l.seq)
		rel, err := l.w.ar.RegisterView(newSegmentReader(st.schema, segs), view)
		if err != nil {
			release()
			return "", nil, fmt.Errorf("read staged %s: %w", t.Name, err)
		}
		releases = append(releases, func() { rel(); l.w.exec(context.Background(), "DROP VIEW IF EXISTS "+ident(view)) })
		q := "SELECT * FROM " + ident(view)
		if g < asOf {
			q += fmt.Sprintf(" WHERE %s NOT IN (SELECT id FROM fhirlake_unstaged WHERE resource_type = %s AND gen > %d AND gen <= %d)",
				ident(t.Key), sqlString(t.Resource), g, asOf)
		}
		parts = append(parts, q)
	}
	if len(parts) == 0 {
		return fmt.Sprintf("SELECT * EXCLUDE (%s) FROM %s", ident(load.DataSource), ident(stageName(t.Name))), release, nil // the empty shape
	}
	return strings.Join(parts, " UNION ALL "), release, nil
}

// syncResources copies the resource index's new stage files into its
// temp table, where the SQL of Duplicates and the commit reads it. It
// holds l.mu.
func (l *Loader) syncResources(ctx context.Context) error {
	segs, err := l.stages[load.Resources].sealed(nil)
	if err != nil {
		return err
	}
	if l.ingested == len(segs) {
		return nil
	}
	l.seq++
	view := fmt.Sprintf("fhirlake_in_resources_%d", l.seq)
	release, err := l.w.ar.RegisterView(newSegmentReader(load.ResourcesSchema, segs[l.ingested:]), view)
	if err != nil {
		return fmt.Errorf("read the resource index: %w", err)
	}
	defer release()
	q := fmt.Sprintf("INSERT INTO %s SELECT * FROM %s; DROP VIEW IF EXISTS %s", ident(stageName(load.Resources)), ident(view), ident(view))
	if err := l.w.exec(ctx, q); err != nil {
		return fmt.Errorf("read the resource index: %w", err)
	}
	l.ingested = len(segs)
	return nil
}

// Reject records a reject for the run.
func (l *Loader) Reject(_ context.Context, r load.Reject) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nrejects++
	if len(l.rejects) < maxStoredRejects {
		l.rejects = append(l.rejects, r)
	}
	return nil
}

// Duplicates returns, for every resource the run carried more than once
// (the same id on several lines, perhaps in several versions), the line of
// the version that wins: newest meta.lastUpdated, then versionId, then
// file and line order, as at commit.
func (l *Loader) Duplicates(ctx context.Context) (_ []load.Located, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() { err = outOfMemory(err) }()
	if err := l.syncResources(ctx); err != nil {
		return nil, err
	}
	if repeated, err := l.anyRepeated(ctx); err != nil || !repeated {
		return nil, err
	}
	rows, err := l.w.conn.QueryContext(ctx, `
		WITH d AS (SELECT DISTINCT * FROM fhirlake_stage__resources),
		ranked AS (
			SELECT resource_type, id, file, line,
			       count(*) OVER (PARTITION BY resource_type, id) AS n,
			       row_number() OVER (PARTITION BY resource_type, id ORDER BY `+newestFirst+`) AS rn
			FROM d)
		SELECT resource_type, id, file, line FROM ranked WHERE n > 1 AND rn = 1 ORDER BY file, line`)
	if err != nil {
		return nil, fmt.Errorf("find duplicates: %w", err)
	}
	defer rows.Close()
	var out []load.Located
	for rows.Next() {
		var s load.Located
		if err := rows.Scan(&s.ResourceType, &s.ID, &s.File, &s.Line); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Unstage drops the staged table rows of these resources (the resource
// index keeps them, so the version ranking is unchanged); the caller then
// stages the winning version's rows again, which go into a new generation
// of stage files. The rows stay in the files; the commit skips them.
func (l *Loader) Unstage(ctx context.Context, srcs []load.Located) (err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() { err = outOfMemory(err) }()
	if len(srcs) == 0 {
		return nil
	}
	byType := map[string][]string{}
	for _, s := range srcs {
		byType[s.ResourceType] = append(byType[s.ResourceType], s.ID)
	}
	if err := l.w.exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS fhirlake_unstaged (resource_type VARCHAR, id VARCHAR, gen INTEGER)"); err != nil {
		return fmt.Errorf("unstage duplicates: %w", err)
	}
	next := l.gen + 1
	for typ, ids := range byType {
		if err := l.w.exec(ctx, "INSERT INTO fhirlake_unstaged SELECT ?, unnest(?::VARCHAR[]), ?", typ, ids, next); err != nil {
			return fmt.Errorf("unstage duplicates: %w", err)
		}
	}
	// The rows counted as staged lose those now dropped.
	for name, t := range l.tables {
		if name == load.Resources || len(byType[t.Resource]) == 0 {
			continue
		}
		q, release, err := l.stagedViewAt(t, l.gen)
		if err != nil {
			return err
		}
		var n int64
		err = l.w.conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM (%s) WHERE %s IN (SELECT id FROM fhirlake_unstaged WHERE resource_type = ? AND gen = ?)`,
			q, ident(t.Key)), t.Resource, next).Scan(&n)
		release()
		if err != nil {
			return fmt.Errorf("unstage duplicates of %s: %w", name, err)
		}
		l.rows[name] -= n
	}
	l.gen = next
	return nil
}

// NewValues returns the distinct non-null values of column among the rows
// staged for table, and of also, that the warehouse table does not hold
// yet for the run's source (all of them when the table does not exist),
// sorted. The pipeline uses it to find members new to a scope: patients
// newly attributed, seen for the first time, or newly asked for.
func (l *Loader) NewValues(ctx context.Context, table, column string, also []string) (_ []string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer func() { err = outOfMemory(err) }()
	if also == nil {
		also = []string{}
	}
	candidates := "SELECT unnest($1::VARCHAR[]) AS v"
	if _, ok := l.tables[table]; ok {
		staged, release, err := l.stagedView(l.tables[table])
		if err != nil {
			return nil, err
		}
		defer release()
		candidates += fmt.Sprintf(" UNION ALL SELECT CAST(%s AS VARCHAR) FROM (%s)", ident(column), staged)
	}
	exists, err := l.columns(ctx, table, false)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf("SELECT DISTINCT v FROM (%s) WHERE v IS NOT NULL", candidates)
	args := []any{also}
	if len(exists) > 0 {
		q += fmt.Sprintf(" AND v NOT IN (SELECT CAST(%s AS VARCHAR) FROM %s WHERE %s = $2 AND %s IS NOT NULL)",
			ident(column), ident(table), ident(load.DataSource), ident(column))
		args = append(args, l.source)
	}
	out, err := l.w.queryStrings(ctx, q+" ORDER BY 1", args...)
	if err != nil {
		return nil, fmt.Errorf("new values of %s.%s: %w", table, column, err)
	}
	return out, nil
}

// MemberMatches stages the run's Payer-to-Payer matches, recorded at
// commit and used to link persons (see PersonRule).
func (l *Loader) MemberMatches(_ context.Context, ms []load.MemberMatch) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return errors.New("stage member matches: run already finished")
	}
	l.matches = append(l.matches, ms...)
	return nil
}

// Delete stages tombstones: at commit the resources and all their rows in
// every table fed by their type are removed, before the run's own rows are
// inserted (so a resource both deleted and re-exported in one run stays).
func (l *Loader) Delete(_ context.Context, ts []load.Tombstone) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return errors.New("stage deletes: run already finished")
	}
	l.deleted = append(l.deleted, ts...)
	return nil
}

// Commit replaces, in one transaction, every row of each resource the run
// carried, then records the run and its rejects. On error nothing changes.
func (l *Loader) Commit(ctx context.Context, run load.Run) (load.Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return load.Stats{}, errors.New("commit: run already finished")
	}
	if run.Source != l.source {
		return load.Stats{}, fmt.Errorf("commit run %s: source %q, but the run was staged for %q", run.ID, run.Source, l.source)
	}
	l.done = true
	defer l.drop(context.WithoutCancel(ctx))

	if err := l.w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return load.Stats{}, fmt.Errorf("commit run %s: %w", run.ID, err)
	}
	defer l.roomBack(context.WithoutCancel(ctx))
	touched, err := l.merge(ctx, run)
	if err != nil {
		l.w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return load.Stats{}, fmt.Errorf("commit run %s: %w", run.ID, outOfMemory(err))
	}
	if err := l.w.exec(ctx, "COMMIT"); err != nil {
		l.w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return load.Stats{}, fmt.Errorf("commit run %s: %w", run.ID, outOfMemory(err))
	}
	rows := make(map[string]int64, len(l.rows))
	for k, v := range l.rows {
		rows[k] = v
	}
	return load.Stats{Resources: l.resources, Rejects: l.nrejects, Deleted: l.deletedResources, SkippedOlder: l.skipped, Unchanged: l.unchanged, Rows: rows,
		Changes: &load.Changes{Source: l.source, RunID: run.ID, Tables: touched, Person: l.relinked, Index: l.indexChanged, Keys: l.keys, Appended: l.appended}, PersonConflicts: l.conflicts}, nil
}

func (l *Loader) merge(ctx context.Context, run load.Run) (map[string][]string, error) {
	if err := l.syncResources(ctx); err != nil {
		return nil, err
	}
	repeated, err := l.checkResolved(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.stageDeletes(ctx, run); err != nil {
		return nil, err
	}
	// The source's first versions replace none, and are not looked for:
	// 0.1 s of a 1 GB full load.
	indexed, err := l.holds(ctx, load.IndexTable, "source")
	if err != nil {
		return nil, err
	}
	// Nor are they compared with stored ones: the staged versions, one
	// per resource, are the accepted ones, read where they are (a view).
	// Picking them took 0.7-1.0 s of a full load of the 10 GB export.
	asStaged := !indexed && !repeated
	if asStaged {
		if err := l.w.exec(ctx, acceptedStaged); err != nil {
			return nil, fmt.Errorf("pick newest versions: %w", err)
		}
	} else {
		_, tt := runTimes(run)
		args := []any{l.source, tt}
		deletes := len(l.deleted) > 0
		if deletes {
			args = append(args, run.ID)
		}
		if err := l.w.exec(ctx, acceptQuery(repeated, deletes), args...); err != nil {
			return nil, fmt.Errorf("pick newest versions: %w", err)
		}
	}
	var accepted, distinct int64
	resources := "SELECT DISTINCT resource_type, id FROM " + ident(stageName(load.Resources))
	if !repeated {
		resources = "FROM " + ident(stageName(load.Resources))
	}
	err = l.w.conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM fhirlake_accepted),
		(SELECT count(*) FILTER (WHERE unchanged) FROM fhirlake_accepted),
		(SELECT count(*) FROM (`+resources+`)),
		(SELECT count(*) FROM fhirlake_deleted WHERE run_id = $1)`, run.ID).Scan(&accepted, &l.unchanged, &distinct, &l.deletedResources)
	if err != nil {
		return nil, fmt.Errorf("pick newest versions: %w", err)
	}
	l.skipped = distinct - accepted
	// Every resource staged goes in (a first load, most runs): its rows
	// need no check against the accepted versions. Without the check a
	// full load of a 1 GB export peaked at 554-624 MB of RSS against
	// 654-714 MB (three alternating runs each; same time).
	everyStaged := accepted == distinct && l.unchanged == 0
	l.indexChanged = accepted > l.unchanged || l.deletedResources > 0
	if l.unchanged > 0 {
		if err := l.w.exec(ctx, "DELETE FROM fhirlake_accepted WHERE unchanged"); err != nil {
			return nil, fmt.Errorf("pick newest versions: %w", err)
		}
	}
	// Only the tables of the resource types the run replaces or deletes
	// have rows to change; the others are left alone (an unchanged reload
	// touches no table at all).
	changing, err := l.changingTypes(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	if err := l.roomForDeletes(ctx, changing, indexed); err != nil {
		return nil, err
	}
	changed := accepted - l.unchanged + l.deletedResources // perhaps some twice
	// A lake that changes rows by key needs no partitions: finding them
	// took two scans of each changed table, about 0.2 s of a 1% run of a
	// 10 GB export (5.1 s) and 0.17 s of one of a 1 GB export (1.6 s).
	listParts := run.Changes.Partitions(changed)
	if err := l.changedKeys(ctx, run.ID, run.Changes.Keys(changed)); err != nil {
		return nil, err
	}
	if l.keys != nil && run.Decided != nil {
		run.Decided(l.keys)
	}
	touched := map[string][]string{}
	l.appended = map[string]int64{}
	names := make([]string, 0, len(l.tables))
	for n := range l.tables {
		if n != load.Resources {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	// Every table's columns in one query: two per table took 5-6 ms each
	// of a 1% run's commit, 80 ms for the 14 tables of the views.
	described, err := l.allColumns(ctx)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		t := l.tables[name]
		if err := l.ensureTable(ctx, t, described); err != nil {
			return nil, err
		}
		if !changing[t.Resource] {
			continue
		}
		// The rows of this source's resources the run replaces or deletes.
		affected := fmt.Sprintf(`%s = $3 AND %s IN (
			SELECT id FROM fhirlake_accepted WHERE resource_type = $1
			UNION ALL SELECT id FROM fhirlake_deleted WHERE run_id = $2 AND resource_type = $1)`,
			ident(load.DataSource), ident(t.Key))
		// A table that holds no row of the source yet (its first load, a
		// new table) has none to replace. Finding that out reads the first
		// rows of its source column; replacing them hashed every id the
		// run accepted and scanned the table's keys, and listed its
		// partitions twice that way: 0.2-0.3 s of a full load of the 1 GB
		// export, which took 10-12 s (two runs each, alternating, on a
		// slow host).
		held, err := l.holds(ctx, name, load.DataSource)
		if err != nil {
			return nil, err
		}
		var before []string
		var deleted int64
		if held {
			if listParts {
				if before, err = l.partitions(ctx, t, affected, t.Resource, run.ID, l.source); err != nil {
					return nil, err
				}
			}
			res, err := l.w.conn.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s", ident(name), affected), t.Resource, run.ID, l.source)
			if err != nil {
				return nil, fmt.Errorf("replace rows of %s: %w", name, err)
			}
			deleted, _ = res.RowsAffected()
		}
		// Only rows of accepted (newest) versions go in, streamed from the
		// stage files. A resource the run carried more than once was staged
		// again alone (restageDuplicates), so each has one copy of its rows.
		staged, release, err := l.stagedView(t)
		if err != nil {
			return nil, err
		}
		ins := fmt.Sprintf(`INSERT INTO %s BY NAME SELECT %s AS %s, * FROM (%s)`,
			ident(name), sqlString(l.source), ident(load.DataSource), staged)
		var args []any
		if !everyStaged {
			ins += fmt.Sprintf(" WHERE %s IN (SELECT id FROM fhirlake_accepted WHERE resource_type = $1)", ident(t.Key))
			args = []any{t.Resource}
		}
		var res sql.Result
		err = l.w.unordered(ctx, func() (err error) {
			res, err = l.w.conn.ExecContext(ctx, ins, args...)
			return err
		})
		release()
		if err != nil {
			return nil, fmt.Errorf("insert rows of %s: %w", name, err)
		}
		inserted, _ := res.RowsAffected()
		if deleted == 0 && inserted == 0 {
			continue // the lake's copy is still right
		}
		touched[name] = nil
		if listParts {
			// Every row of the source in a table that held none is the
			// run's.
			where, args := affected, []any{t.Resource, run.ID, l.source}
			if !held {
				where, args = ident(load.DataSource)+" = $1", []any{l.source}
			}
			after, err := l.partitions(ctx, t, where, args...)
			if err != nil {
				return nil, err
			}
			touched[name] = union(before, after)
		}
		l.appended[name] = inserted
	}
	// Persons: relinked when the run changed patients or their
	// identifiers, or matched members, or the crosswalk is new.
	if err := l.recordMatches(ctx, run.ID); err != nil {
		return nil, err
	}
	_, patients := touched["patient"]
	_, idents := touched["patient_identifier"]
	missing, err := l.personsMissing(ctx)
	if err != nil {
		return nil, err
	}
	if patients || idents || len(l.matches) > 0 || missing {
		if l.conflicts, l.relinked, err = l.linkPersons(ctx, run.Person); err != nil {
			return nil, err
		}
	}
	// The version index: accepted versions replace what was there, deleted
	// resources leave it; both only for this source.
	var index []string
	if indexed {
		index = append(index, storedVersions)
		if l.deletedResources > 0 {
			index = append(index, `DELETE FROM fhirlake_resources WHERE source = $2 AND (resource_type, id) IN (
				SELECT resource_type, id FROM fhirlake_deleted WHERE run_id = $1)`)
		}
	}
	// When the run takes every resource it staged, once each (a first
	// load), the staged index rows are the accepted versions. Read from
	// their table, filled before the commit's transaction (Duplicates),
	// the insert runs on every core; from fhirlake_accepted, made inside
	// it, on one: 1.5 s against 2.5 s in a full load of the 10 GB export,
	// 0.18-0.19 s against 0.24-0.30 s at 1 GB (three alternating runs).
	versions := "fhirlake_accepted"
	if everyStaged && !repeated {
		versions = ident(stageName(load.Resources))
	}
	drop := "DROP TABLE fhirlake_accepted"
	if asStaged {
		drop = "DROP VIEW fhirlake_accepted"
	}
	index = append(index,
		`INSERT INTO fhirlake_resources SELECT $2, resource_type, id, meta_last_updated, version_id, $1, content_hash FROM `+versions, drop)
	for _, q := range index {
		if err := l.w.exec(ctx, q, run.ID, l.source); err != nil {
			return nil, fmt.Errorf("update version index: %w", err)
		}
	}
	if n := accepted - l.unchanged; n > 0 {
		l.appended[load.IndexTable] = n // the index's last rows (RunIndex)
	}
	for _, part := range run.Exports() {
		if part.TransactionTime.IsZero() || len(part.WatermarkTypes) == 0 {
			continue
		}
		err := l.w.exec(ctx, `INSERT INTO fhirlake_watermarks
			SELECT $1, $2, unnest($3::VARCHAR[]), $4, $5
			ON CONFLICT (source, scope, resource_type) DO UPDATE SET
				transaction_time = greatest(fhirlake_watermarks.transaction_time, excluded.transaction_time),
				run_id = CASE WHEN excluded.transaction_time > fhirlake_watermarks.transaction_time
				              THEN excluded.run_id ELSE fhirlake_watermarks.run_id END`,
			run.Source, part.Scope, part.WatermarkTypes, part.TransactionTime, run.ID)
		if err != nil {
			return nil, fmt.Errorf("advance watermark of %s: %w", part.Scope, err)
		}
	}
	rowsMap := "MAP {" + joinRows(l.rows) + "}"
	since, tt := runTimes(run)
	wtypes := run.WatermarkTypes
	if wtypes == nil || run.TransactionTime.IsZero() {
		wtypes = []string{}
	}
	err = l.w.exec(ctx, `INSERT INTO fhirlake_runs VALUES (?, ?, ?, ?, now(), 'committed', ?, ?, ?, ?, ?, ?, ?, `+rowsMap+`, ?)`,
		run.ID, run.Source, run.Scope, run.Started, since, tt, l.resources, l.skipped, l.deletedResources, l.nrejects, wtypes, nullable(load.JobsText(run.Jobs())))
	if err != nil {
		return nil, fmt.Errorf("record run: %w", err)
	}
	if err := l.recordRejects(ctx, run.ID); err != nil {
		return nil, err
	}
	if err := l.recordExportIssues(ctx, run); err != nil {
		return nil, err
	}
	return touched, nil
}

// changingTypes returns the resource types of which the run replaces
// (fhirlake_accepted) or deletes resources.
func (l *Loader) changingTypes(ctx context.Context, runID string) (map[string]bool, error) {
	rows, err := l.w.conn.QueryContext(ctx, `SELECT resource_type FROM fhirlake_accepted
		UNION SELECT resource_type FROM fhirlake_deleted WHERE run_id = $1`, runID)
	if err != nil {
		return nil, fmt.Errorf("types the run changes: %w", err)
	}
	defer rows.Close()
	types := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("types the run changes: %w", err)
		}
		types[t] = true
	}
	return types, rows.Err()
}

// changedKeys sets l.keys, the ids of the resources the run replaced or
// deleted by type (load.Changes.Keys), when list says to. Listing a full
// load's 274,000 resources (1 GB export) took 0.16 s, which a lake that
// does not read them is spared.
func (l *Loader) changedKeys(ctx context.Context, runID string, list bool) error {
	l.keys = nil
	if !list {
		return nil
	}
	rows, err := l.w.conn.QueryContext(ctx, `SELECT resource_type, id FROM fhirlake_accepted
		UNION SELECT resource_type, id FROM fhirlake_deleted WHERE run_id = $1
		ORDER BY 1, 2`, runID)
	if err != nil {
		return fmt.Errorf("list changed resources: %w", err)
	}
	defer rows.Close()
	keys := map[string][]string{}
	for rows.Next() {
		var typ, id string
		if err := rows.Scan(&typ, &id); err != nil {
			return fmt.Errorf("list changed resources: %w", err)
		}
		keys[typ] = append(keys[typ], id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list changed resources: %w", err)
	}
	l.keys = keys
	return nil
}

// anyRepeated says whether a resource was staged more than once. Most
// runs stage each resource once, which this finds with one hash
// aggregate; Duplicates and checkResolved rank or compare the copies only
// when there are some. For the 287,000 resources of a 1 GB export: 0.03 s,
// against 0.1-0.2 s for Duplicates and 0.07 s for checkResolved. The
// commit asks again what Duplicates asked; unless resources were staged
// since, the answer is the one it had (asking again took 0.04 s of a full
// load of the 1 GB export, by DuckDB's query log). It holds l.mu.
func (l *Loader) anyRepeated(ctx context.Context) (bool, error) {
	if l.repeatedAt == l.ingested {
		return l.repeated, nil
	}
	var repeated bool
	err := l.w.conn.QueryRowContext(ctx, `SELECT EXISTS (
		SELECT 1 FROM fhirlake_stage__resources GROUP BY resource_type, id HAVING count(*) > 1)`).Scan(&repeated)
	if err != nil {
		return false, fmt.Errorf("find duplicates: %w", err)
	}
	l.repeatedAt, l.repeated = l.ingested, repeated
	return repeated, nil
}

// ErrUnresolvedDuplicates means a run staged a resource more than once
// and did not resolve it (Duplicates, Unstage and the winner's rows again):
// its rows would be in the table twice.
var ErrUnresolvedDuplicates = errors.New("resources staged more than once were not resolved")

// checkResolved refuses to commit resources staged more than once whose
// copies were not unstaged: the commit inserts every staged row, so each
// resource must have one copy of its rows. It says whether some resource
// was staged more than once (anyRepeated). It holds l.mu.
func (l *Loader) checkResolved(ctx context.Context) (repeated bool, err error) {
	if repeated, err = l.anyRepeated(ctx); err != nil || !repeated {
		return repeated, err
	}
	unstaged := "SELECT NULL AS resource_type, NULL AS id"
	if l.gen > 0 {
		unstaged = "SELECT resource_type, id FROM fhirlake_unstaged"
	}
	var n int64
	err = l.w.conn.QueryRowContext(ctx, `SELECT count(*) FROM (
		SELECT resource_type, id FROM (SELECT DISTINCT * FROM fhirlake_stage__resources)
		GROUP BY ALL HAVING count(*) > 1
		EXCEPT `+unstaged+`)`).Scan(&n)
	if err != nil {
		return true, fmt.Errorf("check duplicates: %w", err)
	}
	if n > 0 {
		return true, fmt.Errorf("%w: %d resources (see Loader.Duplicates)", ErrUnresolvedDuplicates, n)
	}
	return true, nil
}

// recordExportIssues writes the run's ExportIssues to
// fhirlake_export_errors.
func (l *Loader) recordExportIssues(ctx context.Context, run load.Run) error {
	for _, is := range run.ExportIssues {
		codes := is.Codes
		if codes == nil {
			codes = []string{}
		}
		err := l.w.exec(ctx, `INSERT INTO fhirlake_export_errors VALUES (?, ?, ?, ?, ?, ?)`,
			run.ID, l.source, nullable(is.ResourceType), is.Severity, is.Issues, codes)
		if err != nil {
			return fmt.Errorf("record export errors: %w", err)
		}
	}
	return nil
}

// holds says whether table has a row of the loader's source in column
// (a data table's data_source, the index's source).
func (l *Loader) holds(ctx context.Context, table, column string) (bool, error) {
	var held bool
	err := l.w.conn.QueryRowContext(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s = $1)", ident(table), ident(column)), l.source).Scan(&held)
	if err != nil {
		return false, fmt.Errorf("rows of source in %s: %w", table, err)
	}
	return held, nil
}

// partitions returns the lake partition values of the table's rows that
// match where (nil for an unpartitioned table).
func (l *Loader) partitions(ctx context.Context, t load.Table, where string, args ...any) ([]string, error) {
	if t.Partition == nil {
		return nil, nil
	}
	q := fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s", partitionExpr(t.Partition), ident(t.Name), where)
	out, err := l.w.queryStrings(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", t.Name, err)
	}
	return out, nil
}

// union merges two sets of partition values, sorted.
func union(a, b []string) []string {
	set := map[string]bool{}
	for _, v := range append(append([]string{}, a...), b...) {
		set[v] = true
	}
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// acceptSQL picks, per resource the run carried, the newest version within
// the run (meta.lastUpdated as an instant, then versionId, numerically
// when it is a number, then file and line order) and keeps it only when
// the warehouse does not already hold a strictly newer one of the same
// source ($1). A version without meta.lastUpdated (Epic sends none) is
// dated by the transaction time of the export that delivered it: the
// run's ($2) for the new one, the stored run's for the stored one (a
// replayed older export loses to a newer one). Equal versions are taken
// again (the later run wins a tie) unless their content hashes are equal:
// those are marked unchanged, and the commit leaves their rows as they
// are. A resource the run deletes ($3) has no stored version to lose to:
// its tombstone takes the stored one and all its rows, and the version
// the run carries with it goes in, whatever its date. cur_rowid is the
// stored version's row in the version index, which the commit deletes
// by it (see storedVersions).
const acceptSQL = `
CREATE OR REPLACE TEMP TABLE fhirlake_accepted AS
WITH ranked AS (%s),
dated AS (
	SELECT r.*, coalesce(r.meta_last_updated, $2::TIMESTAMPTZ) AS new_at,
	       cur.id AS cur_id, cur.content_hash AS cur_hash, cur.version_id AS cur_version,
	       coalesce(cur.meta_last_updated, cr.transaction_time) AS cur_at, cur.cur_rowid
	FROM ranked AS r
	LEFT JOIN %s AS cur ON cur.source = $1 AND cur.resource_type = r.resource_type AND cur.id = r.id
	LEFT JOIN fhirlake_runs AS cr ON cur.meta_last_updated IS NULL AND cr.run_id = cur.run_id
	WHERE r.rn = 1)
SELECT resource_type, id, meta_last_updated, version_id, content_hash,
       coalesce(cur_hash = content_hash, false) AS unchanged, cur_rowid
FROM dated
WHERE cur_id IS NULL OR NOT (
	coalesce(cur_at, '-infinity'::TIMESTAMPTZ) > coalesce(new_at, '-infinity'::TIMESTAMPTZ)
	OR (cur_at IS NOT DISTINCT FROM new_at
	    AND coalesce(try_cast(cur_version AS BIGINT), -1) > coalesce(try_cast(version_id AS BIGINT), -1)))
`

// newestFirst orders the staged copies of a resource newest first: by
// meta.lastUpdated, then versionId (as a number, then as text), then the
// later file and line. Duplicates restages the first and the commit
// accepts it, so both rank by this one order.
const newestFirst = `meta_last_updated DESC NULLS LAST,
	try_cast(version_id AS BIGINT) DESC NULLS LAST, version_id DESC NULLS LAST,
	file DESC, line DESC`

// storedVersions deletes from the version index the stored versions the
// accepted ones replace, by the rows fhirlake_accepted found them in
// (cur_rowid), which stay theirs until the transaction ends. Found again
// by source, type and id, it read the index's keys whole: a 1% run of the
// 10 GB export (2.9 million resources) deleted its 28,762 in 0.08-0.10 s
// against 0.03 s by row, and its commit took 2.57-2.86 s against
// 2.33-2.47 s (four alternating runs).
const storedVersions = `DELETE FROM fhirlake_resources WHERE rowid IN (
	SELECT cur_rowid FROM fhirlake_accepted WHERE cur_rowid IS NOT NULL)`

// acceptedStaged is fhirlake_accepted (see acceptSQL) for a run of a
// source the version index holds nothing of, that staged each resource
// once: its staged versions.
const acceptedStaged = `CREATE TEMP VIEW fhirlake_accepted AS
SELECT resource_type, id, meta_last_updated, version_id, content_hash, false AS unchanged
FROM fhirlake_stage__resources`

// acceptQuery is acceptSQL for a run that staged some resource more than
// once (repeated), whose versions it ranks, or none, whose every staged
// version is the run's newest. Ranking sorts every staged resource: in a
// full load of the 1 GB export (287,000 resources) picking the newest
// versions took 0.17-0.22 s with it and 0.07-0.09 s without (three
// alternating runs each). For a run that deletes resources (deletes), the
// stored versions of those are left out.
func acceptQuery(repeated, deletes bool) string {
	ranked := `SELECT resource_type, id, meta_last_updated, version_id, content_hash, 1 AS rn
		FROM fhirlake_stage__resources`
	if repeated {
		ranked = `SELECT resource_type, id, meta_last_updated, version_id, content_hash,
		       row_number() OVER (PARTITION BY resource_type, id ORDER BY ` + newestFirst + `) AS rn
		FROM fhirlake_stage__resources`
	}
	stored := "(SELECT *, rowid AS cur_rowid FROM fhirlake_resources)"
	if deletes {
		stored = `(SELECT *, rowid AS cur_rowid FROM fhirlake_resources WHERE source = $1 AND (resource_type, id) NOT IN (
			SELECT resource_type, id FROM fhirlake_deleted WHERE run_id = $3))`
	}
	return fmt.Sprintf(acceptSQL, ranked, stored)
}

// runTimes gives the run's _since and transaction time as SQL values
// (NULL when unset).
func runTimes(run load.Run) (since, tt any) {
	if !run.Since.IsZero() {
		since = run.Since
	}
	if !run.TransactionTime.IsZero() {
		tt = run.TransactionTime
	}
	return since, tt
}

// recordRejects writes the run's rejects to fhirlake_rejects.
func (l *Loader) recordRejects(ctx context.Context, runID string) error {
	for _, r := range l.rejects {
		err := l.w.exec(ctx, `INSERT INTO fhirlake_rejects VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			runID, l.source, r.File, r.Line, nullable(r.ResourceType), nullable(r.ResourceID), nullable(r.Column), r.Reason)
		if err != nil {
			return fmt.Errorf("record rejects: %w", err)
		}
	}
	return nil
}

// stageDeletes records the run's tombstones in fhirlake_deleted (inside the
// commit transaction), where merge reads them: each resource once, however
// many lines named it.
func (l *Loader) stageDeletes(ctx context.Context, run load.Run) error {
	_, tt := runTimes(run)
	seen := make(map[load.Tombstone]bool, len(l.deleted))
	uniq := l.deleted[:0:0]
	for _, d := range l.deleted {
		if !seen[d] {
			seen[d] = true
			uniq = append(uniq, d)
		}
	}
	const chunk = 500
	for i := 0; i < len(uniq); i += chunk {
		part := uniq[i:min(i+chunk, len(uniq))]
		var sb strings.Builder
		args := make([]any, 0, 2*len(part)+3)
		args = append(args, run.ID, tt, l.source)
		sb.WriteString("INSERT INTO fhirlake_deleted VALUES ")
		for j, d := range part {
			if j > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "($1, $3, $%d, $%d, $2)", 2*j+4, 2*j+5)
			args = append(args, d.ResourceType, d.ID)
		}
		if err := l.w.exec(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("record deletes: %w", err)
		}
	}
	return nil
}

func joinRows(rows map[string]int64) string {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s: %d", sqlString(k), rows[k])
	}
	return s
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ensureTable creates the table from its stage when missing, and refuses to
// load into a table whose columns no longer match the view. described is
// allColumns' reading of the tables, from before the first call.
func (l *Loader) ensureTable(ctx context.Context, t load.Table, described map[tableName][]string) error {
	want := described[tableName{stageName(t.Name), true}]
	have := described[tableName{t.Name, false}]
	if len(have) == 0 {
		// Column types come from the stage (DuckDB's reading of the Arrow
		// schema). No primary key: an index costs a quarter of the commit
		// and most of the file, and the commit keeps keys unique itself
		// (each resource's rows are replaced whole, from one copy).
		defs := append([]string(nil), want...)
		for i, c := range defs {
			name, typ, _ := strings.Cut(c, " ")
			defs[i] = ident(name) + " " + typ
			if name == load.DataSource {
				defs[i] += " NOT NULL"
			}
			defs[i] += columnCompression(t, name, typ)
		}
		q := fmt.Sprintf("CREATE TABLE %s (\n\t%s\n)", ident(t.Name), strings.Join(defs, ",\n\t"))
		if err := l.w.exec(ctx, q); err != nil {
			return fmt.Errorf("create table %s: %w", t.Name, err)
		}
		return nil
	}
	if len(have) < len(want) && slices.Equal(have, want[:len(have)]) {
		// The view gained columns at its end: the table gains them too,
		// null in the rows already there until their resources come
		// again (a --full run brings them all).
		for _, c := range want[len(have):] {
			name, typ, _ := strings.Cut(c, " ")
			if err := l.w.exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s%s", ident(t.Name), ident(name), typ, columnCompression(t, name, typ))); err != nil {
				return fmt.Errorf("table %s: add column %s: %w", t.Name, name, err)
			}
		}
		return nil
	}
	if !slices.Equal(have, want) {
		return fmt.Errorf("table %s: columns in the warehouse %v differ from the view %v (a view may only gain columns at its end); load into a new warehouse or drop the table", t.Name, have, want)
	}
	return nil
}

// columnCompression is the compression clause of a new column of t: a
// string column of few distinct values (data_source, t.Coded) is stored
// dictionary-encoded. DuckDB otherwise weighs every string encoding for
// every column at each checkpoint, and trying FSST (building its symbol
// table) on columns where the dictionary wins or comes close was about 6%
// of a full load's commit of the 1 GB export, the file no bigger; FSST
// wins by much only on id-like columns, which keep the choice. The clause
// outlives compaction's COPY FROM DATABASE.
func columnCompression(t load.Table, name, typ string) string {
	if typ == "VARCHAR" && (name == load.DataSource || slices.Contains(t.Coded, name)) {
		return " USING COMPRESSION dictionary"
	}
	return ""
}

// tableName names a table of the warehouse's main schema, or of its
// temporary one.
type tableName struct {
	name      string
	temporary bool
}

// allColumns is what columns gives, for every table of the main schema
// and of the temporary one.
func (l *Loader) allColumns(ctx context.Context) (map[tableName][]string, error) {
	rows, err := l.w.conn.QueryContext(ctx, `SELECT table_name, database_name = 'temp', column_name || ' ' || data_type FROM duckdb_columns()
		WHERE schema_name = 'main' AND (database_name = 'temp' OR database_name = current_database())
		ORDER BY table_name, column_index`)
	if err != nil {
		return nil, fmt.Errorf("describe tables: %w", err)
	}
	defer rows.Close()
	out := map[tableName][]string{}
	for rows.Next() {
		var tn tableName
		var col string
		if err := rows.Scan(&tn.name, &tn.temporary, &col); err != nil {
			return nil, fmt.Errorf("describe tables: %w", err)
		}
		out[tn] = append(out[tn], col)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("describe tables: %w", err)
	}
	return out, nil
}

func (l *Loader) columns(ctx context.Context, table string, temporary bool) ([]string, error) {
	cols, err := l.w.queryStrings(ctx,
		`SELECT column_name || ' ' || data_type FROM duckdb_columns()
		 WHERE table_name = ? AND schema_name = 'main' AND (database_name = 'temp') = ? ORDER BY column_index`, table, temporary)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	return cols, nil
}

// Rejects is the number of rejects recorded so far.
func (l *Loader) Rejects() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nrejects
}

// CommitRejected records the run as failed with status "rejected", and its
// rejects, without any of its data and without moving a watermark: the run
// that rejected too much leaves the tables as they were, but
// fhirlake_rejects says why.
func (l *Loader) CommitRejected(ctx context.Context, run load.Run) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return errors.New("commit: run already finished")
	}
	if run.Source != l.source {
		return fmt.Errorf("record rejected run %s: source %q, but the run was staged for %q", run.ID, run.Source, l.source)
	}
	l.done = true
	defer l.drop(context.WithoutCancel(ctx))
	since, tt := runTimes(run)
	if err := l.w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("record rejected run: %w", err)
	}
	err := l.w.exec(ctx, `INSERT INTO fhirlake_runs VALUES (?, ?, ?, ?, now(), 'rejected', ?, ?, 0, 0, 0, ?, []::VARCHAR[], MAP {}, ?)`,
		run.ID, run.Source, run.Scope, run.Started, since, tt, l.nrejects, nullable(load.JobsText(run.Jobs())))
	if err == nil {
		err = l.recordRejects(ctx, run.ID)
	}
	if err == nil {
		err = l.w.exec(ctx, "COMMIT")
	}
	if err != nil {
		l.w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("record rejected run: %w", err)
	}
	return nil
}

// Rollback abandons the run; the warehouse is unchanged.
func (l *Loader) Rollback(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.done = true
	l.drop(context.WithoutCancel(ctx))
}

// drop removes the staging tables. Errors are ignored: temp tables vanish
// with the connection anyway.
func (l *Loader) drop(ctx context.Context) {
	for name := range l.tables {
		l.w.exec(ctx, "DROP TABLE IF EXISTS "+ident(stageName(name)))
	}
	l.w.exec(ctx, "DROP TABLE IF EXISTS fhirlake_unstaged")
	for _, st := range l.stages {
		st.seal()
	}
	l.w.discardStage(l.dir)
}

// deleteBytesPerRow is what DuckDB holds until a transaction commits for
// each row of a table it deletes from: a list of the deleted rows of each
// 2,048-row vector it deletes any from (16 kB), and a run's changes,
// spread over a table, reach nearly every vector. A 1% run of a 10 GB
// export deletes from tables of 29 million rows (234 MB of such lists);
// it failed with a 256MB memory limit and committed with 300MB.
const deleteBytesPerRow = 8

// deleteHeadroom is the memory a commit needs besides its deletes': twice
// what that run needed (a variable for tests). More is not better: with
// the limit raised to 490MB the same run touched 160 MB more memory
// (214,000-223,000 page faults against 175,000-182,000) and spent
// 0.2-1.0 s more in the kernel (three alternating runs), DuckDB caching
// blocks in new memory rather than reusing what it evicted.
var deleteHeadroom int64 = 128 << 20

// roomForDeletes raises DuckDB's memory limit for the commit when the
// run deletes from tables (those of the types changing, and the version
// index when indexed) large enough that their deletes, with
// deleteHeadroom, need more than the default limit: a large warehouse's
// incremental run commits, instead of failing for memory whatever few
// resources it changes. A limit set with MemoryEnv is kept (the error
// then says to raise it). roomBack puts the limit back.
func (l *Loader) roomForDeletes(ctx context.Context, changing map[string]bool, indexed bool) error {
	if os.Getenv(MemoryEnv) != "" {
		return nil
	}
	stored, err := storedRows(ctx, l.w.conn)
	if err != nil {
		return fmt.Errorf("size the commit's memory: %w", err)
	}
	var rows int64
	for name, t := range l.tables {
		if name != load.Resources && changing[t.Resource] {
			rows += stored[name]
		}
	}
	if indexed {
		rows += stored[load.IndexTable]
	}
	need := rows*deleteBytesPerRow + deleteHeadroom
	if need <= defaultMemoryMB*1_000_000 {
		return nil
	}
	if err := l.w.exec(ctx, fmt.Sprintf("SET memory_limit = '%dMiB'", (need+(1<<20)-1)>>20)); err != nil {
		return fmt.Errorf("size the commit's memory: %w", err)
	}
	l.roomy = true
	return nil
}

// roomBack puts back the memory limit roomForDeletes raised.
func (l *Loader) roomBack(ctx context.Context) {
	if l.roomy {
		l.w.exec(ctx, "SET memory_limit = "+sqlString(memoryLimit()))
		l.roomy = false
	}
}
