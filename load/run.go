//go:build duckdb_arrow

package load

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Table describes one warehouse table fed by a view.
type Table struct {
	// Name is the table name (the view name).
	Name string
	// Resource is the FHIR resource type whose rows the table holds.
	Resource string
	// Key is the column that holds the id of the resource a row came from.
	// All rows of a resource are replaced together when it is reloaded.
	Key string
	// Schema is the Arrow schema of the batches.
	Schema *arrow.Schema
}

// Resources is the name of the batch stream that lists every resource the
// run carried: columns resource_type and id (more are allowed). Rows of a
// resource listed there are replaced even when the resource now yields no
// rows for a table.
const Resources = "_resources"

// Reject is a line or value that could not be loaded. It never holds
// resource content.
type Reject struct {
	File         string
	Line         int64
	ResourceType string
	ResourceID   string
	Column       string
	Reason       string
}

// Run is the bookkeeping record of one pipeline run.
type Run struct {
	ID              string
	Source          string
	Scope           string
	Started         time.Time
	Since           time.Time // zero when the run was a full export
	TransactionTime time.Time
}

// Tombstone is a resource deleted at the source.
type Tombstone struct {
	ResourceType string
	ID           string
}

// Stats counts what a committed run changed.
type Stats struct {
	Resources int64
	Rejects   int64
	// Deleted is the number of tombstones applied.
	Deleted int64
	// Rows is the number of rows staged per table.
	Rows map[string]int64
}

// maxStoredRejects caps the rejects kept in memory and written to
// fhirlake_rejects for one run; the count goes on past it.
const maxStoredRejects = 100_000

// Loader stages one run. It is safe for concurrent use: batches from many
// transform workers are serialised onto the warehouse connection.
type Loader struct {
	w      *Warehouse
	tables map[string]Table

	mu        sync.Mutex // guards everything below and the connection
	seq       int
	rows      map[string]int64
	resources int64
	rejects   []Reject
	nrejects  int64
	deleted   []Tombstone
	done      bool
}

// Begin starts staging a run into the given tables. Tables that do not
// exist yet are created from their schema.
func (w *Warehouse) Begin(ctx context.Context, tables []Table) (*Loader, error) {
	l := &Loader{w: w, tables: map[string]Table{}, rows: map[string]int64{}}
	resSchema := arrow.NewSchema([]arrow.Field{
		{Name: "resource_type", Type: arrow.BinaryTypes.String},
		{Name: "id", Type: arrow.BinaryTypes.String},
	}, nil)
	all := append([]Table{{Name: Resources, Schema: resSchema}}, tables...)
	for _, t := range all {
		if _, dup := l.tables[t.Name]; dup {
			return nil, fmt.Errorf("table %s declared twice", t.Name)
		}
		if t.Name != Resources && (t.Key == "" || t.Schema.FieldIndices(t.Key) == nil) {
			return nil, fmt.Errorf("table %s: key column %q not in schema", t.Name, t.Key)
		}
		l.tables[t.Name] = t
		if err := l.createStage(ctx, t); err != nil {
			l.drop(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return l, nil
}

func stageName(table string) string { return "fhirlake_stage_" + table }

// createStage makes the temp staging table, with column types derived by
// DuckDB from the Arrow schema.
func (l *Loader) createStage(ctx context.Context, t Table) error {
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
	q := fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS SELECT * FROM %s LIMIT 0; DROP VIEW IF EXISTS %s",
		ident(stageName(t.Name)), ident(view), ident(view))
	if err := l.w.exec(ctx, q); err != nil {
		return fmt.Errorf("stage %s: %w", t.Name, err)
	}
	return nil
}

// WriteBatch stages one batch of rows for table. It does not keep rec.
func (l *Loader) WriteBatch(ctx context.Context, table string, rec arrow.RecordBatch) error {
	if _, ok := l.tables[table]; !ok {
		return fmt.Errorf("stage batch: unknown table %s", table)
	}
	if rec.NumRows() == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return fmt.Errorf("stage batch for %s: run already finished", table)
	}
	l.seq++
	view := fmt.Sprintf("fhirlake_in_%s_%d", table, l.seq)
	reader, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		return fmt.Errorf("stage batch for %s: %w", table, err)
	}
	defer reader.Release()
	release, err := l.w.ar.RegisterView(reader, view)
	if err != nil {
		return fmt.Errorf("stage batch for %s: %w", table, err)
	}
	defer release()
	cols := "*"
	if table == Resources {
		cols = "resource_type, id" // the stream may carry more columns
	}
	q := fmt.Sprintf("INSERT INTO %s SELECT %s FROM %s; DROP VIEW IF EXISTS %s", ident(stageName(table)), cols, ident(view), ident(view))
	if err := l.w.exec(ctx, q); err != nil {
		return fmt.Errorf("stage batch for %s: %w", table, err)
	}
	if table == Resources {
		l.resources += rec.NumRows()
	} else {
		l.rows[table] += rec.NumRows()
	}
	return nil
}

// Reject records a reject for the run.
func (l *Loader) Reject(_ context.Context, r Reject) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nrejects++
	if len(l.rejects) < maxStoredRejects {
		l.rejects = append(l.rejects, r)
	}
	return nil
}

