//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/fhirlake/fhirlake/load"
)

// Upgrade brings a warehouse of an earlier layout (Version() <
// load.SchemaVersion) to the current one, in one transaction: it commits whole
// or not at all. A current warehouse is left alone.
//
// From version 2 to 3, the version index gets its content_hash column.
//
// From version 1 (rows keyed by resource type and id alone) to 2 (keyed by
// source, type and id):
//   - fhirlake_resources, fhirlake_deleted and fhirlake_rejects get the
//     source of the run that wrote each row (fhirlake_runs.source), or
//     "default" when no run says;
//   - every data table gets data_source as its first column and in front
//     of its primary key. A row's source is that of the run that last
//     loaded its resource (fhirlake_resources.run_id), found through the
//     table's resource type and key column: tables gives them for the
//     tables of the current views. A table no view describes any more gets
//     the warehouse's one source when it has only one, else "default".
//   - the warehouse gets its id and layout version.
//
// Views over the tables are left to be recreated (ApplySQL); the lake is
// rewritten in the new layout by the next WriteLake, which finds its
// folders do not fit.
func (w *Warehouse) Upgrade(ctx context.Context, tables []load.Table) error {
	if w.version == load.SchemaVersion {
		return nil
	}
	if w.version == 0 {
		return w.init(ctx) // an empty database: nothing to convert
	}
	upgrade := map[int]func(context.Context, []load.Table) error{1: w.upgradeFrom1, 2: w.upgradeFrom2}[w.version]
	if upgrade == nil {
		return fmt.Errorf("upgrade %s: no upgrade from layout %d", w.path, w.version)
	}
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("upgrade %s: %w", w.path, err)
	}
	if err := upgrade(ctx, tables); err != nil {
		w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("upgrade %s from layout %d: %w", w.path, w.version, err)
	}
	if err := w.exec(ctx, "COMMIT"); err != nil {
		w.exec(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("upgrade %s from layout %d: %w", w.path, w.version, err)
	}
	return w.readIdentity(ctx)
}

// upgradeFrom2 gives the version index its content_hash column, null for
// the versions already there (so each is taken again once, the next time
// a run carries it). A version 2 index keeps its primary key; a rebuilt
// warehouse has none.
func (w *Warehouse) upgradeFrom2(ctx context.Context, _ []load.Table) error {
	return w.exec(ctx, `ALTER TABLE fhirlake_resources ADD COLUMN content_hash BIGINT;
		UPDATE fhirlake_warehouse SET value = ? WHERE key = 'schema_version'`, fmt.Sprint(load.SchemaVersion))
}

