//go:build duckdb_arrow

package load

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

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
	connector, err := duckdb.NewConnector(path, nil)
	if err != nil {
		return nil, fmt.Errorf("open warehouse %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open warehouse %s: %w", path, err)
	}
	w := &Warehouse{path: path, db: db, conn: conn}
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		w.ar = a
		return err
	})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open arrow interface: %w", err)
	}
	if err := w.exec(ctx, bookkeepingDDL); err != nil {
		w.Close()
		return nil, fmt.Errorf("create bookkeeping tables: %w", err)
	}
	return w, nil
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

func (w *Warehouse) exec(ctx context.Context, query string, args ...any) error {
	_, err := w.conn.ExecContext(ctx, query, args...)
	return err
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
	rejects          BIGINT NOT NULL,
	rows_per_table   MAP(VARCHAR, BIGINT) NOT NULL
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
