//go:build duckdb_arrow

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// TestCommandLineSurprises: what a new user types wrong, or types in
// another order, gets exit 2 and a message that says what to type, on
// stderr; what they ask for goes to stdout.
func TestCommandLineSurprises(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nowhere", "w.duckdb")
	notAFolder := filepath.Join(dir, "file")
	os.WriteFile(notAFolder, nil, 0o600)
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o700)
	wh := filepath.Join(dir, "w", "w.duckdb")
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		code       int
		stdout     string // a substring ("" for empty stdout)
		stderr     string // a substring
		jsonStderr bool   // every stderr line is a JSON record
	}{
		{name: "version", args: []string{"--version"}, code: exitOK, stdout: "DuckDB v1.5.6"},
		{name: "mistyped command", args: []string{"rnu"}, code: exitUsage, stderr: `unknown command "rnu"; did you mean "run"?`},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate" (see fhirlake --help)`},
		{name: "mistyped flag", args: []string{"run", "--fhir-ulr", "x"}, code: exitUsage, stderr: "unknown flag --fhir-ulr; did you mean --fhir-url? (see fhirlake run --help)"},
		{name: "command's flag before the command", args: []string{"--summary", "s.json", "load"}, code: exitUsage, stderr: "unknown flag --summary (see fhirlake --help)"},
		{name: "mistyped global flag after the command", args: []string{"status", "--log-levle", "warn"}, code: exitUsage, stderr: "did you mean --log-level?"},
		{name: "duration without a unit", args: []string{"run", "--max-wait", "5"}, code: exitUsage, stderr: `--max-wait "5": want a duration such as 90s, 5m or 1h30m`},
		{name: "number that is not one", args: []string{"run", "--concurrency", "four"}, code: exitUsage, stderr: `--concurrency "four": want a whole number`},
		{name: "missing required flag: usage on stderr", args: []string{"export"}, code: exitUsage, stderr: "USAGE:"},
		{name: "help asked for goes to stdout", args: []string{"export", "--help"}, code: exitOK, stdout: "USAGE:"},
		{name: "help command", args: []string{"help", "status"}, code: exitOK, stdout: "fhirlake status"},
		{name: "global flag after the command", args: []string{"status", "--warehouse", missing, "--log-format", "json"}, code: exitUsage, stderr: `"op":"open warehouse"`, jsonStderr: true},
		{name: "global flag after the command, inline value", args: []string{"status", "--log-format=json", "--warehouse", missing}, code: exitUsage, stderr: `"exit_code":2`, jsonStderr: true},
		{name: "environment selects JSON", env: map[string]string{"FHIRLAKE_LOG_FORMAT": "json"}, args: []string{"status", "--warehouse", missing}, code: exitUsage, stderr: `"level":"ERROR"`, jsonStderr: true},
		{name: "flag beats environment", env: map[string]string{"FHIRLAKE_LOG_FORMAT": "json"}, args: []string{"--log-format", "text", "status", "--warehouse", missing}, code: exitUsage, stderr: "fhirlake: open warehouse: no warehouse at " + missing},
		{name: "summary folder that cannot be made", args: []string{"load", "--in", in, "--warehouse", wh, "--source", "a", "--summary", filepath.Join(notAFolder, "s.json")}, code: exitUsage, stderr: "--summary " + filepath.Join(notAFolder, "s.json") + ": " + notAFolder + " is not a folder"},
		{name: "views that are a file", args: []string{"load", "--in", in, "--warehouse", wh, "--source", "a", "--views", notAFolder}, code: exitUsage, stderr: "--views " + notAFolder + " is not a folder of ViewDefinition files"},
		{name: "views check of no folder", args: []string{"views", "check", "--views", filepath.Join(dir, "nowhere")}, code: exitUsage, stderr: "--views " + filepath.Join(dir, "nowhere") + " is not a folder of ViewDefinition files"},
		{name: "lake that cannot be written", args: []string{"load", "--in", in, "--warehouse", wh, "--source", "a", "--lake", filepath.Join(notAFolder, "lake")}, code: exitUsage, stderr: "lake " + filepath.Join(notAFolder, "lake") + " cannot be written"},
		{name: "FHIR URL without a scheme", args: []string{"run", "--fhir-url", "payer.example/fhir", "--client-id", "x", "--warehouse", wh}, code: exitUsage, stderr: `--fhir-url "payer.example/fhir" is not an http(s) URL`},
		{name: "bad log format", args: []string{"--log-format", "xml", "status", "--warehouse", missing}, code: exitUsage, stderr: `--log-format (or FHIRLAKE_LOG_FORMAT) "xml": want text, json or auto`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"FHIRLAKE_LOG_FORMAT": ""}
			for k, v := range tt.env {
				env[k] = v
			}
			code, stdout, stderr := run(t, env, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if tt.stdout == "" && stdout != "" {
				t.Errorf("stdout should be empty, is:\n%s", stdout)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
			if strings.Contains(stderr, "export starting") || strings.Contains(stderr, "loading files") {
				t.Errorf("started before failing:\n%s", stderr)
			}
			if tt.jsonStderr {
				for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
					var rec map[string]any
					if err := json.Unmarshal([]byte(line), &rec); err != nil {
						t.Errorf("stderr line is not JSON: %s", line)
					}
				}
			}
		})
	}
	if _, err := os.Stat(wh); !os.IsNotExist(err) {
		t.Errorf("a command refused up front made its warehouse: %v", err)
	}
}

