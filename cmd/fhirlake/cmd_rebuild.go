package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	fsql "github.com/fhirlake/fhirlake/sql"
)

type rebuildOptions struct {
	lake       string
	warehouse  string
	from       duckdb.From
	views      string
	dryRun     bool
	relocate   bool
	lakeFormat string
	lakeOpts   load.LakeOptions
}

func rebuildCommand() *cli.Command {
	return &cli.Command{
		Name:  "rebuild",
		Usage: "recover the DuckDB warehouse from the lake, or the lake from the warehouse",
		UsageText: "fhirlake rebuild --lake LOCATION [--lake-format iceberg ...] --warehouse FILE [--from lake|warehouse] [--views DIR] [--relocate] [--dry-run]\n\n" +
			"--from lake (default) builds a new warehouse file beside FILE from the lake (tables, bookkeeping,\n" +
			"views; from an Iceberg lake, each table's current snapshot) and renames it over FILE.\n" +
			"--from warehouse writes the whole lake into a new folder beside DIR and swaps it in; an Iceberg\n" +
			"lake gets one snapshot per table that replaces its rows. Either way the old side stays\n" +
			"untouched until the new one is complete.\n" +
			"--relocate (with --from warehouse, Iceberg) is for a lake moved or copied with its catalog, whose\n" +
			"entries still name the old location: it drops those entries from the catalog (no file is deleted)\n" +
			"and writes the tables anew under LOCATION. Never use it with a catalog other lakes rely on.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "lake", Usage: "the lake: a Parquet lake `LOCATION` (a folder), or an Iceberg lake's (a folder, file:///path or s3://bucket/prefix) with --lake-format iceberg", Required: true, EnvVars: []string{"FHIRLAKE_LAKE"}},
			&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE`", Required: true, EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
			&cli.StringFlag{Name: "from", Value: string(duckdb.FromLake), Usage: "the side to restore from: lake or warehouse"},
			&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files (their tables' partitioning and coded columns)", EnvVars: []string{"FHIRLAKE_VIEWS"}},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan (tables, partitions, rows, what is replaced) and change nothing"},
			&cli.BoolFlag{Name: "relocate", Usage: "with --from warehouse and an Iceberg lake: re-register at LOCATION the tables the catalog places elsewhere (a moved or copied lake)"},
		}, lakeFlags()...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			from := duckdb.From(c.String("from"))
			if from != duckdb.FromLake && from != duckdb.FromWarehouse {
				return usagef("--from %q: want lake or warehouse", c.String("from"))
			}
			if c.Bool("relocate") && (from != duckdb.FromWarehouse || c.String("lake-format") != iceberg.Format) {
				return usagef("--relocate goes with --from warehouse and --lake-format iceberg")
			}
			return runRebuild(c.Context, c.App.Writer, rebuildOptions{
				lake:       c.String("lake"),
				warehouse:  c.String("warehouse"),
				from:       from,
				views:      c.String("views"),
				dryRun:     c.Bool("dry-run"),
				relocate:   c.Bool("relocate"),
				lakeFormat: c.String("lake-format"),
				lakeOpts: load.LakeOptions{Catalog: c.String("catalog"), Namespace: c.String("namespace"),
					S3Endpoint: c.String("s3-endpoint"), S3PathStyle: c.Bool("s3-path-style")},
			})
		},
	}
}

func runRebuild(ctx context.Context, out io.Writer, o rebuildOptions) error {
	opts := duckdb.RebuildOptions{Lake: o.lake, Warehouse: o.warehouse, From: o.from}
	var lk *iceberg.Lake // an Iceberg lake
	if o.lakeFormat == iceberg.Format {
		lo := o.lakeOpts
		if err := resolveCatalog(&lo); err != nil {
			return err
		}
		lo.Warehouse = o.warehouse
		var err error
		if lk, err = iceberg.Open(ctx, o.lake, lo); err != nil {
			return err
		}
		defer lk.Close()
		opts.Reader, opts.Target = lk, lk
	}
	// The views say how tables are partitioned in the lake (tables they
	// do not cover keep the partitioning recorded there) and which
	// columns the warehouse stores dictionary-encoded.
	views, err := loadViews(o.views, nil)
	if err != nil {
		return err
	}
	if opts.Tables, err = pipeline.Tables(views); err != nil {
		return err
	}
	// No run may write while the warehouse or the lake is replaced. (A
	// DuckDB client holding the file is caught by load.ErrInUse.)
	if !o.dryRun {
		lock, err := lockfile.Acquire(o.warehouse, "fhirlake rebuild")
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	plan, err := duckdb.PlanRebuild(ctx, opts)
	if err != nil {
		return err
	}
	if err := plan.Print(out); err != nil {
		return err
	}
	var relocate func() error
	if o.relocate {
		if relocate, err = relocation(ctx, out, lk); err != nil {
			return err
		}
	}
	if o.dryRun {
		fmt.Fprintln(out, "dry run: nothing changed")
		return nil
	}
	if relocate != nil {
		if err := relocate(); err != nil {
			return err
		}
	}
	if err := plan.Execute(ctx); err != nil {
		return err
	}
	if o.lakeFormat == iceberg.Format && o.from == duckdb.FromLake {
		// An Iceberg lake keeps the tables, not the views: make the
		// analytics views anew.
		w, err := duckdb.Open(ctx, o.warehouse)
		if err != nil {
			return err
		}
		errs := w.ApplySQL(ctx, fsql.FS)
		w.Close()
		for _, e := range errs {
			fmt.Fprintf(out, "view not created: %v\n", e)
		}
	}
	fmt.Fprintln(out, "rebuild done")
	return nil
}

// relocation prints what --relocate re-registers and returns the step
// that does it (nil when the catalog places every table under the lake).
func relocation(ctx context.Context, out io.Writer, lk *iceberg.Lake) (func() error, error) {
	tables, roots, err := lk.Elsewhere(ctx)
	if err != nil {
		return nil, err
	}
	if len(tables) == 0 {
		fmt.Fprintln(out, "relocates: nothing, the catalog registers every table under the lake")
		return nil, nil
	}
	fmt.Fprintf(out, "relocates: %d tables registered under %s (their catalog entries go; no file is deleted)\n", len(tables), strings.Join(roots, ", "))
	return func() error {
		_, err := lk.Relocate(ctx)
		return err
	}, nil
}
