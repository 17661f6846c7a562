//go:build duckdb_arrow

package pipeline_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/transform"
)

// TestRunWithRefusedTypeFilter: a server that refuses _typeFilter still
// yields a warehouse with only the matching resources of the filtered
// type (fhirlake filters the files itself), and the summary says what was
// refused and how many resources fhirlake's filter dropped.
func TestRunWithRefusedTypeFilter(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 6, dir)
	p.Lake = ""
	p.Request.Types = []string{"Patient", "Coverage"}
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	ids := queryStrings(t, w, "SELECT id FROM patient ORDER BY id LIMIT 2")
	w.Close()

	sb.SetFaults(sandbox.Faults{RefuseParams: []string{"_typeFilter"}})
	q, _ := newPipeline(t, 6, t.TempDir())
	q.Client = p.Client
	q.Lake = ""
	q.Request.Types = p.Request.Types
	q.Request.TypeFilters = []string{"Patient?_id=" + strings.Join(ids, ",")}
	sum, err := q.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.RefusedParameters) != 1 || sum.RefusedParameters[0].Parameter != "_typeFilter" || sum.FilteredOut != 4 {
		t.Errorf("summary: refused %+v, filtered out %d", sum.RefusedParameters, sum.FilteredOut)
	}
	w, err = duckdb.OpenReadOnly(t.Context(), q.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := queryStrings(t, w, "SELECT string_agg(id, ',' ORDER BY id) FROM patient"); got[0] != strings.Join(ids, ",") {
		t.Errorf("patients %v, want %v", got, ids)
	}
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM coverage"); got[0] != "6" {
		t.Errorf("coverages %v: the unfiltered type was filtered", got)
	}
}

// TestRunWithOrganizedOutput: output organized by Patient (files of many
// types, headers between the blocks) loads the same rows as output of one
// type per file.
func TestRunWithOrganizedOutput(t *testing.T) {
	counts := func(organize string) map[string]int64 {
		t.Helper()
		p, _ := newPipeline(t, 8, t.TempDir())
		p.Lake = ""
		p.Request.Patient = true
		p.Request.OrganizeOutputBy = organize
		sum, err := p.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sum.Rejects != 0 {
			t.Errorf("organize %q: %d rejects", organize, sum.Rejects)
		}
		return sum.Rows
	}
	plain, organized := counts(""), counts("Patient")
	if len(plain) == 0 || plain["patient"] != 8 {
		t.Fatalf("plain rows: %v", plain)
	}
	for table, n := range plain {
		if organized[table] != n {
			t.Errorf("%s: %d rows organized, %d plain", table, organized[table], n)
		}
	}
}

// TestLostLeaseStopsTheRun: a run whose source lease is taken over (its
// renewal finds another holder) stops before it commits, with
// load.ErrLeaseLost, and the warehouse records no run.
func TestLostLeaseStopsTheRun(t *testing.T) {
	dir := t.TempDir()
	p, _ := newPipeline(t, 3, dir)
	catalog := filepath.Join(dir, "catalog.db")
	p.LakeFormat, p.LakeOptions = iceberg.Format, load.LakeOptions{Catalog: "sqlite:" + catalog}
	p.LeaseTTL = time.Second
	p.Observe = func(stage string) {
		if stage != pipeline.StageExported {
			return
		}
		db, err := sql.Open("sqlite", "file:"+catalog+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec(`UPDATE fhirlake_leases SET holder = 'thief', info = 'another run' WHERE source = ?`, p.Source); err != nil {
			t.Error(err)
		}
		time.Sleep(1500 * time.Millisecond) // past a renewal, which finds the thief
	}
	_, err := p.Run(t.Context())
	if !errors.Is(err, load.ErrLeaseLost) {
		t.Fatalf("run after its lease was taken: %v, want ErrLeaseLost", err)
	}
	if _, err := os.Stat(p.Warehouse); errors.Is(err, os.ErrNotExist) {
		return // stopped before the load made the warehouse
	}
	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if queryStrings(t, w, "SELECT count(*)::VARCHAR FROM duckdb_tables() WHERE table_name = 'fhirlake_runs'")[0] == "0" {
		return // its bookkeeping was never created
	}
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM fhirlake_runs"); got[0] != "0" {
		t.Errorf("%s runs recorded", got[0])
	}
}

// TestViewGainsColumns: a view that gains columns at its end keeps its
// table: the warehouse table gains them (null in the rows loaded before,
// filled in the rows loaded after), and the Hive lake rewrites every file
// of the table, the partitions the run did not touch included, so that
// all have the same columns.
func TestViewGainsColumns(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 6, dir)
	p.Request.Types = []string{"Patient"}
	view := func(columns string) *transform.View {
		t.Helper()
		vdir := t.TempDir()
		body := `{"resourceType":"ViewDefinition","name":"patient_names","resource":"Patient","status":"active",
			"select":[{"column":[{"name":"id","path":"id","type":"id"},{"name":"family","path":"name.family.first()","type":"string"},
			{"name":"birth_date","path":"birthDate","type":"date","tag":[{"name":"fhirlake/partition","value":"birth_year"}]}` + columns + `]}]}`
		if err := os.WriteFile(filepath.Join(vdir, "v.json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		vs, err := transform.LoadViews(os.DirFS(vdir))
		if err != nil {
			t.Fatal(err)
		}
		return vs[0]
	}
	base := p.Views
	p.Views = append(slices.Clone(base), view(""))
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(time.Hour)
	ids := patientIDsOf(t, p.Warehouse)
	if err := sb.Update("Patient", ids[0], func(m map[string]any) { m["gender"] = "unknown" }); err != nil {
		t.Fatal(err)
	}
	p.Views = append(slices.Clone(base), view(`,{"name":"gender","path":"gender","type":"code"}`))
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatalf("a run after the view gained a column: %v", err)
	}
	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR || ' ' || count(gender)::VARCHAR || ' ' || count(*) FILTER (WHERE id = '"+ids[0]+"' AND gender = 'unknown')::VARCHAR FROM patient_names"); got[0] != "6 1 1" {
		t.Errorf("rows, rows with gender, the updated one: %v, want 6 1 1", got)
	}
	lake := filepath.Join(p.Lake, "patient_names")
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR || ' ' || count(gender)::VARCHAR FROM read_parquet('"+lake+"/**/*.parquet', hive_partitioning = false)"); got[0] != "6 1" {
		t.Errorf("the lake's files: %v, want all 6 rows with the gender column", got)
	}
}

// patientIDsOf lists the patient ids in a warehouse.
func patientIDsOf(t *testing.T, warehouse string) []string {
	t.Helper()
	w, err := duckdb.OpenReadOnly(t.Context(), warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return queryStrings(t, w, "SELECT id FROM patient ORDER BY id")
}
