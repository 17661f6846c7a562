//go:build duckdb_arrow

package pipeline_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

// newPipeline points a pipeline at an in-process sandbox with the given
// number of members (seed 1).
func newPipeline(t *testing.T, members int, dir string) (pipeline.Pipeline, *sandbox.Server) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{Members: members, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return pipelineFor(t, srv.URL, dir), sb
}

// pipelineFor points a pipeline at the sandbox served at root.
func pipelineFor(t testing.TB, root, dir string) pipeline.Pipeline {
	t.Helper()
	srv := struct{ URL string }{root}
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Pipeline{
		Source: "sandbox",
		Client: &extract.Client{
			BaseURL: sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant),
			Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
				TokenURL:     srv.URL + sandbox.TokenPath,
				ClientID:     sandbox.DefaultClientID,
				ClientSecret: sandbox.DefaultClientSecret,
			}),
			Sleep: func(context.Context, time.Duration) error { return nil },
		},
		Views:     views,
		SQL:       fsql.FS,
		Warehouse: filepath.Join(dir, "warehouse.duckdb"),
		Lake:      filepath.Join(dir, "lake"),
		BatchRows: 100, // several batches per table
	}
}

func queryStrings(t *testing.T, w *duckdb.Warehouse, q string) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	return out
}

// tableRows is the row count of every table for the sandbox with 50
// members and seed 1: the generator is deterministic, so these are exact.
var tableRows = map[string]int64{
	"attribution": 50, "coverage": 50, "encounter": 111, "encounter_diagnosis": 158,
	"eob": 165, "eob_care_team": 169, "eob_diagnosis": 175, "eob_item": 456,
	"eob_item_adjudication": 3192, "eob_procedure": 4, "observation": 137,
	"observation_component": 190, "organization": 4, "patient": 50, "patient_identifier": 50,
	"practitioner": 7,
}

// exactValues are hand-checked values derived from seed 1, one query each.
var exactValues = []struct {
	query string
	want  []string
}{
	{"SELECT concat_ws(' | ', id, member_id, family, given, gender, birth_date, race_code, ethnicity_code, state, meta_last_updated) FROM patient ORDER BY id LIMIT 2",
		[]string{
			"pat-0001 | 92169970808 | Rodriguez | Nancy | female | 1945-08-19 | 2076-8 | 2135-2 | MT | 2026-01-02 09:23:56+00",
			"pat-0002 | 81693692063 | Brown | Thomas | male | 1951-10-30 | 2106-3 | 2186-5 | SD | 2025-11-21 16:06:42+00",
		}},
	{"SELECT concat_ws(' | ', id, claim_type, patient_id, billable_period_start, total_submitted, total_paid) FROM eob ORDER BY id LIMIT 3",
		[]string{
			"eob-0001-01 | pharmacy | pat-0001 | 2025-03-05 | 11.34 | 0.00",
			"eob-0001-02 | professional | pat-0001 | 2025-04-06 | 239.60 | 82.50",
			"eob-0001-03 | professional | pat-0001 | 2025-06-20 | 239.32 | 114.05",
		}},
	{"SELECT concat_ws(' | ', eob_id, sequence, service_code, ndc, serviced_start, submitted, allowed, paid) FROM eob_item WHERE eob_id IN ('eob-0001-01','eob-0001-02') ORDER BY eob_id, sequence",
		[]string{
			"eob-0001-01 | 1 | 68180051301 | 2025-03-05 | 11.34 | 5.55 | 0.00",
			"eob-0001-02 | 1 | 99214 | 2025-04-06 | 198.00 | 110.88 | 56.71",
			"eob-0001-02 | 2 | 93000 | 2025-04-06 | 41.60 | 25.79 | 25.79",
		}},
	{"SELECT concat_ws(' | ', id, value_quantity::DECIMAL(5,1), value_unit, effective_start) FROM observation WHERE code = '4548-4' ORDER BY id LIMIT 2",
		[]string{"obs-0010-01 | 7.0 | % | 2025-09-23 10:49:00+00", "obs-0010-04 | 8.3 | % | 2025-11-13 15:26:00+00"}},
	{"SELECT concat_ws(' | ', claim_type, claims, members, claim_lines, total_paid) FROM claims_by_type",
		[]string{"professional | 107 | 45 | 350 | 13743.66", "pharmacy | 42 | 20 | 42 | 536.90", "institutional | 16 | 15 | 64 | 37542.26"}},
	// The sandbox's provider organizations carry an NPI and a TIN (made
	// from the NPI: 9, its check digit, a dash, its digits 3 to 9); the
	// payer has only its payer id.
	{"SELECT concat_ws(' | ', id, type_code, coalesce(npi, '-'), coalesce(tin, '-')) FROM organization ORDER BY id",
		[]string{
			"org-clinic | prov | 1370086799 | 99-7008679",
			"org-hospital | prov | 1652164744 | 94-5216474",
			"org-payer | pay | - | -",
			"org-pharmacy | prov | 1966179859 | 99-6617985",
		}},
	{"SELECT concat_ws(' ', typeof(meta_last_updated), typeof(birth_date)) FROM patient LIMIT 1",
		[]string{"TIMESTAMP WITH TIME ZONE DATE"}},
	{"SELECT typeof(paid) FROM eob_item LIMIT 1", []string{"DECIMAL(12,2)"}},
}

