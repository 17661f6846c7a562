//go:build duckdb_arrow

package sql_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lduckdb "github.com/fhirlake/fhirlake/load/duckdb"
	fsql "github.com/fhirlake/fhirlake/sql"
)

// TestReadmeMatchesViews keeps sql/README.md true to the analytics views:
// for each view, the notes that head its SQL file and its columns with
// their DuckDB types, in order, as a warehouse built from the sandbox
// has them. go test ./sql -update rewrites it.
func TestReadmeMatchesViews(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	buildSandbox(t, path, 5)
	w, err := lduckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var b strings.Builder
	b.WriteString(`# Analytics views

Generated from the SQL files in this folder and the columns of the views a
warehouse has (go test ./sql -update); a test fails when it drifts. Every
run creates the views after its commit. The tables they read are documented
column by column in [../schemas/README.md](../schemas/README.md).

`)
	files, err := fs.Glob(fsql.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		body, err := fs.ReadFile(fsql.FS, f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(f, ".sql")
		schema, view := "main", name
		if rest, ok := strings.CutPrefix(name, "tuva_"); ok {
			schema, view = "tuva", rest
			name = "tuva." + rest
		}
		fmt.Fprintf(&b, "## %s\n\n", name)
		// The comment that heads the file, as prose.
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "--") {
				break
			}
			fmt.Fprintln(&b, strings.TrimPrefix(strings.TrimPrefix(line, "--"), " "))
		}
		b.WriteString("\n| column | type |\n|---|---|\n")
		rows := queryRows(t, w, fmt.Sprintf(`SELECT column_name || ' ' || data_type FROM duckdb_columns()
			WHERE schema_name = '%s' AND table_name = '%s' AND database_name = current_database() ORDER BY column_index`, schema, view))
		if len(rows) == 0 {
			t.Errorf("view %s has no columns in the warehouse", name)
		}
		for _, r := range rows {
			col, typ, _ := strings.Cut(r[0], " ")
			fmt.Fprintf(&b, "| `%s` | %s |\n", col, typ)
		}
		b.WriteString("\n")
	}
	want := b.String()
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("sql/README.md is out of date with the views: run go test -tags duckdb_arrow ./sql -run TestReadmeMatchesViews -update and review the diff")
	}
}
