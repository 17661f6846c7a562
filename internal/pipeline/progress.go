package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fhirlake/fhirlake/extract"
)

// Progress observes a run for a progress display: the export as the
// extract client reports it, the rows staged per table, and each stage as
// it completes. Methods must return quickly and be safe for concurrent use:
// downloads and transform workers report from several goroutines at once.
// Nothing passed to it is secret or resource content.
type Progress interface {
	extract.Progress
	// Rows reports n more rows staged for table, one of the views' tables
	// (the resource index is not counted), by the main transform, the
	// back-fill or the re-staging of duplicates. Over a run the counts add
	// up to Summary.Rows.
	Rows(table string, n int64)
	// Stage is called as each stage of a run completes, with the names
	// Observe gets (StageExported, StageTransformed, StageCommitted,
	// StageLake), just before Observe.
	Stage(stage string)
}

// NopProgress is a Progress that ignores everything; embed it to implement
// only some of the methods.
type NopProgress struct{ extract.NopProgress }

var _ Progress = NopProgress{}

// Rows does nothing.
func (NopProgress) Rows(string, int64) {}

// Stage does nothing.
func (NopProgress) Stage(string) {}

type progressKey struct{}

// runContext is the context of one run's work: the extract client logs to
// log (so that its lines carry the run id and source, whatever Client.Log
// says) and reports to the pipeline's Progress, and the loader sink finds
// the Progress to report staged rows to.
func (p Pipeline) runContext(ctx context.Context, log *slog.Logger) context.Context {
	ctx = extract.WithLogger(ctx, log)
	if p.Progress != nil {
		ctx = extract.WithProgress(ctx, p.Progress)
		ctx = context.WithValue(ctx, progressKey{}, p.Progress)
	}
	return ctx
}

// progressFrom returns the Progress runContext put in ctx, or NopProgress.
func progressFrom(ctx context.Context) Progress {
	if pr, ok := ctx.Value(progressKey{}).(Progress); ok {
		return pr
	}
	return NopProgress{}
}

// exportProgress reports one export of a run of several to the run's
// Progress, its file names prefixed with the export's place ("[2/4] "):
// every export has its Patient.001.ndjson, and a display keys its bars by
// name. Waits before retries name the export the same way.
type exportProgress struct {
	extract.Progress
	prefix string
}

func (e exportProgress) FileStarted(name string, total int64) {
	e.Progress.FileStarted(e.prefix+name, total)
}

func (e exportProgress) FileProgress(name string, n int64) {
	e.Progress.FileProgress(e.prefix+name, n)
}

func (e exportProgress) FileDone(name string, err error) {
	e.Progress.FileDone(e.prefix+name, err)
}

func (e exportProgress) Retrying(op, reason string, wait time.Duration) {
	if rp, ok := e.Progress.(extract.RetryProgress); ok {
		rp.Retrying(e.prefix+op, reason, wait)
	}
}

// exportContext is the context of export i of n: for several, their files
// reach the run's Progress apart (exportProgress).
func (p Pipeline) exportContext(ctx context.Context, i, n int) context.Context {
	if p.Progress == nil || n < 2 {
		return ctx
	}
	return extract.WithProgress(ctx, exportProgress{Progress: p.Progress, prefix: fmt.Sprintf("[%d/%d] ", i+1, n)})
}
