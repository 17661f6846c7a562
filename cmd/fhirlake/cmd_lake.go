package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
)

func lakeCommand() *cli.Command {
	return &cli.Command{
		Name:  "lake",
		Usage: "maintain the lake",
		Subcommands: []*cli.Command{{
			Name:  "expire",
			Usage: "expire old snapshots of an Iceberg lake and delete the files only they reference",
			UsageText: "fhirlake lake expire --older-than 7d --lake s3://bucket/prefix --lake-format iceberg [--catalog ...] --warehouse FILE\n\n" +
				"Every table keeps its current snapshot; time travel reaches back --older-than afterwards.\n" +
				"Files of failed commits that no snapshot references are deleted too. It holds the\n" +
				"warehouse's lock, like a run: schedule it in the same pool.",
			Flags: append([]cli.Flag{
				&cli.StringFlag{Name: "older-than", Value: "7d", Usage: "expire snapshots older than `AGE` (7d, 36h, 90m)", EnvVars: []string{"FHIRLAKE_LAKE_EXPIRE_OLDER_THAN"}},
				&cli.StringFlag{Name: "config", Usage: "YAML config `FILE` naming the warehouse and the lake", EnvVars: []string{"FHIRLAKE_CONFIG"}},
				&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE` the lake mirrors", EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
				&cli.StringFlag{Name: "lake", Usage: "the lake's `LOCATION`: a folder, file:///path or s3://bucket/prefix", EnvVars: []string{"FHIRLAKE_LAKE"}},
			}, lakeFlags()...),
			OnUsageError: onUsageError,
			Action:       runLakeExpire,
		}},
	}
}

func runLakeExpire(c *cli.Context) error {
	age, err := parseAge(c.String("older-than"))
	if err != nil {
		return usagef("--older-than: %v", err)
	}
	top, err := topOf(c)
	if err != nil {
		return err
	}
	if top.lake == "" || top.warehouse == "" {
		return usagef("name the lake and its warehouse: --lake and --warehouse, or --config")
	}
	if top.lakeFormat != iceberg.Format {
		return usagef("only an Iceberg lake has snapshots to expire (--lake-format iceberg); a %s lake keeps no history", top.lakeFormat)
	}
	opts := top.lakeOpts
	if err := resolveCatalog(&opts); err != nil {
		return err
	}
	opts.Warehouse = top.warehouse
	lock, err := lockfile.Acquire(top.warehouse, "fhirlake lake expire")
	if err != nil {
		return err
	}
	defer lock.Release()
	lk, err := load.OpenLake(c.Context, iceberg.Format, top.lake, opts)
	if err != nil {
		return err
	}
	defer lk.Close()
	st, err := lk.(*iceberg.Lake).Expire(c.Context, age)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "expired %d snapshots older than %s in %d tables\n", st.Snapshots, c.String("older-than"), st.Tables)
	return nil
}

// parseAge reads an age as a Go duration or a number of days (7d).
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want an age such as 7d, 36h or 90m", s)
	}
	return d, nil
}
