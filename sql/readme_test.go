//go:build duckdb_arrow

package sql_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	lduckdb "github.com/fhirlake/fhirlake/load/duckdb"
	fsql "github.com/fhirlake/fhirlake/sql"
)

// TestReadmeMatchesViews keeps sql/README.md true to the analytics views:
// for each view, the notes that head its SQL file and its columns with
// their DuckDB types, in order, as a warehouse built from the sandbox
// has them, each with its meaning from columns.txt. A column without an
// entry there, or an entry that names no column, fails the test. go test
// ./sql -update rewrites it.
func TestReadmeMatchesViews(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warehouse.duckdb")
	buildSandbox(t, path, 5)
	w, err := lduckdb.OpenReadOnly(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	meanings := readMeanings(t, "columns.txt")
	var b strings.Builder
	b.WriteString(`# Analytics views

Generated from the SQL files in this folder, the meanings of their columns
in columns.txt and the columns of the views a warehouse has (go test ./sql
-update); a test fails when it drifts or a column has no meaning written.
Every run creates the views after its commit. The tables they read are
documented column by column in [../schemas/README.md](../schemas/README.md).

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
		b.WriteString("\n| column | type | meaning |\n|---|---|---|\n")
		rows := queryRows(t, w, fmt.Sprintf(`SELECT column_name || ' ' || data_type FROM duckdb_columns()
			WHERE schema_name = '%s' AND table_name = '%s' AND database_name = current_database() ORDER BY column_index`, schema, view))
		if len(rows) == 0 {
			t.Errorf("view %s has no columns in the warehouse", name)
		}
		for _, r := range rows {
			col, typ, _ := strings.Cut(r[0], " ")
			meaning, ok := meanings.lookup(name, col)
			if !ok {
				t.Errorf("sql/columns.txt: no entry for %s.%s", name, col)
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", col, typ, meaning)
		}
		b.WriteString("\n")
	}
	for _, k := range meanings.unused() {
		t.Errorf("sql/columns.txt: %s names no column of the views", k)
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

// meanings are the entries of columns.txt: "column" or "view.column" to
// what it means; N in a column name stands for a number.
type meanings struct {
	text map[string]string
	used map[string]bool
}

// entryRE matches the first line of an entry: a (view-qualified) column
// name, a colon and the text.
var entryRE = regexp.MustCompile(`^([a-z_][a-z0-9_.]*[a-zA-Z0-9_]): (.+)$`)

func readMeanings(t *testing.T, path string) *meanings {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := &meanings{text: map[string]string{}, used: map[string]bool{}}
	var last string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			last = ""
		case strings.HasPrefix(line, "    ") && last != "":
			m.text[last] += " " + strings.TrimSpace(line)
		default:
			e := entryRE.FindStringSubmatch(line)
			if e == nil {
				t.Fatalf("%s:%d: want \"column: meaning\", an indented continuation or a # comment, got %q", path, n, line)
			}
			if _, dup := m.text[e[1]]; dup {
				t.Fatalf("%s:%d: %s has a second entry", path, n, e[1])
			}
			last = e[1]
			m.text[last] = e[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// digitsRE is a column name's numbers, which an entry writes as N.
var digitsRE = regexp.MustCompile(`_[0-9]+(_|$)`)

// lookup finds what column of view means: the view's own entry first,
// then the plain one; for each, the exact name, then with its number as N.
func (m *meanings) lookup(view, column string) (string, bool) {
	generic := digitsRE.ReplaceAllString(column, "_N$1")
	for _, k := range []string{view + "." + column, view + "." + generic, column, generic} {
		if text, ok := m.text[k]; ok {
			m.used[k] = true
			return text, true
		}
	}
	return "", false
}

// unused lists the entries no column looked up, sorted.
func (m *meanings) unused() []string {
	var keys []string
	for k := range m.text {
		if !m.used[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
