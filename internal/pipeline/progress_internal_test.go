package pipeline

import (
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract"
)

// retryRecorder records what it is told of files and retries.
type retryRecorder struct {
	NopProgress
	events []string
}

func (r *retryRecorder) FileStarted(name string, _ int64) { r.events = append(r.events, "start "+name) }
func (r *retryRecorder) FileProgress(name string, _ int64) {
	r.events = append(r.events, "bytes "+name)
}
func (r *retryRecorder) FileDone(name string, _ error) { r.events = append(r.events, "done "+name) }
func (r *retryRecorder) Retrying(op, reason string, _ time.Duration) {
	r.events = append(r.events, "retry "+op+": "+reason)
}

// TestExportProgressNamesItsExport: what one export of several reports
// names the export, files and waits alike; one export alone, or a run
// without a Progress, reports through the run's context as it is.
func TestExportProgressNamesItsExport(t *testing.T) {
	rec := &retryRecorder{}
	var pr extract.Progress = exportProgress{Progress: rec, prefix: "[2/3] "}
	pr.FileStarted("Patient.001.ndjson", 10)
	pr.FileProgress("Patient.001.ndjson", 10)
	pr.FileDone("Patient.001.ndjson", nil)
	pr.(extract.RetryProgress).Retrying("download Patient.002.ndjson", "server busy (429)", time.Second)
	want := []string{"start [2/3] Patient.001.ndjson", "bytes [2/3] Patient.001.ndjson", "done [2/3] Patient.001.ndjson",
		"retry [2/3] download Patient.002.ndjson: server busy (429)"}
	if len(rec.events) != len(want) {
		t.Fatalf("events %q, want %q", rec.events, want)
	}
	for i := range want {
		if rec.events[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, rec.events[i], want[i])
		}
	}
	ctx := t.Context()
	if got := (Pipeline{Progress: rec}).exportContext(ctx, 0, 1); got != ctx {
		t.Error("one export: its context changed")
	}
	if got := (Pipeline{}).exportContext(ctx, 1, 3); got != ctx {
		t.Error("no Progress: the context changed")
	}
	if got := (Pipeline{Progress: rec}).exportContext(ctx, 1, 3); got == ctx {
		t.Error("one of three exports: the context is the run's")
	}
}
