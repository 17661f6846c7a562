//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"

	"github.com/fhirlake/fhirlake/load"
)

var _ load.SourceRestorer = (*Warehouse)(nil)

// RestoreSource replaces every row of source, in every table that has a
// source column, with the lake's, in one transaction: the data tables,
// the person crosswalk and the bookkeeping (runs, watermarks, version
// index, deletes, rejects), so that the next run of the source continues
// from the state the lake holds. Tables the warehouse lacks are created
// from the lake's CREATE statements; the source's rows in tables the lake
// lacks are deleted. A failure leaves the warehouse as it was. tables are
// the views' tables: those it creates store their coded columns
// dictionary-encoded, as the loader's do.
func (w *Warehouse) RestoreSource(ctx context.Context, source string, from load.SourceLake, tables []load.Table) (load.RestoreStats, error) {
	var st load.RestoreStats
	if err := load.CheckSource(source); err != nil {
		return st, err
	}
	contents, err := from.Contents(ctx)
	if err != nil {
		return st, fmt.Errorf("restore source %s: %w", source, err)
	}
	have, err := w.sourceTables(ctx)
	if err != nil {
		return st, fmt.Errorf("restore source %s: %w", source, err)
	}
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return st, fmt.Errorf("restore source %s: %w", source, err)
	}
	err = w.restoreSource(ctx, source, from, contents, have, tables, &st)
	if err == nil {
		err = w.exec(ctx, "COMMIT")
	}
	if err != nil {
		w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return load.RestoreStats{}, fmt.Errorf("restore source %s from lake %s: %w", source, from.Location(), err)
	}
	return st, nil
}

func (w *Warehouse) restoreSource(ctx context.Context, source string, from load.SourceLake, contents []load.LakeTableInfo, have map[string]string, tables []load.Table, st *load.RestoreStats) error {
	inLake := map[string]bool{}
	for _, c := range contents {
		column := load.SourceColumn(c.Name)
		if column == "" {
			continue
		}
		inLake[c.Name] = true
		n, err := w.restoreTable(ctx, c, column, source, from, have, codedTable(c.Name, tables))
		if err != nil {
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		st.Tables++
		st.Rows += n
	}
	for name, column := range have {
		if !inLake[name] {
			if err := w.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = ?", ident(name), ident(column)), source); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// restoreTable replaces the rows of source in one table with the lake's,
// creating the table (with coded's coded columns) when the warehouse
// lacks it.
func (w *Warehouse) restoreTable(ctx context.Context, c load.LakeTableInfo, column, source string, from load.SourceLake, have map[string]string, coded load.Table) (int64, error) {
	rr, err := from.ReadSource(ctx, c.Name, source)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	view := "fhirlake_restore_" + c.Name
	release, err := w.ar.RegisterView(readerOf(rr), view)
	if err != nil {
		return 0, fmt.Errorf("arrow view: %w", err)
	}
	defer release()
	defer w.exec(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS "+ident(view))
	if _, ok := have[c.Name]; ok {
		if err := w.exec(ctx, fmt.Sprintf("DELETE FROM %s WHERE %s = ?", ident(c.Name), ident(column)), source); err != nil {
			return 0, fmt.Errorf("delete: %w", err)
		}
	} else {
		create := c.SQL
		if create == "" {
			create = fmt.Sprintf("CREATE TABLE %s AS SELECT * FROM %s LIMIT 0", ident(c.Name), ident(view))
		}
		if err := createTable(ctx, w.conn, create, coded); err != nil {
			return 0, fmt.Errorf("create: %w", err)
		}
	}
	res, err := w.conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM %s", ident(c.Name), ident(view)))
	if err != nil {
		return 0, fmt.Errorf("fill: %w", err)
	}
	return res.RowsAffected()
}

// sourceTables maps every table of the warehouse that has a source column
// to that column.
func (w *Warehouse) sourceTables(ctx context.Context) (map[string]string, error) {
	rows, err := w.conn.QueryContext(ctx, `SELECT table_name, column_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND column_name IN ('source', 'data_source')
		  AND table_name IN (SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		if load.SourceColumn(t) == c {
			out[t] = c
		}
	}
	return out, rows.Err()
}
