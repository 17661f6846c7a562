package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	fsql "github.com/fhirlake/fhirlake/sql"
)

func warehouseCommand() *cli.Command {
	return &cli.Command{
		Name:  "warehouse",
		Usage: "keep a DuckDB file in step with a shared Iceberg lake, or compact one",
		Subcommands: []*cli.Command{{
			Name:  "sync",
			Usage: "copy into a DuckDB file the sources of an Iceberg lake that changed since the last sync",
			UsageText: "fhirlake warehouse sync --warehouse FILE --lake s3://bucket/prefix --lake-format iceberg --catalog postgres://... [--source NAME ...]\n\n" +
				"For analysts who want one file when many workers write the lake: every source whose runs in\n" +
				"FILE differ from the lake's is replaced by the lake's rows of it (data, bookkeeping, the\n" +
				"person crosswalk), in one transaction per source, under the source's lease (a source a run\n" +
				"holds is waited for up to --wait); sources already up to date are left alone. The person\n" +
				"crosswalk is then linked across every source of the file (each worker links only its own),\n" +
				"and the analytics views are created. FILE is created when missing; keep it apart from the\n" +
				"workers' warehouses.",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "YAML config `FILE` naming the lake", EnvVars: []string{"FHIRLAKE_CONFIG"}},
				&cli.StringFlag{Name: "warehouse", Usage: "the DuckDB `FILE` to refresh", EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
				&cli.StringFlag{Name: "lake", Usage: "the Iceberg lake's `LOCATION`: a folder, file:///path or s3://bucket/prefix", EnvVars: []string{"FHIRLAKE_LAKE"}},
				&cli.StringSliceFlag{Name: "source", Usage: "copy only this `NAME` (repeat for several; default: every source of the lake)"},
				&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files (the coded columns of their tables)", EnvVars: []string{"FHIRLAKE_VIEWS"}},
				&cli.DurationFlag{Name: "wait", Value: pipeline.DefaultLeaseTTL * 5, Usage: "how long to wait for a source a run holds (a `DURATION` such as 10m), then exit 7", EnvVars: []string{"FHIRLAKE_SYNC_WAIT"}},
			}, append(personFlags(), lakeFlags()...)...),
			OnUsageError: onUsageError,
			Action:       runWarehouseSync,
		}, {
			Name:  "compact",
			Usage: "reclaim the space of replaced rows now: rewrite the warehouse file when compaction is due, or always with --force",
			UsageText: "fhirlake warehouse compact --warehouse FILE [--force]\n\n" +
				"A run compacts the warehouse after its commit when replaced or deleted rows take a tenth of\n" +
				"some table, or free blocks a quarter of the file, unless run with --no-compact; this does it\n" +
				"in a maintenance task instead. Every table, view and constraint is copied into a new file\n" +
				"beside FILE, which then replaces it: the folder needs room for the copy. It holds the\n" +
				"warehouse's lock, like a run: schedule it in the same pool.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "YAML config `FILE` naming the warehouse", EnvVars: []string{"FHIRLAKE_CONFIG"}},
				&cli.StringFlag{Name: "warehouse", Usage: "the DuckDB `FILE` to compact", EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
				&cli.BoolFlag{Name: "force", Usage: "rewrite the file though compaction is not due"},
				lockWaitFlag(),
			},
			OnUsageError: onUsageError,
			Action:       runWarehouseCompact,
		}},
	}
}

func runWarehouseCompact(c *cli.Context) error {
	top, err := topOf(c)
	if err != nil {
		return err
	}
	if top.warehouse == "" {
		return usagef("name the warehouse: --warehouse, or --config")
	}
	if _, err := os.Stat(top.warehouse); err != nil {
		return usagef("no warehouse at %s", top.warehouse)
	}
	log, err := logger(c)
	if err != nil {
		return err
	}
	res, err := pipeline.Compact(c.Context, pipeline.CompactOptions{Warehouse: top.warehouse, Force: c.Bool("force"), LockWait: lockWait(c), Log: log})
	if err != nil {
		return err
	}
	if !res.Rewritten {
		fmt.Fprintf(c.App.Writer, "%s: nothing to compact (--force rewrites it anyway)\n", top.warehouse)
		return nil
	}
	var deleted int64
	for _, t := range res.Tables {
		deleted += t.Deleted
	}
	fmt.Fprintf(c.App.Writer, "compacted %s: %s to %s, %d replaced rows of %d tables reclaimed\n",
		top.warehouse, megabytes(res.Before), megabytes(res.After), deleted, len(res.Tables))
	return nil
}

// megabytes writes n bytes in MB, to a tenth.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func runWarehouseSync(c *cli.Context) error {
	top, err := topOf(c)
	if err != nil {
		return err
	}
	if top.lake == "" || top.warehouse == "" {
		return usagef("name the lake and the file to refresh: --lake and --warehouse, or --config")
	}
	if top.lakeFormat != iceberg.Format {
		return usagef("sync reads an Iceberg lake (--lake-format iceberg); from a %s lake, use rebuild --from lake", top.lakeFormat)
	}
	opts := top.lakeOpts
	if err := resolveCatalog(&opts); err != nil {
		return err
	}
	opts.Warehouse = top.warehouse
	for _, s := range c.StringSlice("source") {
		if err := load.CheckSource(s); err != nil {
			return err
		}
	}
	log, err := logger(c)
	if err != nil {
		return err
	}
	views, err := loadViews(c.String("views"), log)
	if err != nil {
		return err
	}
	tables, err := pipeline.Tables(views)
	if err != nil {
		return err
	}
	res, err := pipeline.Sync(c.Context, pipeline.SyncOptions{
		Warehouse: top.warehouse,
		Lake: func(ctx context.Context) (load.Lake, error) {
			return load.OpenLake(ctx, iceberg.Format, top.lake, opts)
		},
		Sources: c.StringSlice("source"),
		SQL:     fsql.FS,
		Tables:  tables,
		Wait:    c.Duration("wait"),
		Person:  top.person,
		Log:     log,
	})
	if err != nil {
		return err
	}
	restored := "none"
	if len(res.Restored) > 0 {
		restored = strings.Join(res.Restored, ", ")
	}
	fmt.Fprintf(c.App.Writer, "synced %s: %d sources copied (%s; %d rows), %d up to date\n",
		top.warehouse, len(res.Restored), restored, res.Rows, len(res.Current))
	if res.PersonConflicts > 0 {
		log.Warn("patients with conflicting identifiers are not linked to other sources' records; see fhirlake_person_conflicts", "patients", res.PersonConflicts)
	}
	return nil
}
