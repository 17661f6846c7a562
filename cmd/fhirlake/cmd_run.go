package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/fhirtypes"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/internal/suggest"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

// runFlags are run's own flags, besides the source and roster flags.
func runFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML config `FILE` with the warehouse, lake and sources (see examples/fhirlake.yaml)", EnvVars: []string{"FHIRLAKE_CONFIG"}},
		&cli.StringFlag{Name: "source", Usage: "source `NAME`: with --config, the one source to run (default: all, in order); without, the name recorded with the run (default \"default\")", EnvVars: []string{"FHIRLAKE_SOURCE"}},
		&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE` (created if missing; required here or in the config)", EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
		&cli.StringFlag{Name: "lake", Usage: "the lake mirroring the warehouse tables: a `LOCATION` (a folder or file:///path; s3://bucket/prefix with --lake-format iceberg); empty skips it", EnvVars: []string{"FHIRLAKE_LAKE"}},
		&cli.StringFlag{Name: "work-dir", Usage: "where export jobs wait for the load (default: fhirlake-work beside the warehouse)", EnvVars: []string{"FHIRLAKE_WORK_DIR"}},
		&cli.IntFlag{Name: "max-patients-per-export", Value: pipeline.DefaultMaxPatients, Usage: "with --roster, most patients one patient-filtered export asks for; more are spread over several exports, loaded in one commit, each with a watermark of its own (`N`)", EnvVars: []string{"FHIRLAKE_MAX_PATIENTS_PER_EXPORT"}},
		&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files to load as more tables", EnvVars: []string{"FHIRLAKE_VIEWS"}},
		&cli.IntFlag{Name: "batch-rows", Value: 8192, Usage: "rows per Arrow batch (bounds memory)", EnvVars: []string{"FHIRLAKE_BATCH_ROWS"}},
		&cli.BoolFlag{Name: "full", Usage: "ignore the stored watermark and export everything (no automatic _since)", EnvVars: []string{"FHIRLAKE_FULL"}},
		&cli.BoolFlag{Name: "keep-server-job", Usage: "do not DELETE the export job on the server after a successful load", EnvVars: []string{"FHIRLAKE_KEEP_SERVER_JOB"}},
		&cli.Int64Flag{Name: "max-rejects", Value: -1, Usage: "fail the run (exit 6, nothing committed) when more lines or values than this are rejected; -1: no limit", EnvVars: []string{"FHIRLAKE_MAX_REJECTS"}},
		&cli.StringFlag{Name: "summary", Usage: "write the JSON run summary to `FILE` (also when the run fails)", EnvVars: []string{"FHIRLAKE_SUMMARY"}},
	}, append(personFlags(), append(lakeFlags(), leaseFlag(), lockWaitFlag(), noCompactFlag())...)...)
}

// personFlags say which identifiers link patients of different sources
// into one person (the person table); run and load take them.
func personFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "person-identifier-system", Usage: "identifier `SYSTEM` whose value names one person at every source (repeatable; the Medicare MBI always counts)", EnvVars: []string{"FHIRLAKE_PERSON_IDENTIFIER_SYSTEMS"}},
		&cli.StringFlag{Name: "roster-member-system", Usage: "identifier `SYSTEM` of your own member numbers, the roster's coverage_to_link: a Payer-to-Payer match links the old payer's Patient to your Patient with that number", EnvVars: []string{"FHIRLAKE_ROSTER_MEMBER_SYSTEM"}},
	}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "export, transform and load in one go",
		UsageText: "fhirlake run --fhir-url URL [source flags] --warehouse FILE.duckdb [--lake DIR | --lake s3://BUCKET/PREFIX --lake-format iceberg]\n" +
			"fhirlake run --config fhirlake.yaml [--source NAME]\n\n" +
			"Settings come from flags, FHIRLAKE_* variables, the config file and defaults, in that order of precedence.",
		Flags:        append(append(sourceFlags(), rosterFlags()...), runFlags()...),
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) (err error) {
			rep, err := newReport(c)
			if err != nil {
				return err
			}
			defer func() { err = rep.finish(c, err) }()
			log, err := logger(c)
			if err != nil {
				return err
			}
			views, err := loadViews(c.String("views"), log)
			if err != nil {
				return err
			}
			cfg, srcs, err := selectSources(c, log)
			if err != nil {
				return err
			}
			top := resolveTop(c, cfg)
			if top.warehouse == "" {
				return usagef("no warehouse: pass --warehouse or set warehouse in the config")
			}
			if err := os.MkdirAll(filepath.Dir(top.warehouse), 0o755); err != nil {
				return fmt.Errorf("warehouse directory: %w", err)
			}
			for _, src := range srcs {
				name := src.name
				if name == "" {
					name = c.String("source")
				}
				if name == "" {
					name = "default"
				}
				p := pipeline.Pipeline{
					Source: name, Client: src.client, Request: src.request,
					WorkDir: top.workDir, Views: views, SQL: fsql.FS,
					Warehouse: top.warehouse, Lake: top.lake,
					BatchRows: c.Int("batch-rows"), KeepServerJob: c.Bool("keep-server-job"), Full: c.Bool("full"),
					Log: log, Person: top.person, LakeFormat: top.lakeFormat, LakeOptions: top.lakeOpts, LeaseTTL: c.Duration("lease-ttl"), LockWait: lockWait(c), NoCompact: c.Bool("no-compact"),
					MaxPatients: c.Int("max-patients-per-export"),
				}
				if err := resolveCatalog(&p.LakeOptions); err != nil {
					return err
				}
				if top.maxRejects >= 0 {
					p.MaxRejects = &top.maxRejects
				}
				if err := runSource(c, p, src, rep); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// runSource runs one source: its export, or with a roster the exports its
// matches need (one per matched group, or buckets of patients), loaded in
// one commit.
func runSource(c *cli.Context, p pipeline.Pipeline, src sourceOptions, rep *report) error {
	if src.roster != "" {
		runs, err := matchForRun(c, src)
		if err != nil {
			return err
		}
		p.Exports = runs
	}
	ctx, stop := attachProgress(c.Context, c, &p)
	sum, err := p.Run(ctx)
	stop()
	rep.add(sum, err)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "run %s (%s %s) committed: %s\n", sum.RunID, sum.Source, sum.Scope, outcome(sum))
	return nil
}

// matchForRun matches the roster and returns the exports to run.
func matchForRun(c *cli.Context, src sourceOptions) ([]pipeline.RosterRun, error) {
	members, err := readRoster(src.roster)
	if err != nil {
		return nil, err
	}
	endpoint := c.String("member-match-url")
	if endpoint == "" {
		endpoint = extract.MemberMatchURL(src.client.BaseURL)
	}
	matches, err := pipeline.MatchMembers(c.Context, src.client, endpoint, c.String("requester"), members, c.Int("max-patients-per-export"))
	if err != nil {
		return nil, err
	}
	reqs := pipeline.RosterRequests(matches, src.request, c.Int("max-patients-per-export"))
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%d roster members, none matched: %w", len(matches), extract.ErrNoMatches)
	}
	return reqs, nil
}

// loadViews compiles the built-in views plus those in dir, if any
// (userViews).
func loadViews(dir string, log *slog.Logger) ([]*transform.View, error) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		return nil, fmt.Errorf("built-in views: %w", err)
	}
	if dir == "" {
		return views, nil
	}
	extra, err := userViews(dir, views, log)
	if err != nil {
		return nil, err
	}
	return append(views, extra...), nil
}

// userViews compiles the views in dir and checks them against the
// built-in ones (checkUserViews); the warnings of their paths go to log,
// when there is one.
func userViews(dir string, builtin []*transform.View, log *slog.Logger) ([]*transform.View, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, usagef("--views %s is not a folder of ViewDefinition files", dir)
	}
	extra, err := transform.LoadViews(os.DirFS(dir))
	if err != nil {
		return nil, usagef("--views %s: %v", dir, err)
	}
	warnings, err := checkUserViews(builtin, extra)
	if err != nil {
		return nil, usagef("--views %s: %v", dir, err)
	}
	for _, w := range warnings {
		if log == nil {
			break
		}
		log.Warn("view path not checked", "problem", w)
	}
	return extra, nil
}

// checkUserViews finds what would make a user's views fail or say
// nothing only after an export: a resource that is no FHIR resource type,
// no key column, a name taken by a built-in view or by another of theirs,
// a path that names an element the resource type does not have. It
// returns the paths it could not check to the end (through a choice
// element or an extension's value) as warnings.
func checkUserViews(builtin, extra []*transform.View) (warnings []string, err error) {
	taken := map[string]string{}
	for _, v := range builtin {
		taken[v.Name()] = "the built-in view " + v.Name()
	}
	for _, v := range extra {
		if !fhirtypes.Is(v.Resource()) {
			msg := fmt.Sprintf("%s: view %q: resource %q is not a FHIR resource type", v.File(), v.Name(), v.Resource())
			if s := suggest.Closest(v.Resource(), fhirtypes.All()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, errors.New(msg)
		}
		if v.KeyColumn() == "" {
			return nil, fmt.Errorf("%s: view %q has no key column: add a column named id, or one whose path is getResourceKey() (the resource each row comes from)", v.File(), v.Name())
		}
		if other, ok := taken[v.Name()]; ok {
			return nil, fmt.Errorf("%s: view %q: %s has that name already; rename the view", v.File(), v.Name(), other)
		}
		taken[v.Name()] = v.File()
		var errs []string
		for _, p := range v.CheckPaths() {
			if p.Error {
				errs = append(errs, p.Message)
			} else {
				warnings = append(warnings, p.Message)
			}
		}
		if len(errs) > 0 {
			return nil, errors.New(strings.Join(errs, "\n"))
		}
	}
	return warnings, nil
}

// outcome is what a committed run did, for its result line: "160
// resources, 1295 rows in 15 tables", with the deleted resources, the
// rejects and the resources already stored unchanged when there are any.
// The rows of each table are in the --summary file and the commit's log
// line, so that the line stays short (within 100 columns) whatever the
// views.
func outcome(sum *pipeline.Summary) string {
	var rows int64
	for _, n := range sum.Rows {
		rows += n
	}
	s := fmt.Sprintf("%d resources", sum.Resources)
	if sum.Deleted > 0 {
		s += fmt.Sprintf(", %d deleted", sum.Deleted)
	}
	s += fmt.Sprintf(", %d rows in %d tables", rows, len(sum.Rows))
	if sum.Rejects > 0 {
		s += fmt.Sprintf(", %d rejects", sum.Rejects)
	}
	if sum.Unchanged > 0 {
		s += fmt.Sprintf(", %d unchanged", sum.Unchanged)
	}
	return s
}
