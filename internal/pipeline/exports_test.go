//go:build duckdb_arrow

package pipeline_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load/duckdb"
)

// refusePatient answers 403 to a kick-off that names the patient while
// refuse is set, as a server would for a member whose consent it no longer
// holds; every other request goes to the server.
type refusePatient struct {
	patient string
	refuse  atomic.Bool
}

func (f *refusePatient) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.refuse.Load() && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "$export") && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		if bytes.Contains(body, []byte(f.patient)) {
			return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// rosterMatches are matches naming the sandbox's patients pat-0001 to
// pat-000n by reference only (HRex $member-match), as RosterRequests takes
// them.
func rosterMatches(n int) []pipeline.Match {
	var out []pipeline.Match
	for i := 1; i <= n; i++ {
		out = append(out, pipeline.Match{
			Member: extract.Member{Line: i + 1, MemberID: fmt.Sprintf("m%d", i)},
			Result: extract.MatchResult{Status: extract.Matched, PatientRef: fmt.Sprintf("Patient/pat-%04d", i)},
		})
	}
	return out
}

// TestRosterExportsLoadInOneCommit: a roster spread over several
// patient-filtered exports is loaded in one commit. An export that fails
// fails the run and commits nothing; the rerun resumes the exports that
// finished (no new kick-off for them) and commits them all at once, each
// export's watermark in its own scope, every job recorded and cleaned up.
// The next run is incremental per export, and a member who joins the
// roster without anything new since the watermark gets their whole
// history (the back-fill of the export they joined).
func TestRosterExportsLoadInOneCommit(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 12, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	p := pipelineFor(t, srv.URL, dir)
	p.Client.BaseURL = sandbox.StandardBase(srv.URL)
	p.WorkDir = filepath.Join(dir, "work")
	fault := &refusePatient{patient: "Patient/pat-0003"}
	fault.refuse.Store(true)
	p.Client.HTTP = &http.Client{Transport: fault}
	base := extract.Request{Types: []string{"Patient", "Coverage", "ExplanationOfBenefit"}}
	const perExport = 3
	p.Exports = pipeline.RosterRequests(rosterMatches(8), base, perExport)
	k := len(p.Exports)
	if k < 3 {
		t.Fatalf("8 patients at most %d per export: %d exports", perExport, k)
	}
	kickoffs := func() int { return countRequests(sb, isKickoff) }

	_, err = p.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "export of patient/") || !strings.Contains(err.Error(), fmt.Sprintf("of %d)", k)) {
		t.Fatalf("run with one export refused: %v", err)
	}
	if n := kickoffs(); n != k-1 {
		t.Errorf("%d exports started, want the %d that were not refused", n, k-1)
	}
	if w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse); err == nil {
		if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM fhirlake_runs"); got[0] != "0" {
			t.Errorf("%s runs committed after a failed export, want none", got[0])
		}
		w.Close()
	}

	fault.refuse.Store(false)
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := kickoffs(); n != k {
		t.Errorf("%d exports started in all, want %d: the rerun must resume the finished ones", n, k)
	}
	if want := fmt.Sprintf("roster (%d exports)", k); sum.Scope != want || sum.Status != pipeline.StatusCommitted || len(sum.Exports) != k || sum.Since != nil {
		t.Errorf("summary: scope %q, status %s, %d exports, since %v; want %q, committed, %d, none", sum.Scope, sum.Status, len(sum.Exports), sum.Since, want, k)
	}
	if sum.Rows["patient"] != 8 {
		t.Errorf("rows %v, want 8 patients", sum.Rows)
	}
	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	expectValues(t, w, map[string]string{
		"SELECT count(*)::VARCHAR FROM patient":                                                       "8",
		"SELECT count(*)::VARCHAR FROM fhirlake_runs":                                                 "1",
		"SELECT len(string_split(job, ' '))::VARCHAR FROM fhirlake_runs":                              fmt.Sprint(k),
		"SELECT count(DISTINCT scope)::VARCHAR FROM fhirlake_watermarks WHERE scope LIKE 'patient/%'": fmt.Sprint(k),
		"SELECT count(DISTINCT run_id)::VARCHAR FROM fhirlake_watermarks":                             "1",
		"SELECT count(DISTINCT patient_id)::VARCHAR FROM fhirlake_member_matches":                     "8",
	})
	w.Close()
	if d := countRequests(sb, func(r sandbox.RequestLog) bool { return r.Method == http.MethodDelete }); d != k {
		t.Errorf("%d server jobs deleted, want %d", d, k)
	}
	if ents, _ := filepath.Glob(filepath.Join(p.WorkDir, "jobs", "sandbox", "*")); len(ents) != 0 {
		t.Errorf("job directories left: %v", ents)
	}

	// A day later one member's coverage changed, and pat-0009 joins the
	// roster with nothing new since.
	sb.Clock().Advance(24 * time.Hour)
	if err := sb.Update("Patient", "pat-0002", func(m map[string]any) { m["gender"] = "unknown" }); err != nil {
		t.Fatal(err)
	}
	p.Exports = pipeline.RosterRequests(rosterMatches(9), base, perExport)
	if len(p.Exports) != k {
		t.Fatalf("9 patients: %d exports, the test needs the %d of 8", len(p.Exports), k)
	}
	before := kickoffs()
	next, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if next.Since == nil || !next.Since.Equal(sum.TransactionTime) {
		t.Errorf("incremental run since %v, want %v", next.Since, sum.TransactionTime)
	}
	for _, e := range next.Exports {
		if e.Since == nil || !slices.Equal(e.Watermark, []string{"Coverage", "ExplanationOfBenefit", "Patient"}) {
			t.Errorf("export %s: since %v, watermark %v", e.Scope, e.Since, e.Watermark)
		}
	}
	if !slices.Equal(next.Backfill.Patients, []string{"pat-0009"}) || next.Backfill.Mode != "patient" {
		t.Errorf("back-fill %+v, want pat-0009 by patient", next.Backfill)
	}
	if n := kickoffs() - before; n != k+1 {
		t.Errorf("%d kick-offs, want %d: the %d exports and one back-fill", n, k+1, k)
	}
	w, err = duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	expectValues(t, w, map[string]string{
		"SELECT count(*)::VARCHAR FROM patient":                                 "9",
		"SELECT gender FROM patient WHERE id = 'pat-0002'":                      "unknown",
		"SELECT (count(*) > 0)::VARCHAR FROM eob WHERE patient_id = 'pat-0009'": "true",
		"SELECT count(*)::VARCHAR FROM fhirlake_runs":                           "2",
		"SELECT count(DISTINCT run_id)::VARCHAR FROM fhirlake_watermarks":       "1",
	})
}

