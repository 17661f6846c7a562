package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/suggest"
)

// What the command line does around urfave/cli: global flags anywhere,
// "did you mean" for mistyped commands and flags, help that goes to
// stderr unless asked for, --version, and the last error in the log's
// format.

// version is the release, and commit the commit fhirlake was built from,
// set at build time (make build sets commit) with
// -ldflags "-X main.version=v1.2.3 -X main.commit=..."; otherwise they come
// from the build information when the go command recorded them.
var version, commit = "", ""

// runMain runs the command line args (args[0] is the program) and returns
// the exit code, having printed the error, if any, to stderr: one line
// of text, or a JSON record when the logs are JSON.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, hoistGlobalFlags(app, args))
	// Classify before the caller cancels ctx: a cancelled ctx means
	// "interrupted" to exitCode.
	code := exitCode(ctx, err)
	if err != nil {
		reportError(stderr, stateOf(app).format, err, code)
	}
	return code
}

// appState is what one run of the app learns while it parses its flags.
type appState struct {
	format string // the log format, once the flags are read
	// helpAsked: the user asked for help (-h, --help, the help command, or
	// no command): it goes to stdout. Help shown because of a mistake
	// goes to stderr.
	helpAsked bool
}

func stateOf(app *cli.App) *appState {
	if s, ok := app.Metadata["state"].(*appState); ok {
		return s
	}
	return &appState{}
}

// reportError prints err as main's last line: "fhirlake: ..." in text, or
// an ERROR record with the exit code and the failed operation in JSON.
func reportError(w io.Writer, format string, err error, code int) {
	if format != "json" {
		fmt.Fprintln(w, "fhirlake: "+err.Error())
		return
	}
	attrs := []any{"exit_code", code, "error", err.Error()}
	if op := operation(err); op != "" {
		attrs = append(attrs, "op", op)
	}
	slog.New(slog.NewJSONHandler(w, nil)).Error("fhirlake failed", attrs...)
}

// operation is what failed: the first step the error chain names ("kick-off"
// of "kick-off: GET ...: transient failure"), or "" when it names none.
func operation(err error) string {
	op, _, ok := strings.Cut(err.Error(), ": ")
	if !ok || len(op) > 60 || strings.ContainsAny(op, "\"'/") {
		return ""
	}
	return op
}

// hoistGlobalFlags moves the app's own flags (--log-format, --log-level,
// --group-readable) that follow the command to before it, where
// urfave/cli reads them: `fhirlake status --log-format json` works as
// `fhirlake --log-format json status`. A flag the command defines itself
// stays where it is; nothing after "--" moves.
func hoistGlobalFlags(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range app.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		name, inline := flagName(args[i])
		if takesValue[name] && !inline {
			i++
		}
		i++
	}
	if i >= len(args) {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	own := map[string]bool{}
	var walk func(*cli.Command)
	walk = func(c *cli.Command) {
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				own[n] = true
			}
		}
		for _, s := range c.Subcommands {
			walk(s)
		}
	}
	walk(cmd)
	var moved, rest []string
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			rest = append(rest, args[j:]...)
			break
		}
		name, inline := flagName(a)
		if takes, global := takesValue[name]; global && !own[name] {
			moved = append(moved, a)
			if takes && !inline && j+1 < len(args) {
				moved = append(moved, args[j+1])
				j++
			}
			continue
		}
		rest = append(rest, a)
	}
	out := slices.Clone(args[:i])
	return append(append(out, moved...), rest...)
}

// flagName is the name of the flag arg spells ("" when it is not a flag),
// and whether its value is inline (--name=value).
func flagName(arg string) (name string, inline bool) {
	if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
		return "", false
	}
	name = strings.TrimLeft(arg, "-")
	name, _, inline = strings.Cut(name, "=")
	return name, inline
}

var (
	unknownFlag  = regexp.MustCompile(`^flag provided but not defined: -+(\S+)$`)
	invalidValue = regexp.MustCompile(`^invalid value "(.*)" for flag -+(\S+): `)
)

