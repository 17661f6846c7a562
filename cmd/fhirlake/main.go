// Command fhirlake pulls member data out of payer FHIR APIs with the HL7
// Bulk Data $export protocol and lands it in an analytics warehouse: typed
// Parquet files and a DuckDB database.
//
// This package only wires: flags, environment, logging and exit codes. The
// work happens in extract, transform, load and internal/pipeline.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/internal/private"
	"github.com/fhirlake/fhirlake/load"
	_ "github.com/fhirlake/fhirlake/load/duckdb"       // the warehouse driver
	_ "github.com/fhirlake/fhirlake/load/lake/hive"    // the local Parquet lake
	_ "github.com/fhirlake/fhirlake/load/lake/iceberg" // Apache Iceberg tables
)

// Exit codes. They are part of the contract with schedulers: keep them
// stable and keep exitCodesHelp in step.
const (
	exitOK        = 0
	exitFailure   = 1 // anything not classified below
	exitUsage     = 2 // bad flags, bad configuration
	exitAuth      = 3 // the server rejected our credentials or token
	exitExport    = 4 // the export failed or expired on the server
	exitTransient = 5 // network, 429, 5xx, wait budget spent: safe to retry
	exitRejected  = 6 // more lines or values rejected than --max-rejects allows
	exitBusy      = 7 // another fhirlake process is writing to the warehouse, or runs the source
	exitCancelled = 130
)

const exitCodesHelp = `EXIT CODES:
   0    success
   1    failure not classified below, among them a server defect (a file that disagrees
        with its manifest the same way twice) and a local disk that cannot be written
   2    usage or configuration error (a host name that does not resolve, an output folder
        that cannot be written), a lake that mirrors another warehouse or whose catalog
        registers its tables elsewhere (moved or copied), a file over
        a download limit, a _typeFilter the server refused and fhirlake cannot apply
        itself, or a run that needs more FHIRLAKE_WAREHOUSE_MEMORY (fix the command or
        the settings; do not retry)
   3    authentication or authorization failed, or a token URL that answers no token
        (check client id, secret, key, scopes, token URL)
   4    the export failed or expired on the server, or the server says it cannot succeed
        (too-costly, not-supported, ...) (rerun starts a new export)
   5    transient failure: network, 429, 5xx, --max-wait exceeded (safe to retry)
   6    data rejected over --max-rejects: nothing committed (inspect fhirlake_rejects; do not retry)
   7    busy: another fhirlake process or a DuckDB client holds the warehouse, or another
        worker holds the source's lease in a shared Iceberg lake (retry later)
   130  interrupted (SIGINT/SIGTERM)`

func main() {
	if os.Getenv("GOGC") == "" {
		// Transform allocates short-lived values at a high rate and its
		// live heap is small and bounded (batches); collecting less often
		// buys about 15% throughput for a few tens of MiB.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	st := &appState{format: "text", helpAsked: true}
	v, _ := buildVersion()
	return &cli.App{
		Name:     "fhirlake",
		Version:  v,
		Metadata: map[string]any{"state": st},
		Action:   unknownCommand,
		Usage:    "Bulk FHIR $export from payer APIs into Parquet and DuckDB",
		Description: "fhirlake runs the HL7 Bulk Data export lifecycle against a payer FHIR API, flattens the NDJSON\n" +
			"through SQL-on-FHIR v2 ViewDefinitions, and loads typed tables into DuckDB and a Parquet lake.",
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitCodesHelp + "\n",
		Writer:                &helpWriter{out: stdout, err: stderr, state: st},
		ErrWriter:             stderr,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "group-readable", Usage: "let the owner's group read the files fhirlake writes (warehouse, lake, work and job files: 0640 and 0750 instead of 0600 and 0700); they hold PHI", EnvVars: []string{"FHIRLAKE_GROUP_READABLE"}},
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error (warn: quiet on success; info adds each stage of a run)", EnvVars: []string{"FHIRLAKE_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "text, json or auto (logs go to stderr; auto is text); with json the final error is a JSON record too", EnvVars: []string{logFormatEnv}},
		},
		Commands: []*cli.Command{
			sandboxCommand(),
			exportCommand(),
			runCommand(),
			loadCommand(),
			demoCommand(),
			keysCommand(),
			memberMatchCommand(),
			viewsCommand(),
			configCommand(),
			statusCommand(),
			rebuildCommand(),
			lakeCommand(),
			warehouseCommand(),
		},
		// Every file the process makes holds PHI or leads to it: private
		// whatever umask the scheduler started us with.
		Before: func(c *cli.Context) error {
			st.helpAsked = helpAsked(c.Args().Slice())
			f, err := logFormat(c)
			if err != nil {
				return err
			}
			st.format = f
			if _, err := logLevel(c); err != nil {
				return err
			}
			restore := private.Restrict(c.Bool("group-readable"))
			c.App.After = func(*cli.Context) error { restore(); return nil }
			return nil
		},
		OnUsageError: onUsageError,
		// Errors are reported and mapped to exit codes by main, not by cli.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitCode maps an error to the documented exit codes, in one place.
