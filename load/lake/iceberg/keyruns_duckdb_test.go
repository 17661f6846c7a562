//go:build duckdb_arrow

package iceberg

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/duckdb/duckdb-go/v2"
)

// TestEachRunReadsDuckDBFiles: string columns DuckDB writes (a lake's
// files may come from other engines: DuckDB, Spark and Trino rewrite
// Iceberg tables) read the same through eachRun as through Arrow:
// PLAIN_DICTIONARY pages (v1), RLE_DICTIONARY (v2), and PLAIN, snappy,
// with nulls.
func TestEachRunReadsDuckDBFiles(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dir := t.TempDir()
	coded := `SELECT CASE WHEN i % 7 = 0 THEN NULL ELSE 'id-' || (i // 13 % 5000)::VARCHAR END AS id FROM range(300000) t(i)`
	cases := []struct {
		name, query, options string
		wantCoded            bool
	}{
		{"dictionary v1", coded, "", true},
		{"dictionary v2", coded, ", PARQUET_VERSION V2", true},
		{"plain", `SELECT 'x' || (i * 2654435761 % 1000003)::VARCHAR AS id FROM range(300000) t(i)`, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".parquet")
			if _, err := db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet%s)", c.query, path, c.options)); err != nil {
				t.Fatal(err)
			}
			got, ncoded, _, ok := runsOf(t, path)
			if !ok {
				t.Fatal("eachRun did not read the file")
			}
			if c.wantCoded != (ncoded > 0) {
				t.Errorf("%d runs read by dictionary index", ncoded)
			}
			if want := arrowStrings(t, path); !slices.Equal(got, want) {
				t.Errorf("read %d values, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// arrowStrings reads column 0 of the file at path through Arrow, one
// value per row, "" for a null.
func arrowStrings(t *testing.T, path string) []string {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1 << 16}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	var out []string
	for _, ch := range tbl.Column(0).Data().Chunks() {
		s, ok := ch.(*array.String)
		if !ok {
			t.Fatalf("column 0 is %s", ch.DataType())
		}
		for i := range s.Len() {
			v := ""
			if s.IsValid(i) {
				v = s.Value(i)
			}
			out = append(out, v)
		}
	}
	return out
}