func TestHoistGlobalFlags(t *testing.T) {
	app := newApp(nil, nil)
	tests := []struct{ in, want string }{
		{"status --log-format json --warehouse w", "--log-format json status --warehouse w"},
		{"status --warehouse w --log-format=json --group-readable", "--log-format=json --group-readable status --warehouse w"},
		{"--log-level warn run --log-format json", "--log-level warn --log-format json run"},
		{"keys generate --out k --log-level debug", "--log-level debug keys generate --out k"},
		{"views test -- --log-level x", "views test -- --log-level x"},
		{"rnu --log-level warn", "rnu --log-level warn"},
		{"", ""},
	}
	for _, tt := range tests {
		in := append([]string{"fhirlake"}, strings.Fields(tt.in)...)
		got := strings.Join(hoistGlobalFlags(app, in)[1:], " ")
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestUserViewsCheckedUpFront: every mistake a user's view can hold is
// found before anything is exported or loaded, naming the file.
func TestUserViewsCheckedUpFront(t *testing.T) {
	col := `{"name":"id","path":"id"}`
	tests := []struct{ name, view, want string }{
		{"misspelt select", `{"resourceType":"ViewDefinition","name":"mine","resource":"Patient","selct":[{"column":[` + col + `]}]}`,
			`mine.json: invalid view definition: view "mine": ViewDefinition: unknown key "selct": did you mean "select"?`},
		{"misspelt column key", `{"resourceType":"ViewDefinition","name":"mine","resource":"Patient","select":[{"column":[` + col + `,{"nmae":"g","path":"gender"}]}]}`,
			`ViewDefinition.select[0].column[1]: unknown key "nmae": did you mean "name"?`},
		{"not a resource type", `{"resourceType":"ViewDefinition","name":"mine","resource":"Patinet","select":[{"column":[` + col + `]}]}`,
			`mine.json: view "mine": resource "Patinet" is not a FHIR resource type (did you mean "Patient"?)`},
		{"no key column", `{"resourceType":"ViewDefinition","name":"mine","resource":"Patient","select":[{"column":[{"name":"family","path":"name.family"}]}]}`,
			`mine.json: view "mine" has no key column`},
		{"a built-in's name", `{"resourceType":"ViewDefinition","name":"patient","resource":"Patient","select":[{"column":[` + col + `]}]}`,
			`mine.json: view "patient": the built-in view patient has that name already`},
		{"a path to no element", `{"resourceType":"ViewDefinition","name":"mine","resource":"Patient","select":[{"column":[` + col + `,{"name":"f","path":"name.famly.first()"}]}]}`,
			`mine.json: view "mine", column "f", path "name.famly.first()": HumanName has no element "famly" (did you mean "family"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			views, in := filepath.Join(dir, "views"), filepath.Join(dir, "in")
			os.Mkdir(views, 0o700)
			os.Mkdir(in, 0o700)
			os.WriteFile(filepath.Join(views, "mine.json"), []byte(tt.view), 0o600)
			code, _, stderr := run(t, nil, "load", "--in", in, "--warehouse", filepath.Join(dir, "w.duckdb"), "--views", views)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", code, exitUsage, tt.want, stderr)
			}
			// views check finds the same, with no warehouse at all.
			code, _, stderr = run(t, nil, "views", "check", "--views", views)
			if code != exitUsage || !strings.Contains(stderr, tt.want) {
				t.Errorf("views check: exit %d, want %d and %q:\n%s", code, exitUsage, tt.want, stderr)
			}
		})
	}
	// Two views of the user's with one name.
	dir := t.TempDir()
	views := filepath.Join(dir, "views")
	os.Mkdir(views, 0o700)
	for _, f := range []string{"a.json", "b.json"} {
		os.WriteFile(filepath.Join(views, f), []byte(`{"resourceType":"ViewDefinition","name":"mine","resource":"Patient","select":[{"column":[`+col+`]}]}`), 0o600)
	}
	code, _, stderr := run(t, nil, "load", "--in", dir, "--warehouse", filepath.Join(dir, "w.duckdb"), "--views", views)
	if code != exitUsage || !strings.Contains(stderr, `b.json: view "mine": a.json has that name already`) {
		t.Errorf("two views named mine: exit %d:\n%s", code, stderr)
	}
	// A path through a choice element the checker cannot follow is a
	// warning: the load goes on.
	os.Remove(filepath.Join(views, "b.json"))
	os.WriteFile(filepath.Join(views, "a.json"), []byte(`{"resourceType":"ViewDefinition","name":"mine","resource":"Observation","select":[{"column":[`+col+`,{"name":"u","path":"value.unti"}]}]}`), 0o600)
	code, _, stderr = run(t, nil, "load", "--in", onePatientDir(t, dir), "--warehouse", filepath.Join(dir, "w.duckdb"), "--views", views)
	if code != exitOK || !strings.Contains(stderr, `level=WARN msg="view path not checked"`) || !strings.Contains(stderr, `no element \"unti\"`) {
		t.Errorf("a path through a choice element: exit %d, want %d and a warning:\n%s", code, exitOK, stderr)
	}
	code, stdout, stderr := run(t, nil, "views", "check", "--views", views)
	if code != exitOK || !strings.Contains(stdout, "a.json: view mine of Observation, 2 columns: ok") || !strings.Contains(stderr, `no element \"unti\"`) {
		t.Errorf("views check of a view that passes with a warning: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, nil, "views", "check", "--views", filepath.Join(dir, "in")); code != exitUsage {
		t.Errorf("views check of a folder without views: exit %d\n%s", code, stderr)
	}
	for _, suite := range []string{filepath.Join(dir, "nonexistent"), views} {
		if code, _, stderr := run(t, nil, "views", "test", "--suite", suite); code != exitUsage {
			t.Errorf("views test --suite %s: exit %d, want %d:\n%s", suite, code, exitUsage, stderr)
		}
	}
}

// TestQuietOnSuccess: with the default log level a successful load prints
// its one result line on stdout and nothing on stderr; --log-level info
// tells its stages.
func TestQuietOnSuccess(t *testing.T) {
	dir := t.TempDir()
	in := onePatientDir(t, dir)
	wh := filepath.Join(dir, "w.duckdb")
	code, stdout, stderr := run(t, map[string]string{"FHIRLAKE_LOG_LEVEL": ""}, "load", "--in", in, "--warehouse", wh, "--source", "a")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "committed") || stderr != "" {
		t.Errorf("exit %d; want one line on stdout and nothing on stderr:\nstdout: %q\nstderr: %q", code, stdout, stderr)
	}
	_, _, stderr = run(t, nil, "--log-level", "info", "load", "--in", in, "--warehouse", wh, "--source", "a")
	if !strings.Contains(stderr, "run committed") {
		t.Errorf("--log-level info: stderr lacks the run's stages:\n%s", stderr)
	}
}

// TestLoadMakesTheWarehouseFolder: load, like run, makes the folders of a
// warehouse path that do not exist yet.
func TestLoadMakesTheWarehouseFolder(t *testing.T) {
	dir := t.TempDir()
	wh := filepath.Join(dir, "new", "nested", "w.duckdb")
	code, stdout, stderr := run(t, nil, "load", "--in", onePatientDir(t, dir), "--warehouse", wh, "--source", "a")
	if code != exitOK || !strings.Contains(stdout, "committed") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(wh); err != nil {
		t.Errorf("warehouse not made: %v", err)
	}
}

// TestResultLineFitsATerminal: a run of every type the sandbox has ends
// with one line of at most 100 columns; the rows of each
// table are in the --log-level info line of the commit (and the summary).
func TestResultLineFitsATerminal(t *testing.T) {
	fhirURL, tokenURL := startSandbox(t)
	dir := t.TempDir()
	env := map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}
	code, stdout, stderr := run(t, env, "--log-level", "info", "run", "--fhir-url", fhirURL, "--token-url", tokenURL,
		"--client-id", sandbox.DefaultClientID, "--warehouse", filepath.Join(dir, "w.duckdb"), "--source", "bison-health")
	if code != exitOK || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("exit %d; want one result line:\n%s\n%s", code, stdout, stderr)
	}
	line := strings.TrimSuffix(stdout, "\n")
	if n := utf8.RuneCountInString(line); n > 100 || !regexp.MustCompile(` \d+ rows in \d+ tables$`).MatchString(line) {
		t.Errorf("result line of %d columns (want at most 100, with the rows and tables counted):\n%s", n, line)
	}
	if !regexp.MustCompile(`msg="run committed".* rows="[^"]*organization=4 `).MatchString(stderr) {
		t.Errorf("the commit's log line lacks the rows per table:\n%s", stderr)
	}
}

// TestFlagsHaveEnvironmentVariables: every setting can come from the
// environment (FHIRLAKE_*), as --help shows and the README says. Flags
// that act once (cancel this job, print JSON, this input folder) have
// none on purpose: a variable left in an environment would repeat them.
func TestFlagsHaveEnvironmentVariables(t *testing.T) {
	actions := map[string]bool{
		"export cancel": true, "load in": true, "keys generate out": true, "member-match out": true,
		"views test suite": true, "views test report": true, "views test verbose": true,
		"status json": true, "status limit": true, "rebuild from": true, "rebuild dry-run": true, "rebuild relocate": true,
		"warehouse sync source": true, "warehouse compact force": true,
	}
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			for _, f := range c.Flags {
				name := prefix + c.Name + " " + f.Names()[0]
				ev, ok := f.(interface{ GetEnvVars() []string })
				has := ok && len(ev.GetEnvVars()) > 0
				if has == actions[name] {
					t.Errorf("%s: environment variable %v, want one: %v", name, ev.GetEnvVars(), !actions[name])
				}
				if has && !strings.HasPrefix(ev.GetEnvVars()[0], "FHIRLAKE_") {
					t.Errorf("%s: its first variable %s is not FHIRLAKE_*", name, ev.GetEnvVars()[0])
				}
			}
			walk(prefix+c.Name+" ", c.Subcommands)
		}
	}
	walk("", newApp(nil, nil).Commands)
}