// onUsageError turns urfave/cli's flag errors into usage errors that say
// what to type: the closest flag for an unknown one, and the expected
// form of a duration, number or switch.
func onUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	var flags []cli.Flag
	if c.Command != nil && c.Command.Name != "" {
		flags = c.Command.Flags
	} else {
		flags = c.App.Flags
	}
	if m := unknownFlag.FindStringSubmatch(msg); m != nil {
		out := fmt.Sprintf("unknown flag --%s", m[1])
		var names []string
		for _, f := range append(slices.Clone(flags), c.App.Flags...) {
			names = append(names, f.Names()...)
		}
		if s := suggest.Closest(m[1], names); s != "" {
			out += fmt.Sprintf("; did you mean --%s?", s)
		}
		return usageError{out + helpHint(c)}
	}
	if m := invalidValue.FindStringSubmatch(msg); m != nil {
		for _, f := range flags {
			if !slices.Contains(f.Names(), m[2]) {
				continue
			}
			switch f.(type) {
			case *cli.DurationFlag:
				return usagef("--%s %q: want a duration such as 90s, 5m or 1h30m", m[2], m[1])
			case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
				return usagef("--%s %q: want a whole number", m[2], m[1])
			case *cli.Float64Flag:
				return usagef("--%s %q: want a number", m[2], m[1])
			case *cli.BoolFlag:
				return usagef("--%s=%q: want true or false", m[2], m[1])
			}
		}
	}
	return usageError{msg}
}

// helpHint points at the help of the command c runs; before any command
// (a flag given ahead of it), c's command is the app itself.
func helpHint(c *cli.Context) string {
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		return fmt.Sprintf(" (see fhirlake %s --help)", c.Command.FullName())
	}
	return " (see fhirlake --help)"
}

// unknownCommand is the app's action: with no command it shows the help;
// anything else is a mistyped command.
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowAppHelp(c)
	}
	name := c.Args().First()
	msg := fmt.Sprintf("unknown command %q", name)
	var names []string
	for _, cmd := range c.App.VisibleCommands() {
		names = append(names, cmd.Names()...)
	}
	if s := suggest.Closest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return usageError{msg + " (see fhirlake --help)"}
}

// helpWriter is the app's stdout: results, and the help a user asked
// for. Help printed because of a mistake goes to stderr instead, so that
// a script's stdout holds no usage text.
type helpWriter struct {
	out, err io.Writer
	state    *appState
}

func (h *helpWriter) Write(p []byte) (int, error) { return h.out.Write(p) }

// printHelp is cli.HelpPrinter for every app: help written to a
// helpWriter goes to its stderr unless the user asked for it.
func printHelp(w io.Writer, templ string, data any) {
	if h, ok := w.(*helpWriter); ok && !h.state.helpAsked {
		w = h.err
	}
	defaultHelpPrinter(w, templ, data)
}

var defaultHelpPrinter = cli.HelpPrinter

func init() {
	cli.HelpPrinter = printHelp
	cli.VersionPrinter = printVersion
}

// helpAsked reports whether args (after the program and the global
// flags) ask for help: -h, --help, the help command, or nothing at all.
func helpAsked(args []string) bool {
	if len(args) == 0 {
		return true
	}
	if args[0] == "help" || args[0] == "h" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// printVersion prints fhirlake's version, the commit it was built from
// and the DuckDB library it embeds.
func printVersion(c *cli.Context) {
	v, rev := buildVersion()
	fmt.Fprintf(c.App.Writer, "fhirlake %s (commit %s), DuckDB %s\n", v, rev, duckdbVersion())
}

// buildVersion is the release and the commit from the build information.
func buildVersion() (v, rev string) {
	v, rev = version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		dirty := false
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && rev == "":
				rev = s.Value[:min(12, len(s.Value))]
			case s.Key == "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && commit == "" && rev != "" {
			rev += ", modified"
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown"
	}
	return v, rev
}

// duckdbVersion asks the embedded DuckDB its version (an in-memory
// database: nothing is opened on disk).
func duckdbVersion() string {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return "unknown"
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v string
	if err := db.QueryRowContext(ctx, "SELECT library_version FROM pragma_version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}
