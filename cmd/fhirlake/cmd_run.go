package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "export, transform and load in one go",
		UsageText: "fhirlake run --fhir-url URL [source flags] --warehouse FILE.duckdb [--lake DIR]",
		Flags: append(append(sourceFlags(), rosterFlags()...),
			&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE` (created if missing)", Required: true, EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
			&cli.StringFlag{Name: "lake", Usage: "Parquet lake `DIR` mirroring the warehouse tables; empty skips it", EnvVars: []string{"FHIRLAKE_LAKE"}},
			&cli.StringFlag{Name: "source", Value: "default", Usage: "source `NAME` recorded with each run", EnvVars: []string{"FHIRLAKE_SOURCE"}},
			&cli.StringFlag{Name: "work-dir", Usage: "where downloads wait for the load (default: fhirlake-work beside the warehouse)", EnvVars: []string{"FHIRLAKE_WORK_DIR"}},
			&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files to load as more tables", EnvVars: []string{"FHIRLAKE_VIEWS"}},
			&cli.IntFlag{Name: "batch-rows", Value: 8192, Usage: "rows per Arrow batch (bounds memory)", EnvVars: []string{"FHIRLAKE_BATCH_ROWS"}},
			&cli.BoolFlag{Name: "full", Usage: "ignore the stored watermark and export everything (no automatic _since)", EnvVars: []string{"FHIRLAKE_FULL"}},
			&cli.BoolFlag{Name: "keep-server-job", Usage: "do not DELETE the export job on the server after a successful load", EnvVars: []string{"FHIRLAKE_KEEP_SERVER_JOB"}},
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
			views, err := loadViews(c.String("views"))
			if err != nil {
				return err
			}
			p := pipeline.Pipeline{
				Source:        c.String("source"),
				Client:        src.client,
				Request:       src.request,
				WorkDir:       c.String("work-dir"),
				Views:         views,
				SQL:           fsql.FS,
				Warehouse:     c.String("warehouse"),
				Lake:          c.String("lake"),
				BatchRows:     c.Int("batch-rows"),
				KeepServerJob: c.Bool("keep-server-job"),
				Full:          c.Bool("full"),
				Log:           log,
			}
			reqs := []extract.Request{src.request}
			if c.String("roster") != "" {
				if reqs, err = matchForRun(c, src); err != nil {
					return err
				}
			}
			return runRun(c.Context, c, p, reqs)
		},
	}
}

// runRun runs the pipeline once per request: one, or one per matched group
// with --roster. Each run commits on its own.
func runRun(ctx context.Context, c *cli.Context, p pipeline.Pipeline, reqs []extract.Request) error {
	base := p.Request
	for _, r := range reqs {
		p.Request = r
		sum, err := p.Run(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "run %s (%s) committed: %d resources, %d rejects, rows %s\n",
			sum.RunID, sum.Scope, sum.Resources, sum.Rejects, formatRows(sum.Rows))
	}
	p.Request = base
	return nil
}

// matchForRun matches the roster and returns the exports to run.
func matchForRun(c *cli.Context, src sourceOptions) ([]extract.Request, error) {
	members, err := readRoster(c.String("roster"))
	if err != nil {
		return nil, err
	}
	matches, err := pipeline.MatchRoster(c.Context, src.client, memberMatchURL(c), c.String("requester"), members)
	if err != nil {
		return nil, err
	}
	reqs := pipeline.RosterRequests(matches, src.request)
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%d roster members, none matched: %w", len(matches), extract.ErrNoMatches)
	}
	return reqs, nil
}

// loadViews compiles the built-in views plus those in dir, if any.
func loadViews(dir string) ([]*transform.View, error) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		return nil, fmt.Errorf("built-in views: %w", err)
	}
	if dir == "" {
		return views, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, usagef("--views: %v", err)
	}
	extra, err := transform.LoadViews(os.DirFS(dir))
	if err != nil {
		return nil, usagef("--views %s: %v", dir, err)
	}
	return append(views, extra...), nil
}

func formatRows(rows map[string]int64) string {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, rows[k])
	}
	return strings.Join(parts, " ")
}
