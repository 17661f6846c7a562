//go:build duckdb_arrow

package duckdb

import (
	"fmt"
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
	run := func(id string, names ...string) {
		t.Helper()
		schema := arrow.NewSchema(append([]arrow.Field{field("id")}, fieldsOf(field, names)...), nil)
		tables := []load.Table{{Name: "claim_codes", Resource: "Claim", Key: "id", Schema: schema, Coded: []string{"status", "later"}}}
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
	check := func(after string) {
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
	check("the loads")
	// Compaction copies the tables into a new file: the columns keep
	// their encoding.
	if c, err := w.Compact(t.Context(), true); err != nil || !c.Rewritten {
		t.Fatalf("compaction: %+v, %v; want the file rewritten", c, err)
	}
	check("a compaction")
}

func fieldsOf(field func(string) arrow.Field, names []string) []arrow.Field {
	out := make([]arrow.Field, len(names))
	for i, name := range names {
		out[i] = field(name)
	}
	return out
}
