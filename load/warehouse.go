//go:build duckdb_arrow

package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// Warehouse is an open DuckDB warehouse file. It holds one connection: all
// writes of a run go through it, one statement at a time.
type Warehouse struct {
	path string
	db   *sql.DB
	conn *sql.Conn
	ar   *duckdb.Arrow
}

// Open opens (creating if needed) the DuckDB database at path and makes
// sure the bookkeeping tables exist.
func Open(ctx context.Context, path string) (*Warehouse, error) {
	db, conn, err := connect(ctx, path)
	if err != nil {
		return nil, openError(path, err)
	}
	w, err := attach(path, db, conn)
	if err != nil {
		return nil, err
	}
	if err := w.exec(ctx, bookkeepingDDL); err != nil {
		w.Close()
		return nil, fmt.Errorf("create bookkeeping tables: %w", err)
	}
	return w, nil
}

// OpenReadOnly opens an existing warehouse for reading only (status,
// rebuild, ad-hoc queries); it creates nothing. Another process holding
// the file read-write is ErrInUse.
func OpenReadOnly(ctx context.Context, path string) (*Warehouse, error) {
	if !exists(path) {
		return nil, fmt.Errorf("open warehouse: no warehouse at %s", path)
	}
	db, conn, err := connect(ctx, path+"?access_mode=read_only")
	if err != nil && strings.Contains(err.Error(), "different configuration") {
		// This process has the file open already (read-write): share it.
		db, conn, err = connect(ctx, path)
	}
	if err != nil {
		return nil, openError(path, err)
	}
	return attach(path, db, conn)
}

// openError explains a failed connect: ErrInUse when another process holds
// the file.
func openError(path string, err error) error {
	if isLockError(err) {
		return inUse(path, err)
	}
	return fmt.Errorf("open warehouse %s: %w", path, err)
}

// attach wraps an open connection as a Warehouse with its Arrow interface.
func attach(path string, db *sql.DB, conn *sql.Conn) (*Warehouse, error) {
	w := &Warehouse{path: path, db: db, conn: conn}
	err := conn.Raw(func(dc any) error {
		a, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		w.ar = a
		return err
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open arrow interface: %w", err)
	}
	return w, nil
}

func connect(ctx context.Context, dsn string) (*sql.DB, *sql.Conn, error) {
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, conn, nil
}

// isLockError recognises DuckDB's "Could not set lock on file" error.
func isLockError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Could not set lock") || strings.Contains(s, "Conflicting lock")
}

func inUse(path string, err error) error {
	return fmt.Errorf("%w: %s is open elsewhere (a running fhirlake run, or a DuckDB client); stop it and retry: %w", ErrInUse, path, err)
}

// Close releases the connection and the database.
func (w *Warehouse) Close() error {
	var errs []error
	if w.conn != nil {
		errs = append(errs, w.conn.Close())
	}
	errs = append(errs, w.db.Close())
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

// queryStrings runs a query whose rows are one string each.
func (w *Warehouse) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := w.conn.QueryContext(ctx, q, args...)
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

const bookkeepingDDL = `
CREATE TABLE IF NOT EXISTS fhirlake_runs (
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
	rows_per_table   MAP(VARCHAR, BIGINT) NOT NULL
);
CREATE TABLE IF NOT EXISTS fhirlake_resources (
	resource_type     VARCHAR NOT NULL,
	id                VARCHAR NOT NULL,
	meta_last_updated TIMESTAMPTZ,
	version_id        VARCHAR,
	run_id            VARCHAR NOT NULL,
	PRIMARY KEY (resource_type, id)
);
CREATE TABLE IF NOT EXISTS fhirlake_watermarks (
	source           VARCHAR NOT NULL,
	scope            VARCHAR NOT NULL,
	resource_type    VARCHAR NOT NULL,
	transaction_time TIMESTAMPTZ NOT NULL,
	run_id           VARCHAR NOT NULL,
	PRIMARY KEY (source, scope, resource_type)
);
CREATE TABLE IF NOT EXISTS fhirlake_deleted (
	run_id           VARCHAR NOT NULL,
	resource_type    VARCHAR NOT NULL,
	id               VARCHAR NOT NULL,
	transaction_time TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS fhirlake_rejects (
	run_id        VARCHAR NOT NULL,
	file          VARCHAR NOT NULL,
	line          BIGINT NOT NULL,
	resource_type VARCHAR,
	resource_id   VARCHAR,
	column_name   VARCHAR,
	reason        VARCHAR NOT NULL
);
`

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