func TestRunAgainstSandbox(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 50, dir)

	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tableRows, sum.Rows); diff != "" {
		t.Errorf("rows per table (-want +got):\n%s", diff)
	}
	var resources int64
	for _, typ := range []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Condition", "Observation", "Practitioner", "Organization", "Group"} {
		resources += int64(sb.Count(typ))
	}
	if sum.Resources != resources || sum.Rejects != 0 {
		t.Errorf("summary: %d resources, %d rejects; want %d and 0", sum.Resources, sum.Rejects, resources)
	}
	if sum.TransactionTime != sandbox.DefaultStart {
		t.Errorf("transaction time = %v, want the sandbox clock %v", sum.TransactionTime, sandbox.DefaultStart)
	}

	// A second run of the same export replaces, never duplicates.
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}

	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	names := make([]string, 0, len(tableRows))
	for n := range tableRows {
		names = append(names, n)
	}
	got, err := w.TableRows(t.Context(), names)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tableRows, got); diff != "" {
		t.Errorf("warehouse rows after two runs (-want +got):\n%s", diff)
	}
	for _, n := range names {
		q := "SELECT count(*)::VARCHAR FROM read_parquet('" + filepath.Join(p.Lake, n, "**", "*.parquet") + "', hive_partitioning = true)"
		if got := queryStrings(t, w, q); len(got) != 1 || got[0] != fmt.Sprint(tableRows[n]) {
			t.Errorf("lake %s holds %v rows, want %d", n, got, tableRows[n])
		}
	}
	for _, ev := range exactValues {
		if diff := cmp.Diff(ev.want, queryStrings(t, w, ev.query)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", ev.query, diff)
		}
	}
	if got := queryStrings(t, w, "SELECT concat_ws(' ', source, scope, status, resources) FROM fhirlake_runs ORDER BY started_at"); len(got) != 2 || got[0] != fmt.Sprintf("sandbox system committed %d", resources) {
		t.Errorf("fhirlake_runs = %v", got)
	}
	// The committed run's downloads are cleaned up.
	if ents, _ := filepath.Glob(filepath.Join(dir, "fhirlake-work", "jobs", "sandbox", "*")); len(ents) != 0 {
		t.Errorf("download directories left behind: %v", ents)
	}
}

func TestRunTypesAndGroupScope(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 50, dir)
	group := sb.GroupIDs()[0]
	p.Request = extract.Request{Group: group, Types: []string{"Patient", "ExplanationOfBenefit"}}
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The first group of seed 1 (atr-1723023440) has 13 members.
	if sum.Scope != "group/"+group || sum.Rows["patient"] != 13 || sum.Rows["coverage"] != 0 || sum.Rows["eob"] == 0 {
		t.Errorf("group export: scope %s, rows %v", sum.Scope, sum.Rows)
	}
}

