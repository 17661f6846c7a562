package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/config"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with fhirlake configuration files",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a config file without contacting anything; list every problem with file:line and key",
			UsageText: "fhirlake config check --config fhirlake.yaml [--no-resolve]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "config", Usage: "YAML config `FILE`", Required: true, EnvVars: []string{"FHIRLAKE_CONFIG"}},
				&cli.BoolFlag{Name: "no-resolve", Usage: "check secret references and the roster by their form only, not that they exist here (CI of a deployment repository)", EnvVars: []string{"FHIRLAKE_NO_RESOLVE"}},
			},
			OnUsageError: onUsageError,
			Action: func(c *cli.Context) error {
				return runConfigCheck(c.Context, c, c.String("config"), config.Options{
					NoResolve:        c.Bool("no-resolve"),
					RequireWarehouse: os.Getenv("FHIRLAKE_WAREHOUSE") == "",
				})
			},
		}},
	}
}

func runConfigCheck(_ context.Context, c *cli.Context, path string, opts config.Options) error {
	f, err := config.LoadWith(path, opts)
	if err != nil {
		return configError(err)
	}
	for _, s := range f.Sources {
		fmt.Fprintf(c.App.Writer, "source %s (%s): %s\n", s.Name, s.Kind, s.FHIRURL)
	}
	fmt.Fprintf(c.App.Writer, "%s: ok, %d source(s)\n", path, len(f.Sources))
	return nil
}

// configError makes config problems a usage error (exit 2), listing them.
func configError(err error) error {
	var ps config.Problems
	if errors.As(err, &ps) {
		return usageError{ps.Error()}
	}
	return err
}

// top is the settings outside any source.
type top struct {
	warehouse, lake, workDir string
	maxRejects               int64
	person                   load.PersonRule
	lakeFormat               string
	lakeOpts                 load.LakeOptions
}

// resolveTop merges the global settings: flag > env > file > default.
// topOf resolves the settings of a command whose --config file, when
// given, only names the warehouse and the lake (sync, compact, expire).
func topOf(c *cli.Context) (top, error) {
	var f *config.File
	if path := c.String("config"); path != "" {
		var err error
		if f, err = config.Load(path); err != nil {
			return top{}, configError(err)
		}
	}
	return resolveTop(c, f), nil
}

func resolveTop(c *cli.Context, f *config.File) top {
	if f == nil {
		f = &config.File{}
	}
	pick := func(flag, file string) string {
		if c.IsSet(flag) || file == "" {
			return c.String(flag)
		}
		return file
	}
	t := top{warehouse: pick("warehouse", f.Warehouse), lake: pick("lake", f.Lake), workDir: pick("work-dir", f.WorkDir), maxRejects: -1}
	t.person = load.PersonRule{IdentifierSystems: f.Person.IdentifierSystems, RosterSystem: f.Person.RosterMemberSystem}
	if c.IsSet("person-identifier-system") {
		t.person.IdentifierSystems = c.StringSlice("person-identifier-system")
	}
	if c.IsSet("roster-member-system") {
		t.person.RosterSystem = c.String("roster-member-system")
	}
	if c.IsSet("max-rejects") || f.MaxRejects == nil {
		t.maxRejects = c.Int64("max-rejects")
	} else {
		t.maxRejects = *f.MaxRejects
	}
	t.lakeFormat = pick("lake-format", f.LakeFormat)
	t.lakeOpts = load.LakeOptions{
		Catalog:     pick("catalog", f.Catalog),
		Namespace:   pick("namespace", f.Namespace),
		S3Endpoint:  pick("s3-endpoint", f.S3Endpoint),
		S3PathStyle: c.Bool("s3-path-style") || !c.IsSet("s3-path-style") && f.S3PathStyle,
	}
	return t
}

