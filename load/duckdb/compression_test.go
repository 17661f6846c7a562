//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/fhirlake/fhirlake/load"
)

// TestCodedColumnsAreDictionaryEncoded: a table's coded columns, the ones
// it was created with and one a later view adds, are stored
// dictionary-encoded even when DuckDB would pick another encoding for
// their values, which the same values in an uncoded column show.
func TestCodedColumnsAreDictionaryEncoded(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	field := func(name string) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
	}
	const n = 20000
	codedTables := func(names ...string) []load.Table {
		schema := arrow.NewSchema(append([]arrow.Field{field("id")}, fieldsOf(field, names)...), nil)
		return []load.Table{{Name: "claim_codes", Resource: "Claim", Key: "id", Schema: schema, Coded: []string{"status", "later"}}}
	}
	run := func(id string, names ...string) {
		t.Helper()
		tables := codedTables(names...)
		schema := tables[0].Schema
		l, err := w.Begin(t.Context(), "test", tables)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, n)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i := range ids {
			ids[i] = fmt.Sprintf("claim-%06d", i)
			b.Field(0).(*array.StringBuilder).Append(ids[i])
			for j := range names {
				// Distinct values sharing long runs of letters: FSST's
				// ground, not a dictionary's.
				b.Field(j + 1).(*array.StringBuilder).Append(fmt.Sprintf("urn:example:codesystem:value-%06d-%s", i, id))
			}
		}
		rec := b.NewRecordBatch()
		defer rec.Release()
		res := resources(ids...)
		defer res.Release()
		for _, wb := range []batch{{load.Resources, res}, {"claim_codes", rec}} {
			if err := l.WriteBatch(t.Context(), wb.table, wb.rec); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.Commit(t.Context(), load.Run{ID: id, Source: "test", Scope: "all"}); err != nil {
			t.Fatal(err)
		}
	}
	run("r1", "status", "display")
	run("r2", "status", "display", "later")
	if err := w.exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	check := func(w *Warehouse, after string) {
		t.Helper()
		for _, c := range []struct {
			column string
			want   []string
		}{
			{"status", []string{"Dictionary"}},
			{"later", []string{"Dictionary"}},
			{"display", []string{"FSST"}},
			{load.DataSource, []string{"Dictionary"}},
		} {
			got := query(t, w, "SELECT DISTINCT compression FROM pragma_storage_info('claim_codes') WHERE column_name = '"+c.column+"' AND segment_type = 'VARCHAR' ORDER BY 1")
			if !slices.Equal(got, c.want) {
				t.Errorf("after %s: column %s stored %v, want %v", after, c.column, got, c.want)
			}
		}
	}
	check(w, "the loads")
	// Compaction copies the tables into a new file: the columns keep
	// their encoding.
	if c, err := w.Compact(t.Context(), true); err != nil || !c.Rewritten {
		t.Fatalf("compaction: %+v, %v; want the file rewritten", c, err)
	}
	check(w, "a compaction")

	// The lakes record DuckDB's text of the table, which leaves the
	// encoding out: a warehouse made again from the lake, and a source
	// restored into a new warehouse, get it from the views' tables.
	tables := codedTables("status", "display", "later")
	lake := filepath.Join(t.TempDir(), "lake")
	if err := w.WriteLake(t.Context(), lake, tables, nil); err != nil {
		t.Fatal(err)
	}
	rebuild := func(o RebuildOptions, from string) {
		t.Helper()
		o.Warehouse, o.Tables = filepath.Join(t.TempDir(), "rebuilt.duckdb"), tables
		plan, err := PlanRebuild(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if err := plan.Execute(t.Context()); err != nil {
			t.Fatal(err)
		}
		rebuilt, err := Open(t.Context(), o.Warehouse)
		if err != nil {
			t.Fatal(err)
		}
		defer rebuilt.Close()
		check(rebuilt, "a rebuild from "+from)
	}
	rebuild(RebuildOptions{Lake: lake}, "the lake")
	// From a lake read table by table (an Iceberg lake's way).
	defs, err := w.TableDefs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lk := warehouseLake{w: w, defs: defs}
	rebuild(RebuildOptions{Lake: "a test lake", Reader: lk}, "a lake read table by table")

	fresh, err := Open(t.Context(), filepath.Join(t.TempDir(), "fresh.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, err := fresh.RestoreSource(t.Context(), "test", lk, tables); err != nil {
		t.Fatal(err)
	}
	if err := fresh.exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	check(fresh, "a restore of the source")
}

// warehouseLake serves RestoreSource and a rebuild the tables of a
// warehouse, as a lake would; the rest of load.SourceLake is not called.
type warehouseLake struct {
	load.SourceLake
	w    *Warehouse
	defs map[string]string // TableDefs
}

func (l warehouseLake) Contents(context.Context) ([]load.LakeTableInfo, error) {
	var out []load.LakeTableInfo
	for _, name := range slices.Sorted(maps.Keys(l.defs)) {
		out = append(out, load.LakeTableInfo{Name: name, SQL: l.defs[name]})
	}
	return out, nil
}

func (l warehouseLake) ReadTable(ctx context.Context, table string) (load.RecordReader, error) {
	return l.w.ar.QueryContext(ctx, "SELECT * FROM "+ident(table))
}

func (l warehouseLake) ReadSource(ctx context.Context, table, source string) (load.RecordReader, error) {
	return l.w.ar.QueryContext(ctx, "SELECT * FROM "+ident(table)+" WHERE "+ident(load.SourceColumn(table))+" = ?", source)
}

func (l warehouseLake) Location() string { return "a test lake" }

// TestCreateTableCodedColumns: a table made from DuckDB's text of it
// (which leaves compression clauses out) stores its coded columns and
// data_source dictionary-encoded, keeps its columns' types, order and
// NOT NULL, and a table with other constraints or defaults is left as
// the statement made it.
func TestCreateTableCodedColumns(t *testing.T) {
	urns := "'urn:example:codesystem:value-' || lpad(i::VARCHAR, 6, '0')"
	for _, c := range []struct {
		name   string
		create string
		table  load.Table
		fill   string // the SELECT list over range(20000) t(i)
		want   map[string]string
		// described is the table's DESCRIBE after creation.
		described []string
	}{
		{
			name:   "view table",
			create: `CREATE TABLE claim_codes(id VARCHAR, data_source VARCHAR NOT NULL, status VARCHAR, display VARCHAR, amount DECIMAL(18,2), codes STRUCT("system" VARCHAR, code VARCHAR)[]);`,
			table:  load.Table{Name: "claim_codes", Coded: []string{"status"}},
			fill:   "'c-' || i, " + urns + ", " + urns + ", " + urns + ", i, [{'system': 'x', 'code': 'y'}]",
			want:   map[string]string{"status": "Dictionary", "data_source": "Dictionary", "display": "FSST"},
			described: []string{"id|VARCHAR|YES", "data_source|VARCHAR|NO", "status|VARCHAR|YES", "display|VARCHAR|YES",
				"amount|DECIMAL(18,2)|YES", `codes|STRUCT("system" VARCHAR, code VARCHAR)[]|YES`},
		},
		{
			name:      "version index",
			create:    `CREATE TABLE fhirlake_resources("source" VARCHAR NOT NULL, resource_type VARCHAR NOT NULL, id VARCHAR NOT NULL, meta_last_updated TIMESTAMP WITH TIME ZONE, version_id VARCHAR, run_id VARCHAR NOT NULL, content_hash BIGINT);`,
			table:     codedTable(load.IndexTable, nil),
			fill:      urns + ", " + urns + ", 'c-' || i, NULL, NULL, " + urns + ", i",
			want:      map[string]string{"source": "Dictionary", "resource_type": "Dictionary", "run_id": "FSST"},
			described: []string{"source|VARCHAR|NO", "resource_type|VARCHAR|NO", "id|VARCHAR|NO", "meta_last_updated|TIMESTAMP WITH TIME ZONE|YES", "version_id|VARCHAR|YES", "run_id|VARCHAR|NO", "content_hash|BIGINT|YES"},
		},
		{
			name:      "primary key",
			create:    `CREATE TABLE keyed(data_source VARCHAR, id VARCHAR PRIMARY KEY);`,
			table:     load.Table{Name: "keyed"},
			fill:      urns + ", 'c-' || i",
			want:      map[string]string{"data_source": "FSST"},
			described: []string{"data_source|VARCHAR|YES", "id|VARCHAR|NO"},
		},
		{
			name:      "default",
			create:    `CREATE TABLE defaulted(data_source VARCHAR DEFAULT 'x', id VARCHAR);`,
			table:     load.Table{Name: "defaulted"},
			fill:      urns + ", 'c-' || i",
			want:      map[string]string{"data_source": "FSST"},
			described: []string{"data_source|VARCHAR|YES", "id|VARCHAR|YES"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := w.exec(t.Context(), "DROP TABLE IF EXISTS "+ident(c.table.Name)); err != nil {
				t.Fatal(err)
			}
			if err := createTable(t.Context(), w.conn, c.create, c.table); err != nil {
				t.Fatal(err)
			}
			got := query(t, w, `SELECT concat_ws('|', column_name, column_type, "null") FROM (DESCRIBE `+ident(c.table.Name)+")")
			if !slices.Equal(got, c.described) {
				t.Errorf("described %q, want %q", got, c.described)
			}
			if err := w.exec(t.Context(), "INSERT INTO "+ident(c.table.Name)+" SELECT "+c.fill+" FROM range(20000) t(i)"); err != nil {
				t.Fatal(err)
			}
			if err := w.exec(t.Context(), "CHECKPOINT"); err != nil {
				t.Fatal(err)
			}
			for column, want := range c.want {
				got := query(t, w, "SELECT DISTINCT compression FROM pragma_storage_info("+sqlString(c.table.Name)+") WHERE column_name = '"+column+"' AND segment_type = 'VARCHAR'")
				if !slices.Equal(got, []string{want}) {
					t.Errorf("column %s stored %v, want %s", column, got, want)
				}
			}
		})
	}
}

func fieldsOf(field func(string) arrow.Field, names []string) []arrow.Field {
	out := make([]arrow.Field, len(names))
	for i, name := range names {
		out[i] = field(name)
	}
	return out
}
