package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"
)

type exportOptions struct {
	source sourceOptions
	out    string
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "run a Bulk Data export and download its NDJSON files and manifest into a directory",
		UsageText: "fhirlake export --fhir-url URL [--group ID] [--types T1,T2] [--since RFC3339] --token-url URL --client-id ID --client-secret-file FILE --out DIR",
		Flags: append(sourceFlags(),
			&cli.StringFlag{Name: "out", Usage: "directory for the NDJSON files and manifest.json", Required: true, EnvVars: []string{"FHIRLAKE_OUT"}},
		),
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} },
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			src, err := parseSource(c, log)
			if err != nil {
				return err
			}
			return runExport(c.Context, c, exportOptions{source: src, out: c.String("out")})
		},
	}
}

func runExport(ctx context.Context, c *cli.Context, o exportOptions) error {
	res, err := o.source.client.Export(ctx, o.source.request, o.out)
	if err != nil {
		return err
	}
	var lines int64
	for _, f := range res.Files {
		lines += f.Lines
	}
	fmt.Fprintf(c.App.Writer, "exported %d files, %d resources (%s) to %s; transactionTime %s\n",
		len(res.Files), lines, describeRequest(o.source.request), o.out, res.Manifest.RawTransactionTime)
	return nil
}