// lakeFlags choose and configure the lake target; run, load and lake take
// them.
func lakeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "lake-format", Value: "parquet", Usage: "the lake's `FORMAT`: parquet (Hive-style folders) or iceberg (Apache Iceberg tables, also on s3://)", EnvVars: []string{"FHIRLAKE_LAKE_FORMAT"}},
		&cli.StringFlag{Name: "catalog", Usage: "Iceberg SQL catalog: sqlite:`PATH` (default: catalog.db beside the warehouse) or a postgres:// URL; env:NAME or file:PATH to keep a password out of the command line", EnvVars: []string{"FHIRLAKE_CATALOG"}},
		&cli.StringFlag{Name: "namespace", Usage: "Iceberg `NAMESPACE` of the tables (default fhirlake)", EnvVars: []string{"FHIRLAKE_NAMESPACE"}},
		&cli.StringFlag{Name: "s3-endpoint", Usage: "S3 endpoint `URL` for a gateway or another provider (default: AWS_ENDPOINT_URL_S3, else AWS)", EnvVars: []string{"FHIRLAKE_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3"}},
		&cli.BoolFlag{Name: "s3-path-style", Usage: "path-style S3 addressing (http://endpoint/bucket/key), which most gateways need", EnvVars: []string{"FHIRLAKE_S3_PATH_STYLE"}},
	}
}

// lockWaitFlag is how long a run waits for a reader to close the
// warehouse (run and load).
func lockWaitFlag() cli.Flag {
	return &cli.DurationFlag{Name: "lock-wait", Value: pipeline.DefaultLockWait, Usage: "how long to wait for another program (a DuckDB client) that has the warehouse open to close it, before exit 7 (a `DURATION`; 0s: do not wait)", EnvVars: []string{"FHIRLAKE_LOCK_WAIT"}}
}

// noCompactFlag leaves the warehouse's compaction to fhirlake warehouse
// compact (run and load).
func noCompactFlag() cli.Flag {
	return &cli.BoolFlag{Name: "no-compact", Usage: "do not compact the warehouse after the commit when replaced rows have piled up; leave it to fhirlake warehouse compact", EnvVars: []string{"FHIRLAKE_NO_COMPACT"}}
}

// lockWait is --lock-wait as Pipeline.LockWait (which reads 0 as the
// default).
func lockWait(c *cli.Context) time.Duration {
	if d := c.Duration("lock-wait"); d > 0 {
		return d
	}
	return -1
}

// leaseFlag is the lifetime of a source's lease in a shared Iceberg lake
// (run and load).
func leaseFlag() cli.Flag {
	return &cli.DurationFlag{Name: "lease-ttl", Value: pipeline.DefaultLeaseTTL, Usage: "with an Iceberg lake, how long a run's lease of its source outlives its last renewal: how long a worker that died keeps other workers from the source (a `DURATION` such as 2m)", EnvVars: []string{"FHIRLAKE_LEASE_TTL"}}
}

// resolveCatalog reads a catalog given as a reference (env:NAME or
// file:PATH), so that a password never sits in a flag or the file.
func resolveCatalog(opts *load.LakeOptions) error {
	if strings.HasPrefix(opts.Catalog, "env:") || strings.HasPrefix(opts.Catalog, "file:") {
		v, err := config.Resolve(opts.Catalog)
		if err != nil {
			return usageError{"--catalog: " + err.Error()}
		}
		opts.Catalog = v
	}
	return nil
}

// selectSources returns the sources a command runs: from the config file
// (all, or the one --source names) or, without one, from the flags.
func selectSources(c *cli.Context, log *slog.Logger) (*config.File, []sourceOptions, error) {
	path := c.String("config")
	if path == "" {
		src, err := parseSource(c, log)
		if err != nil {
			return nil, nil, err
		}
		return nil, []sourceOptions{src}, nil
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, nil, configError(err)
	}
	chosen := f.Sources
	if name := c.String("source"); name != "" {
		s, err := f.Source(name)
		if err != nil {
			return nil, nil, usageError{err.Error()}
		}
		chosen = []config.Source{*s}
	}
	var out []sourceOptions
	for i := range chosen {
		src, err := resolveSettings(c, &chosen[i]).source(log)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, src)
	}
	return f, out, nil
}