func (w *Warehouse) upgradeFrom1(ctx context.Context, tables []load.Table) error {
	// A database restored from a partial lake may lack bookkeeping tables:
	// give it the empty ones of layout 1 first.
	if err := w.exec(ctx, bookkeepingV1DDL); err != nil {
		return err
	}
	// Data tables first: they read fhirlake_resources as it was.
	names, err := w.queryStrings(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE NOT temporary AND schema_name = 'main' AND database_name = current_database()
		  AND NOT starts_with(table_name, 'fhirlake_') ORDER BY 1`)
	if err != nil {
		return err
	}
	sources, err := w.queryStrings(ctx, "SELECT DISTINCT source FROM fhirlake_runs ORDER BY 1")
	if err != nil {
		return err
	}
	only := load.DefaultSource
	if len(sources) == 1 {
		only = sources[0]
	}
	known := map[string]load.Table{}
	for _, t := range tables {
		known[t.Name] = t
	}
	for _, name := range names {
		if err := w.upgradeTable(ctx, name, known, only); err != nil {
			return fmt.Errorf("table %s: %w", name, err)
		}
	}
	// Bookkeeping: recreate the changed tables with the source of each
	// row's run.
	bySource := fmt.Sprintf("coalesce((SELECT r.source FROM fhirlake_runs AS r WHERE r.run_id = o.run_id), %s)", sqlString(load.DefaultSource))
	for _, b := range []struct{ name, ddl, cols string }{
		{"fhirlake_resources", resourcesDDL, bySource + ", o.resource_type, o.id, o.meta_last_updated, o.version_id, o.run_id, NULL"},
		{"fhirlake_deleted", deletedDDL, "o.run_id, " + bySource + ", o.resource_type, o.id, o.transaction_time"},
		{"fhirlake_rejects", rejectsDDL, "o.run_id, " + bySource + ", o.file, o.line, o.resource_type, o.resource_id, o.column_name, o.reason"},
	} {
		old := b.name + "_v1"
		for _, q := range []string{
			fmt.Sprintf("ALTER TABLE %s RENAME TO %s", b.name, old),
			b.ddl,
			fmt.Sprintf("INSERT INTO %s SELECT %s FROM %s AS o", b.name, b.cols, old),
			"DROP TABLE " + old,
		} {
			if err := w.exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", b.name, err)
			}
		}
	}
	if err := w.exec(ctx, personDDL+exportErrorsDDL+"ALTER TABLE fhirlake_runs ADD COLUMN job VARCHAR;"); err != nil {
		return err
	}
	return w.exec(ctx, `CREATE TABLE fhirlake_warehouse (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
		INSERT INTO fhirlake_warehouse VALUES ('id', uuid()::VARCHAR), ('schema_version', ?)`, fmt.Sprint(load.SchemaVersion))
}

// upgradeTable recreates a version 1 data table with data_source first,
// in front of its primary key.
func (w *Warehouse) upgradeTable(ctx context.Context, name string, known map[string]load.Table, only string) error {
	cols, err := w.queryStrings(ctx, `SELECT column_name || ' ' || data_type || CASE WHEN is_nullable THEN '' ELSE ' NOT NULL' END
		FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main' AND database_name = current_database()
		ORDER BY column_index`, name)
	if err != nil {
		return err
	}
	pk, err := w.queryStrings(ctx, `SELECT unnest(constraint_column_names) FROM duckdb_constraints()
		WHERE table_name = ? AND schema_name = 'main' AND database_name = current_database() AND constraint_type = 'PRIMARY KEY'`, name)
	if err != nil {
		return err
	}
	defs := []string{ident(load.DataSource) + " VARCHAR NOT NULL"}
	for _, c := range cols {
		col, typ, _ := strings.Cut(c, " ")
		if col == load.DataSource {
			return fmt.Errorf("already has a %s column", load.DataSource)
		}
		defs = append(defs, ident(col)+" "+typ)
	}
	if len(pk) > 0 {
		keys := []string{ident(load.DataSource)}
		for _, k := range pk {
			keys = append(keys, ident(k))
		}
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	source := sqlString(only)
	if t, ok := known[name]; ok && t.Key != "" {
		source = fmt.Sprintf(`coalesce((SELECT r.source FROM fhirlake_resources AS x JOIN fhirlake_runs AS r USING (run_id)
			WHERE x.resource_type = %s AND x.id = CAST(o.%s AS VARCHAR)), %s)`, sqlString(t.Resource), ident(t.Key), sqlString(only))
	}
	old := name + "__fhirlake_v1"
	for _, q := range []string{
		fmt.Sprintf("ALTER TABLE %s RENAME TO %s", ident(name), ident(old)),
		fmt.Sprintf("CREATE TABLE %s (\n\t%s\n)", ident(name), strings.Join(defs, ",\n\t")),
		fmt.Sprintf("INSERT INTO %s SELECT %s, o.* FROM %s AS o", ident(name), source, ident(old)),
		"DROP TABLE " + ident(old),
	} {
		if err := w.exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// bookkeepingV1DDL creates, when missing, the bookkeeping tables of the
// first layout (rows keyed without their source), which upgradeFrom1
// converts.
const bookkeepingV1DDL = `
CREATE TABLE IF NOT EXISTS fhirlake_runs (
	run_id VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, scope VARCHAR NOT NULL,
	started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL,
	since TIMESTAMPTZ, transaction_time TIMESTAMPTZ, resources BIGINT NOT NULL, skipped_older BIGINT NOT NULL,
	deleted BIGINT NOT NULL, rejects BIGINT NOT NULL, watermark_types VARCHAR[] NOT NULL,
	rows_per_table MAP(VARCHAR, BIGINT) NOT NULL);
CREATE TABLE IF NOT EXISTS fhirlake_resources (
	resource_type VARCHAR NOT NULL, id VARCHAR NOT NULL, meta_last_updated TIMESTAMPTZ, version_id VARCHAR,
	run_id VARCHAR NOT NULL, PRIMARY KEY (resource_type, id));
CREATE TABLE IF NOT EXISTS fhirlake_watermarks (
	source VARCHAR NOT NULL, scope VARCHAR NOT NULL, resource_type VARCHAR NOT NULL,
	transaction_time TIMESTAMPTZ NOT NULL, run_id VARCHAR NOT NULL, PRIMARY KEY (source, scope, resource_type));
CREATE TABLE IF NOT EXISTS fhirlake_deleted (
	run_id VARCHAR NOT NULL, resource_type VARCHAR NOT NULL, id VARCHAR NOT NULL, transaction_time TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS fhirlake_rejects (
	run_id VARCHAR NOT NULL, file VARCHAR NOT NULL, line BIGINT NOT NULL, resource_type VARCHAR,
	resource_id VARCHAR, column_name VARCHAR, reason VARCHAR NOT NULL);
`
