package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	fsql "github.com/fhirlake/fhirlake/sql"
)

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:      "load",
		Usage:     "transform and load NDJSON files already on disk (another client's export, a BCDA download, fixtures)",
		UsageText: "fhirlake load --in DIR --warehouse FILE.duckdb [--lake LOCATION [--lake-format iceberg]]",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "`DIR` of .ndjson / .ndjson.gz files, with manifest.json when there is one", Required: true},
			&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE` (created if missing)", Required: true, EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
			&cli.StringFlag{Name: "lake", Usage: "the lake mirroring the warehouse tables: a `LOCATION` (a folder or file:///path; s3://bucket/prefix with --lake-format iceberg); empty skips it", EnvVars: []string{"FHIRLAKE_LAKE"}},
			&cli.StringFlag{Name: "source", Value: "files", Usage: "source `NAME` recorded with the run", EnvVars: []string{"FHIRLAKE_SOURCE"}},
			&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files", EnvVars: []string{"FHIRLAKE_VIEWS"}},
			&cli.IntFlag{Name: "batch-rows", Value: 8192, Usage: "rows per Arrow batch (bounds memory)", EnvVars: []string{"FHIRLAKE_BATCH_ROWS"}},
			&cli.StringFlag{Name: "summary", Usage: "write the JSON summary to `FILE` (also when the load fails)", EnvVars: []string{"FHIRLAKE_SUMMARY"}},
			&cli.Int64Flag{Name: "max-rejects", Value: -1, Usage: "fail (exit 6, nothing committed) when more lines or values than this are rejected; -1: no limit", EnvVars: []string{"FHIRLAKE_MAX_REJECTS"}},
		}, append(personFlags(), append(lakeFlags(), leaseFlag(), lockWaitFlag(), noCompactFlag())...)...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			if st, err := os.Stat(c.String("in")); err != nil || !st.IsDir() {
				return usagef("--in %s is not a directory", c.String("in"))
			}
			views, err := loadViews(c.String("views"), log)
			if err != nil {
				return err
			}
			p := pipeline.Pipeline{
				Source:    c.String("source"),
				Views:     views,
				SQL:       fsql.FS,
				Warehouse: c.String("warehouse"),
				Lake:      c.String("lake"),
				BatchRows: c.Int("batch-rows"),
				Log:       log,
				LeaseTTL:  c.Duration("lease-ttl"),
				LockWait:  lockWait(c),
				NoCompact: c.Bool("no-compact"),
				Person:    load.PersonRule{IdentifierSystems: c.StringSlice("person-identifier-system"), RosterSystem: c.String("roster-member-system")},
			}
			top := resolveTop(c, nil)
			p.LakeFormat, p.LakeOptions = top.lakeFormat, top.lakeOpts
			if err := resolveCatalog(&p.LakeOptions); err != nil {
				return err
			}
			if n := c.Int64("max-rejects"); n >= 0 {
				p.MaxRejects = &n
			}
			return runLoad(c.Context, c, p, c.String("in"))
		},
	}
}

func runLoad(ctx context.Context, c *cli.Context, p pipeline.Pipeline, dir string) (err error) {
	rep, err := newReport(c)
	if err != nil {
		return err
	}
	defer func() { err = rep.finish(c, err) }()
	ctx, stop := attachProgress(ctx, c, &p)
	sum, err := p.LoadDir(ctx, dir)
	stop()
	rep.add(sum, err)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "load %s committed: %s\n", sum.RunID, outcome(sum))
	return nil
}
