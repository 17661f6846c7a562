package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
)

type exportOptions struct {
	source sourceOptions
	out    string
	cancel bool
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "run a Bulk Data export and download its NDJSON files and manifest into a directory",
		UsageText: "fhirlake export --fhir-url URL [--group ID] [--types T1,T2] [--since RFC3339] --token-url URL --client-id ID --client-secret-file FILE --out DIR",
		Flags: append(sourceFlags(),
			&cli.StringFlag{Name: "out", Usage: "directory for the NDJSON files, manifest.json and the job state (job.json); rerunning with the same flags resumes the job", Required: true, EnvVars: []string{"FHIRLAKE_OUT"}},
			&cli.BoolFlag{Name: "cancel", Usage: "cancel the job recorded in --out (DELETE on the server) and remove what it wrote there (job.json, its downloads, its manifest.json); nothing else in --out is touched"},
		),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			src, err := parseSource(c, log)
			if err != nil {
				return err
			}
			return runExport(c.Context, c, exportOptions{source: src, out: c.String("out"), cancel: c.Bool("cancel")})
		},
	}
}

func runExport(ctx context.Context, c *cli.Context, o exportOptions) error {
	if o.cancel {
		found, err := o.source.client.CancelJob(ctx, o.out)
		if err != nil {
			return err
		}
		if !found {
			return usagef("no export job recorded in %s", o.out)
		}
		fmt.Fprintf(c.App.Writer, "export job in %s cancelled\n", o.out)
		return nil
	}
	ctx, stop := attachProgress(ctx, c, nil)
	res, err := o.source.client.Export(ctx, o.source.request, o.out)
	stop()
	if errors.Is(err, extract.ErrJobMismatch) {
		return usageError{err.Error()}
	}
	if err != nil {
		return err
	}
	var lines int64
	for _, f := range res.Files {
		lines += f.Lines
	}
	fmt.Fprintf(c.App.Writer, "exported %d files, %d resources (%s) to %s; transactionTime %s\n",
		len(res.Files), lines, describeRequest(o.source.request), o.out, res.Manifest.RawTransactionTime)
	if e := res.Errors; e.Errors+e.Warnings > 0 {
		fmt.Fprintf(c.App.Writer, "the server reported %d errors and %d warnings about the export%s (error.*.ndjson)\n",
			e.Errors, e.Warnings, issueTypes(e))
	}
	return nil
}

// issueTypes says which resource types the server's issues name, and how
// many error files it no longer had.
func issueTypes(e extract.ErrorSummary) string {
	s := ""
	if len(e.Types) > 0 {
		s = ", about " + strings.Join(e.Types, ", ")
	}
	if e.MissingFiles > 0 {
		s += fmt.Sprintf("; %d error files were gone (404/410)", e.MissingFiles)
	}
	return s
}