// TestGroupExportsBackfillTheirOwnMembers: a run of several Group exports
// back-fills a member new to one group through that group's export (the
// member's attribution came in its files), not through another's.
func TestGroupExportsBackfillTheirOwnMembers(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 50, dir)
	groups := sb.GroupIDs()
	if len(groups) < 3 {
		t.Fatalf("%d groups, the test needs 3", len(groups))
	}
	types := []string{"Group", "Patient", "ExplanationOfBenefit"}
	for _, g := range groups[:2] {
		p.Exports = append(p.Exports, pipeline.RosterRun{Request: extract.Request{Group: g, Types: types}, Scope: "group/" + g})
	}
	rec := newRunRecorder()
	p.Progress = rec
	first, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Both exports have a Patient.001.ndjson: a display sees them apart.
	if len(rec.started) != first.Files {
		t.Errorf("%d files reported, want the %d of the two exports", len(rec.started), first.Files)
	}
	for name, total := range rec.started {
		if !strings.HasPrefix(name, "[1/2] ") && !strings.HasPrefix(name, "[2/2] ") || rec.got[name] != total || rec.done[name] != nil {
			t.Errorf("file %q: %d of %d bytes, done %v", name, rec.got[name], total, rec.done[name])
		}
	}
	p.Progress = nil
	// A member of the third group, not loaded yet, joins the first.
	var joiner string
	if err := sb.Update("Group", groups[2], func(m map[string]any) {
		joiner = m["member"].([]any)[0].(map[string]any)["entity"].(map[string]any)["reference"].(string)
	}); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	if err := sb.Update("Group", groups[0], func(m map[string]any) {
		m["member"] = append(m["member"].([]any), map[string]any{"entity": map[string]any{"reference": joiner}})
	}); err != nil {
		t.Fatal(err)
	}
	seen := len(sb.Requests())
	next, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(joiner, "Patient/")
	if !slices.Equal(next.Backfill.Patients, []string{id}) {
		t.Fatalf("back-fill %+v, want %s", next.Backfill, id)
	}
	backfills := 0
	for _, r := range sb.Requests()[seen:] {
		if isKickoff(r) && r.Method == http.MethodPost {
			backfills++
			if !strings.Contains(r.Path, "/Group/"+groups[0]+"/") {
				t.Errorf("back-fill through %s, want the group the member joined (%s)", r.Path, groups[0])
			}
		}
	}
	if backfills != 1 {
		t.Errorf("%d back-fill exports, want 1", backfills)
	}
	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := queryStrings(t, w, fmt.Sprintf("SELECT (SELECT count(*) FROM patient WHERE id = '%s') || ' ' || (SELECT count(*) > 0 FROM eob WHERE patient_id = '%s')", id, id))
	if got[0] != "1 true" {
		t.Errorf("the new member's patient and claims: %s, want 1 true", got[0])
	}
}