// TestHelpListsOnlyWhatApplies: member-match downloads and exports
// nothing, so its help has no download or export flags.
func TestHelpListsOnlyWhatApplies(t *testing.T) {
	_, stdout, _ := run(t, nil, "member-match", "--help")
	for _, absent := range []string{"--concurrency", "--max-file-size", "--max-decompression-ratio", "--types", "--since", "--kind"} {
		if strings.Contains(stdout, absent) {
			t.Errorf("member-match --help lists %s", absent)
		}
	}
	for _, present := range []string{"--roster", "--fhir-url", "--client-id", "--max-wait"} {
		if !strings.Contains(stdout, present) {
			t.Errorf("member-match --help lacks %s", present)
		}
	}
}

// TestSandboxRosterMatchesOnAnyDay: the sandbox a user starts with
// `fhirlake sandbox` serves the same data whatever the day (its dates are
// relative to --as-of, a constant by default), so the example roster
// matches its three members.
func TestSandboxRosterMatchesOnAnyDay(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"fhirlake", "sandbox", "--addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	root := strings.TrimSpace(strings.TrimPrefix(first, "sandbox payer on "))
	code, stdout, stderr := run(t, nil, "member-match", "--fhir-url", sandbox.OneUpBase(root, sandbox.DefaultTenant),
		"--token-url", root+sandbox.TokenPath, "--client-id", sandbox.DefaultClientID, "--client-secret-file", secretFile(t),
		"--scope", "bulk-data|user/*.rs member-match|read", "--roster", "../../examples/roster.sandbox.csv", "--out", filepath.Join(t.TempDir(), "m.csv"))
	if code != exitOK || !strings.Contains(stdout, "3 members: 3 matched") {
		t.Errorf("member-match with examples/roster.sandbox.csv: exit %d\n%s\n%s", code, stdout, stderr)
	}
	cancel()
	<-done
}

func secretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(p, []byte(sandbox.DefaultClientSecret+"\n"), 0o600)
	return p
}

// TestSandboxChangesBetweenRuns: with --changes-per-run the sandbox
// changes its data before each export after the first, and the next
// incremental run picks the changes up: new versions and new members
// loaded, deletions applied.
func TestSandboxChangesBetweenRuns(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 20, Seed: 1, ChangesPerRun: 40})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	args := []string{"run", "--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), "--token-url", srv.URL + sandbox.TokenPath,
		"--client-id", sandbox.DefaultClientID, "--client-secret-file", secretFile(t), "--warehouse", wh, "--max-wait", "1m"}
	if code, _, stderr := run(t, nil, args...); code != exitOK {
		t.Fatalf("first run: exit %d\n%s", code, stderr)
	}
	patients := sb.Count("Patient")
	code, stdout, stderr := run(t, nil, args...)
	if code != exitOK {
		t.Fatalf("second run: exit %d\n%s", code, stderr)
	}
	m := regexp.MustCompile(`committed: (\d+) resources, (\d+) deleted`).FindStringSubmatch(stdout)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("the incremental run picked up no changes: %s", stdout)
	}
	if sb.Count("Patient") <= patients {
		t.Errorf("no new members: %d patients, were %d", sb.Count("Patient"), patients)
	}
}

// onePatientDir makes dir/in, a folder of one Patient to load.
func onePatientDir(t *testing.T, dir string) string {
	t.Helper()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o700); err != nil {
		t.Fatal(err)
	}
	line := `{"resourceType":"Patient","id":"a","meta":{"lastUpdated":"2026-01-01T00:00:00Z"}}` + "\n"
	if err := os.WriteFile(filepath.Join(in, "Patient.ndjson"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}