func exitCode(ctx context.Context, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitCancelled
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, extract.ErrUnauthorized):
		return exitAuth
	case errors.Is(err, extract.ErrUnsupportedFilter):
		// The server refused _typeFilter and fhirlake cannot apply this
		// one itself: change the filter.
		return exitUsage
	case errors.Is(err, extract.ErrExportFailed), errors.Is(err, extract.ErrExportExpired):
		return exitExport
	case errors.Is(err, extract.ErrUnknownHost):
		return exitUsage
	case errors.Is(err, extract.ErrTooLarge):
		// A file over --max-file-size or --max-decompression-ratio fails
		// the same way until the setting is raised: a configuration
		// matter, not a retry (5) nor a new export (4).
		return exitUsage
	case errors.Is(err, extract.ErrTransient):
		return exitTransient
	case errors.Is(err, pipeline.ErrTooManyRejects):
		return exitRejected
	case errors.Is(err, lockfile.ErrBusy), errors.Is(err, load.ErrInUse), errors.Is(err, load.ErrLeased), errors.Is(err, load.ErrLeaseLost):
		return exitBusy
	case errors.Is(err, load.ErrLakeMismatch), errors.Is(err, load.ErrLakeMoved), errors.Is(err, load.ErrNewerWarehouse), errors.Is(err, load.ErrBadSource), errors.Is(err, pipeline.ErrNotWritable),
		errors.Is(err, load.ErrOutOfMemory):
		return exitUsage
	case strings.HasPrefix(err.Error(), "flag provided but not defined"), strings.HasPrefix(err.Error(), "Required flag"):
		return exitUsage
	default:
		return exitFailure
	}
}

// logLevel is --log-level (or FHIRLAKE_LOG_LEVEL; empty is the default,
// warn).
func logLevel(c *cli.Context) (slog.Level, error) {
	var level slog.Level
	name := cmp.Or(c.String("log-level"), "warn")
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return 0, usagef("--log-level %q: want debug, info, warn or error", name)
	}
	return level, nil
}

// logger builds the logger from the global flags: readable text, or JSON
// with --log-format json (see logFormat for auto). Logs go to stderr so
// that stdout carries only results; while progress bars run
// (attachProgress) the lines are printed above them.
func logger(c *cli.Context) (*slog.Logger, error) {
	level, err := logLevel(c)
	if err != nil {
		return nil, err
	}
	format, err := logFormat(c)
	if err != nil {
		return nil, err
	}
	w := logOutput(c)
	handler := func(level slog.Leveler) slog.Handler {
		opts := &slog.HandlerOptions{Level: level}
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	// Libraries (iceberg-go) log to the default logger: their errors come
	// out in our format, their chatter not at all.
	slog.SetDefault(slog.New(handler(max(level, slog.LevelError))))
	return slog.New(handler(level)), nil
}
