//go:build duckdb_arrow

package pipeline_test

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load/duckdb"
)

func TestExportErrorsHoldTheWatermarkBack(t *testing.T) {
	p, sb := newPipeline(t, 10, t.TempDir())
	sb.SetFaults(sandbox.Faults{ErrorFile: true}) // an error naming Observation
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(sum.Watermark, "Observation") || !slices.Contains(sum.Watermark, "Patient") {
		t.Errorf("watermark advanced for %v; want every type but Observation", sum.Watermark)
	}
	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, ok, _ := w.Watermark(t.Context(), "sandbox", "system", []string{"Patient", "Observation"}); ok {
		t.Error("a watermark covers Observation after its export failed")
	}
	if _, ok, _ := w.Watermark(t.Context(), "sandbox", "system", []string{"Patient", "Coverage"}); !ok {
		t.Error("no watermark for the types that exported cleanly")
	}
	// The server's issues are stored with the run, by type and severity.
	got := queryStrings(t, w, "SELECT concat_ws(' ', run_id = '"+sum.RunID+"', source, resource_type, severity, issues) FROM fhirlake_export_errors ORDER BY severity")
	if diff := cmp.Diff([]string{"true sandbox Observation error 1", "true sandbox Observation warning 1"}, got); diff != "" {
		t.Errorf("fhirlake_export_errors (-want +got):\n%s", diff)
	}
}

// noPatientParam refuses POST kick-offs (and with them the patient
// parameter), as servers without that feature do.
type noPatientParam struct{}

func (noPatientParam) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "$export") {
		body := `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-supported","diagnostics":"POST kick-off not supported"}]}`
		return &http.Response{StatusCode: http.StatusBadRequest, Body: io.NopCloser(strings.NewReader(body)),
			Header: http.Header{"Content-Type": {"application/fhir+json"}}, Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestBackfillFallsBackToFullExport(t *testing.T) {
	p, sb := newPipeline(t, 20, t.TempDir())
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	trapID, _ := changeSandbox(t, sb)
	old := p.Client
	p.Client = &extract.Client{BaseURL: old.BaseURL, Tokens: old.Tokens, Sleep: old.Sleep,
		HTTP: &http.Client{Transport: noPatientParam{}}}
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Backfill.Mode != "full" || !slices.Contains(sum.Backfill.Patients, trapID) {
		t.Errorf("back-fill %+v, want a full export for %s", sum.Backfill, trapID)
	}
	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM eob WHERE patient_id = '"+trapID+"'"); got[0] == "0" {
		t.Error("the newly attributed member's history is missing after the fallback")
	}
}

func TestConcurrentWriterIsTurnedAwayWhileTheFirstCompletes(t *testing.T) {
	p, _ := newPipeline(t, 10, t.TempDir())
	second := p
	entered, release := make(chan struct{}), make(chan struct{})
	p.Observe = func(stage string) {
		if stage == pipeline.StageTransformed {
			close(entered)
			<-release // hold the run between transform and commit
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(t.Context())
		done <- err
	}()
	<-entered
	_, err := second.Run(t.Context())
	if !errors.Is(err, lockfile.ErrBusy) || !strings.Contains(err.Error(), "fhirlake run --source sandbox") {
		t.Errorf("second writer: %v, want a busy error naming the first", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	if n := runsIn(t, p.Warehouse); n != 1 {
		t.Errorf("%d runs committed, want 1", n)
	}
}

// TestBackfillInChunks: members new to the scope are back-filled in
// patient-filtered exports of at most MaxPatients patients each, all
// loaded by the one run.
func TestBackfillInChunks(t *testing.T) {
	p, sb := newPipeline(t, 20, t.TempDir())
	p.MaxPatients = 1
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	trapID, _ := changeSandbox(t, sb)
	before := len(sb.Requests())
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Backfill.Mode != "patient" || len(sum.Backfill.Patients) < 2 || !slices.Contains(sum.Backfill.Patients, trapID) {
		t.Fatalf("back-fill %+v, want several members, %s among them", sum.Backfill, trapID)
	}
	posts := 0
	for _, r := range sb.Requests()[before:] {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "$export") && r.Status == http.StatusAccepted {
			posts++
		}
	}
	if posts != len(sum.Backfill.Patients) {
		t.Errorf("%d patient-filtered exports for %d new members at one each", posts, len(sum.Backfill.Patients))
	}
	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM eob WHERE patient_id = '"+trapID+"'"); got[0] == "0" {
		t.Error("the newly attributed member's history is missing")
	}
}
