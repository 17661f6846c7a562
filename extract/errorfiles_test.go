package extract_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// TestErrorFilesAreDiagnostics: a manifest's error[] files hold
// OperationOutcomes about the export, not data. A count that differs from
// their lines (servers count the resources that failed) or a 404/410 on
// one must not fail the export: before, the first was ErrVerify wrapped as
// ErrTransient and retried on every run (exit 5 forever), the second
// failed the export.
func TestErrorFilesAreDiagnostics(t *testing.T) {
	// The sandbox's error file: a warning (incomplete) and an error
	// (exception), both about Observation.
	read := extract.ErrorSummary{Errors: 1, Warnings: 1, Types: []string{"Observation"}, ByType: []extract.IssueCount{
		{ResourceType: "Observation", Severity: "error", Issues: 1, Codes: []string{"exception"}},
		{ResourceType: "Observation", Severity: "warning", Issues: 1, Codes: []string{"incomplete"}},
	}}
	// A missing error file is an error of unknown type.
	gone := extract.ErrorSummary{Errors: 1, MissingFiles: 1}
	tests := []struct {
		name      string
		faults    sandbox.Faults
		want      extract.ErrorSummary
		errorFile bool // the error file is among the results
	}{
		{"count as the lines", sandbox.Faults{ErrorFile: true}, read, true},
		{"count of failed resources", sandbox.Faults{ErrorFile: true, ErrorFileCount: 7}, read, true},
		{"error file 404", sandbox.Faults{ErrorFile: true, ErrorFileStatus: http.StatusNotFound}, gone, false},
		{"error file 410", sandbox.Faults{ErrorFile: true, ErrorFileStatus: http.StatusGone}, gone, false},
		{"count differs and paged manifest", sandbox.Faults{ErrorFile: true, ErrorFileCount: 3, ManifestPageSize: 2}, read, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{MaxLinesPerFile: 50})
			e.sb.SetFaults(tt.faults)
			c := e.client()
			dir := t.TempDir()
			res, err := c.Export(t.Context(), extract.Request{}, dir)
			if err != nil {
				t.Fatalf("export failed: %v", err)
			}
			if diff := cmp.Diff(e.allCounts(), linesByType(res.Files, extract.KindOutput)); diff != "" {
				t.Errorf("lines per type (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, res.Errors); diff != "" {
				t.Errorf("error summary (-want +got):\n%s", diff)
			}
			var errorFiles int
			for _, f := range res.Files {
				if f.Kind == extract.KindError {
					errorFiles++
				}
			}
			if want := map[bool]int{true: 1}[tt.errorFile]; errorFiles != want {
				t.Errorf("%d error files among the results, want %d", errorFiles, want)
			}
			// Each error file was asked for once: no retries.
			errGets := e.requests(func(r sandbox.RequestLog) bool { return isFile(r) && strings.Contains(r.Path, "OperationOutcome") })
			if errGets != 1 {
				t.Errorf("error file requested %d times, want 1", errGets)
			}
			// A second run resumes and finishes the same way.
			again, err := c.Export(t.Context(), extract.Request{}, dir)
			if err != nil {
				t.Fatalf("resumed export failed: %v", err)
			}
			if diff := cmp.Diff(tt.want, again.Errors); diff != "" {
				t.Errorf("error summary of the resumed export (-want +got):\n%s", diff)
			}
		})
	}
}

// TestErrorSummaryMerge: the summaries of several exports add up: counts,
// types, and per type and severity the issues and their codes.
func TestErrorSummaryMerge(t *testing.T) {
	a := extract.ErrorSummary{Errors: 2, Warnings: 1, Types: []string{"Observation"}, ByType: []extract.IssueCount{
		{ResourceType: "Observation", Severity: "error", Issues: 2, Codes: []string{"exception"}},
		{ResourceType: "", Severity: "warning", Issues: 1},
	}}
	b := extract.ErrorSummary{Errors: 1, MissingFiles: 1, Types: []string{"Coverage", "Observation"}, ByType: []extract.IssueCount{
		{ResourceType: "Observation", Severity: "error", Issues: 1, Codes: []string{"incomplete", "exception"}},
		{ResourceType: "Coverage", Severity: "fatal", Issues: 1},
	}}
	got := extract.ErrorSummary{}.Merge(a).Merge(b)
	want := extract.ErrorSummary{Errors: 3, Warnings: 1, MissingFiles: 1, Types: []string{"Coverage", "Observation"}, ByType: []extract.IssueCount{
		{ResourceType: "", Severity: "warning", Issues: 1},
		{ResourceType: "Coverage", Severity: "fatal", Issues: 1},
		{ResourceType: "Observation", Severity: "error", Issues: 3, Codes: []string{"exception", "incomplete"}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	if a.ByType[0].Issues != 2 || len(a.ByType[0].Codes) != 1 {
		t.Errorf("Merge changed its receiver: %+v", a.ByType[0])
	}
	if z := (extract.ErrorSummary{}).Merge(extract.ErrorSummary{}); z.Types != nil || z.ByType != nil {
		t.Errorf("empty merge: %+v", z)
	}
}
