//go:build duckdb_arrow

package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/fhirlake/fhirlake/load"
)

// bookkeepingCoded lists the bookkeeping tables' dictionary-encoded
// columns, as their CREATE statements here declare them (resourcesDDL).
var bookkeepingCoded = map[string][]string{
	load.IndexTable: {"source", "resource_type"},
}

// codedTable is what createTable needs to know of the table name: the
// view's table among tables (its coded columns), or the bookkeeping
// table's dictionary-encoded columns.
func codedTable(name string, tables []load.Table) load.Table {
	for _, t := range tables {
		if t.Name == name {
			return t
		}
	}
	return load.Table{Name: name, Coded: bookkeepingCoded[name]}
}

// createTable runs create, the CREATE statement a lake recorded of a
// warehouse table, and gives the new table the dictionary encoding the
// warehouse gave it: DuckDB's text of a table (duckdb_tables().sql, what
// the lakes record) leaves compression clauses out, so a table restored
// from it would otherwise weigh FSST on its coded columns at every
// checkpoint, as a table the loader creates does not (columnCompression).
// When one of its columns takes the clause (data_source, t.Coded, or a
// bookkeeping table's own), the new, empty table is made again from its
// columns with the clause. A table with a default or a constraint other
// than NOT NULL (none of those fhirlake creates with such columns) is
// left as create made it.
func createTable(ctx context.Context, conn *sql.Conn, create string, t load.Table) error {
	if _, err := conn.ExecContext(ctx, create); err != nil {
		return err
	}
	cols, err := describeTable(ctx, conn, t.Name)
	if err != nil {
		return fmt.Errorf("describe %s: %w", t.Name, err)
	}
	coded := false
	for _, c := range cols {
		if c.defaults {
			return nil
		}
		coded = coded || columnCompression(t, c.name, c.typ) != ""
	}
	if !coded {
		return nil
	}
	var constraints int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_constraints()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? AND constraint_type <> 'NOT NULL'`,
		t.Name).Scan(&constraints); err != nil {
		return fmt.Errorf("constraints of %s: %w", t.Name, err)
	}
	if constraints > 0 {
		return nil
	}
	defs := make([]string, len(cols))
	for i, c := range cols {
		defs[i] = ident(c.name) + " " + c.typ
		if c.notNull {
			defs[i] += " NOT NULL"
		}
		defs[i] += columnCompression(t, c.name, c.typ)
	}
	for _, q := range []string{
		"DROP TABLE " + ident(t.Name),
		fmt.Sprintf("CREATE TABLE %s (\n\t%s\n)", ident(t.Name), strings.Join(defs, ",\n\t")),
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create %s with its coded columns: %w", t.Name, err)
		}
	}
	return nil
}