// Delete stages tombstones: at commit the resources and all their rows in
// every table fed by their type are removed, before the run's own rows are
// inserted (so a resource both deleted and re-exported in one run stays).
func (l *Loader) Delete(_ context.Context, ts []Tombstone) error {
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
func (l *Loader) Commit(ctx context.Context, run Run) (Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return Stats{}, errors.New("commit: run already finished")
	}
	l.done = true
	defer l.drop(context.WithoutCancel(ctx))

	if err := l.w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return Stats{}, fmt.Errorf("commit run %s: %w", run.ID, err)
	}
	if err := l.merge(ctx, run); err != nil {
		l.w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return Stats{}, fmt.Errorf("commit run %s: %w", run.ID, err)
	}
	if err := l.w.exec(ctx, "COMMIT"); err != nil {
		l.w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return Stats{}, fmt.Errorf("commit run %s: %w", run.ID, err)
	}
	rows := make(map[string]int64, len(l.rows))
	for k, v := range l.rows {
		rows[k] = v
	}
	return Stats{Resources: l.resources, Rejects: l.nrejects, Deleted: int64(len(l.deleted)), Rows: rows}, nil
}

func (l *Loader) merge(ctx context.Context, run Run) error {
	if err := l.stageDeletes(ctx, run); err != nil {
		return err
	}
	names := make([]string, 0, len(l.tables))
	for n := range l.tables {
		if n != Resources {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		t := l.tables[name]
		if err := l.ensureTable(ctx, t); err != nil {
			return err
		}
		del := fmt.Sprintf(`DELETE FROM %s WHERE %s IN (
			SELECT id FROM %s WHERE resource_type = $1
			UNION ALL SELECT id FROM fhirlake_deleted WHERE run_id = $2 AND resource_type = $1)`,
			ident(name), ident(t.Key), ident(stageName(Resources)))
		if err := l.w.exec(ctx, del, t.Resource, run.ID); err != nil {
			return fmt.Errorf("replace rows of %s: %w", name, err)
		}
		ins := fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM %s", ident(name), ident(stageName(name)))
		if err := l.w.exec(ctx, ins); err != nil {
			return fmt.Errorf("insert rows of %s: %w", name, err)
		}
	}
	rowsMap := "MAP {" + joinRows(l.rows) + "}"
	var since, tt any
	if !run.Since.IsZero() {
		since = run.Since
	}
	if !run.TransactionTime.IsZero() {
		tt = run.TransactionTime
	}
	err := l.w.exec(ctx, `INSERT INTO fhirlake_runs VALUES (?, ?, ?, ?, now(), 'committed', ?, ?, ?, ?, `+rowsMap+`)`,
		run.ID, run.Source, run.Scope, run.Started, since, tt, l.resources, l.nrejects)
	if err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	for _, r := range l.rejects {
		err := l.w.exec(ctx, `INSERT INTO fhirlake_rejects VALUES (?, ?, ?, ?, ?, ?, ?)`,
			run.ID, r.File, r.Line, nullable(r.ResourceType), nullable(r.ResourceID), nullable(r.Column), r.Reason)
		if err != nil {
			return fmt.Errorf("record rejects: %w", err)
		}
	}
	return nil
}

// stageDeletes records the run's tombstones in fhirlake_deleted (inside the
// commit transaction), where merge reads them.
func (l *Loader) stageDeletes(ctx context.Context, run Run) error {
	var tt any
	if !run.TransactionTime.IsZero() {
		tt = run.TransactionTime
	}
	const chunk = 500
	for i := 0; i < len(l.deleted); i += chunk {
		part := l.deleted[i:min(i+chunk, len(l.deleted))]
		var sb strings.Builder
		args := make([]any, 0, 2*len(part)+2)
		args = append(args, run.ID, tt)
		sb.WriteString("INSERT INTO fhirlake_deleted VALUES ")
		for j, d := range part {
			if j > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "($1, $%d, $%d, $2)", 2*j+3, 2*j+4)
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
// load into a table whose columns no longer match the view.
func (l *Loader) ensureTable(ctx context.Context, t Table) error {
	want, err := l.columns(ctx, stageName(t.Name), true)
	if err != nil {
		return err
	}
	have, err := l.columns(ctx, t.Name, false)
	if err != nil {
		return err
	}
	if len(have) == 0 {
		q := fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s LIMIT 0", ident(t.Name), ident(stageName(t.Name)))
		if err := l.w.exec(ctx, q); err != nil {
			return fmt.Errorf("create table %s: %w", t.Name, err)
		}
		return nil
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		return fmt.Errorf("table %s: columns in the warehouse %v differ from the view %v; load into a new warehouse or drop the table", t.Name, have, want)
	}
	return nil
}

func (l *Loader) columns(ctx context.Context, table string, temporary bool) ([]string, error) {
	rows, err := l.w.conn.QueryContext(ctx,
		`SELECT column_name || ' ' || data_type FROM duckdb_columns()
		 WHERE table_name = ? AND schema_name = 'main' AND (database_name = 'temp') = ? ORDER BY column_index`, table, temporary)
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("describe %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
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
}
