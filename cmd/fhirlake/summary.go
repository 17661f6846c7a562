package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/internal/private"
)

// report collects the summaries of a command's runs for --summary.
//
// The file is one JSON object: status ("succeeded" or "failed"),
// exit_code, error (the message of a failure, which never holds resource
// content or secrets) and runs, one pipeline summary per run, each with its
// own status.
type report struct {
	Status   string       `json:"status"`
	ExitCode int          `json:"exit_code"`
	Error    string       `json:"error,omitempty"`
	Runs     []runSummary `json:"runs"`
}

// runSummary is one run of the report: the pipeline's summary, whose
// status is fhirlake_runs.status ("committed", "rejected"), or "failed"
// when the run recorded nothing.
type runSummary struct {
	*pipeline.Summary
}

func (r *report) add(sum *pipeline.Summary, err error) {
	if sum == nil {
		return
	}
	if sum.Status == "" {
		sum.Status = pipeline.StatusCommitted
		if err != nil {
			sum.Status = pipeline.StatusFailed
		}
	}
	r.Runs = append(r.Runs, runSummary{Summary: sum})
}

// newReport starts the report of a command with --summary, whose folder
// (made if missing) must be writable: found before the command does
// anything, not when it ends.
func newReport(c *cli.Context) (*report, error) {
	if path := c.String("summary"); path != "" {
		if err := private.CheckWritable(filepath.Dir(path)); err != nil {
			return nil, usagef("--summary %s: %v", path, err)
		}
	}
	return &report{}, nil
}

// finish writes the summary file, when asked for, and passes err on.
func (r *report) finish(c *cli.Context, err error) error {
	path := c.String("summary")
	if path == "" {
		return err
	}
	r.Status, r.ExitCode = "succeeded", exitOK
	if err != nil {
		r.Status, r.ExitCode, r.Error = "failed", exitCode(context.Background(), err), err.Error()
		if c.Context.Err() != nil {
			r.ExitCode = exitCancelled
		}
	}
	if r.Runs == nil {
		r.Runs = []runSummary{}
	}
	b, merr := json.MarshalIndent(r, "", "  ")
	if merr == nil {
		merr = os.MkdirAll(filepath.Dir(path), private.DirMode())
	}
	if merr == nil {
		merr = atomicfile.WriteFile(path, append(b, '\n'))
	}
	if merr != nil && err == nil {
		return merr
	}
	return err
}