func countRequests(sb *sandbox.Server, match func(sandbox.RequestLog) bool) int {
	n := 0
	for _, r := range sb.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

func isKickoff(r sandbox.RequestLog) bool {
	return strings.HasSuffix(r.Path, "$export") && r.Method != http.MethodDelete && r.Status == 202
}
func isFile(r sandbox.RequestLog) bool { return strings.Contains(r.Path, "/$export/file/") }

func TestRunResumesAfterFailedLoad(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 20, dir)
	p.WorkDir = filepath.Join(dir, "work")
	// A table in the way makes the commit fail after the export is on disk,
	// as a crash between download and commit would.
	exec := func(q string) {
		t.Helper()
		w, err := duckdb.Open(t.Context(), p.Warehouse)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := w.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	exec("CREATE TABLE patient (x INTEGER)")
	if _, err := p.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "table patient: columns in the warehouse") {
		t.Fatalf("run with a conflicting table: %v", err)
	}
	files := countRequests(sb, isFile)
	exec("DROP TABLE patient")
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if k := countRequests(sb, isKickoff); k != 1 {
		t.Errorf("%d kick-offs, want 1: the rerun must reuse the downloaded export", k)
	}
	if again := countRequests(sb, isFile) - files; again != 0 {
		t.Errorf("%d files downloaded again, want 0", again)
	}
	if sum.Rows["patient"] != 20 {
		t.Errorf("rows %v", sum.Rows)
	}
	// After the commit the server job is deleted and the work dir is clean.
	if d := countRequests(sb, func(r sandbox.RequestLog) bool { return r.Method == http.MethodDelete }); d != 1 {
		t.Errorf("%d DELETEs of the server job, want 1", d)
	}
	if ents, _ := filepath.Glob(filepath.Join(p.WorkDir, "jobs", "sandbox", "*")); len(ents) != 0 {
		t.Errorf("job directories left: %v", ents)
	}
}

// goneOnce answers 410 to the first file request, as a server whose files
// expired before the client got them all.
type goneOnce struct {
	mu   sync.Mutex
	done bool
}

func (g *goneOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	fire := !g.done && strings.Contains(r.URL.Path, "/$export/file/")
	if fire {
		g.done = true
	}
	g.mu.Unlock()
	if fire {
		return &http.Response{StatusCode: http.StatusGone, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestRunStartsNewExportWhenFilesExpired(t *testing.T) {
	p, sb := newPipeline(t, 20, t.TempDir())
	p.Client.HTTP = &http.Client{Transport: &goneOnce{}}
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if k := countRequests(sb, isKickoff); k != 2 {
		t.Errorf("%d kick-offs, want 2 (a new export after the 410)", k)
	}
	if sum.Rows["patient"] != 20 {
		t.Errorf("rows %v", sum.Rows)
	}
}

func TestIncrementalRunAppliesUpdatesAndDeletes(t *testing.T) {
	p, sb := newPipeline(t, 20, t.TempDir())
	first, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	if err := sb.Delete("ExplanationOfBenefit", "eob-0001-02"); err != nil {
		t.Fatal(err)
	}
	if err := sb.Update("Patient", "pat-0002", func(m map[string]any) { m["gender"] = "unknown" }); err != nil {
		t.Fatal(err)
	}
	// The second run finds the watermark and exports only what changed.
	second, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if second.Since == nil || !second.Since.Equal(first.TransactionTime) {
		t.Errorf("second run since %v, want the first run's transaction time %v", second.Since, first.TransactionTime)
	}
	if second.Resources != 1 || second.Deleted != 1 {
		t.Errorf("incremental run carried %d resources and %d deletes, want 1 and 1", second.Resources, second.Deleted)
	}
	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	expectValues(t, w, map[string]string{
		"SELECT count(*)::VARCHAR FROM eob WHERE id = 'eob-0001-02'":          "0",
		"SELECT count(*)::VARCHAR FROM eob_item WHERE eob_id = 'eob-0001-02'": "0",
		"SELECT gender FROM patient WHERE id = 'pat-0002'":                    "unknown",
		"SELECT count(*)::VARCHAR FROM patient":                               "20",
		"SELECT concat_ws(' ', resource_type, id) FROM fhirlake_deleted":      "ExplanationOfBenefit eob-0001-02",
	})
}

// expectValues checks that each query answers one row, its value.
func expectValues(t *testing.T, w *duckdb.Warehouse, want map[string]string) {
	t.Helper()
	for q, v := range want {
		if got := queryStrings(t, w, q); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %s", q, got, v)
		}
	}
}
