//go:build duckdb_arrow

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load/duckdb"
)

// run executes the CLI in-process as main does and returns its exit code,
// stdout and stderr (with the error line main prints).
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := runMain(context.Background(), append([]string{"fhirlake"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func startSandbox(t *testing.T) (fhirURL, tokenURL string) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	return sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), srv.URL + sandbox.TokenPath
}

func TestExitCodes(t *testing.T) {
	fhirURL, tokenURL := startSandbox(t)
	dir := t.TempDir()
	badSecret := filepath.Join(dir, "bad-secret")
	os.WriteFile(badSecret, []byte("not-the-secret\n"), 0o600)
	goodSecret := filepath.Join(dir, "secret")
	os.WriteFile(goodSecret, []byte(sandbox.DefaultClientSecret+"\n"), 0o600)
	source := []string{"--fhir-url", fhirURL, "--token-url", tokenURL, "--client-id", sandbox.DefaultClientID}

	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		stderr   string // substring expected on stderr
		noSecret bool   // the secret must not appear anywhere
	}{
		{"unknown flag", nil, []string{"export", "--nope"}, exitUsage, "unknown flag --nope (see fhirlake export --help)", false},
		{"missing base URL", nil, []string{"export", "--out", dir}, exitUsage, "no FHIR base URL: pass --fhir-url", false},
		{"bad since", nil, append([]string{"export", "--out", dir, "--since", "yesterday", "--client-secret-file", goodSecret}, source...), exitUsage, "RFC 3339", false},
		{"no secret", map[string]string{"FHIRLAKE_CLIENT_SECRET": ""}, append([]string{"export", "--out", dir}, source...), exitUsage, "no client secret", false},
		{"wrong secret", nil, append([]string{"export", "--out", dir, "--client-secret-file", badSecret}, source...), exitAuth,
			`token endpoint rejected client "` + sandbox.DefaultClientID + `" (401 invalid_client): check client id and secret`, true},
		{"export ok", nil, append([]string{"export", "--out", filepath.Join(dir, "out"), "--types", "Patient,Coverage"}, source...), exitOK, "", true},
		{"payer-to-payer needs a roster", nil, append([]string{"export", "--out", dir, "--kind", "payer-to-payer"}, source...), exitUsage, "a payer-to-payer source needs a roster", false},
		{"unknown kind", nil, append([]string{"export", "--out", dir, "--kind", "payer"}, source...), exitUsage, `kind "payer": want one of`, false},
		{"tenant fills the URL template", nil, []string{"export", "--out", filepath.Join(dir, "tenant"), "--types", "Patient",
			"--fhir-url", strings.Replace(fhirURL, "/v1/bison/", "/v1/{tenant}/", 1), "--tenant", sandbox.DefaultTenant,
			"--token-url", tokenURL, "--client-id", sandbox.DefaultClientID}, exitOK, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}
			}
			code, stdout, stderr := run(t, env, tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
			if tt.noSecret && (strings.Contains(stdout+stderr, sandbox.DefaultClientSecret) || strings.Contains(stdout+stderr, "not-the-secret")) {
				t.Errorf("a secret leaked into the output:\n%s\n%s", stdout, stderr)
			}
		})
	}
	// The successful export left exactly the requested types and the manifest.
	got, _ := filepath.Glob(filepath.Join(dir, "out", "*"))
	for i := range got {
		got[i] = filepath.Base(got[i])
	}
	if strings.Join(got, " ") != "Coverage.001.ndjson Patient.001.ndjson job.json manifest.json" {
		t.Errorf("export wrote %v", got)
	}
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := run(t, nil, "--log-level", "warn", "demo", "--dir", dir, "--members", "20")
	if code != exitOK {
		t.Fatalf("demo exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{"patient ", "eob_item ", "claims_by_type", "professional", "institutional", "pharmacy"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, stdout)
		}
	}
	if stderr != "" {
		t.Errorf("demo was not quiet at --log-level warn:\n%s", stderr)
	}
	if parts, _ := filepath.Glob(filepath.Join(dir, "lake", "eob", "data_source=sandbox", "service_year=*", "data.parquet")); len(parts) == 0 {
		t.Errorf("lake not written: no partitions under %s", filepath.Join(dir, "lake", "eob"))
	}
	if _, err := os.Stat(filepath.Join(dir, "lake", "patient", "data_source=sandbox", "data.parquet")); err != nil {
		t.Errorf("lake not written: %v", err)
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	code, stdout, _ := run(t, nil, "--help")
	if code != exitOK || !strings.Contains(stdout, "EXIT CODES") || !strings.Contains(stdout, "safe to retry") {
		t.Errorf("help (exit %d) lacks the exit codes:\n%s", code, stdout)
	}
}

func TestKeysGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	code, stdout, stderr := run(t, nil, "keys", "generate", "--alg", "ES384", "--out", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st, err := os.Stat(filepath.Join(dir, "private-key.pem"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("private key: %v, mode %v; want 0600", err, st.Mode())
	}
	jwks, _ := os.ReadFile(filepath.Join(dir, "jwks.json"))
	if !strings.Contains(string(jwks), `"alg": "ES384"`) || strings.Contains(string(jwks), `"d":`) || !strings.Contains(stdout, "kid: ") {
		t.Errorf("jwks.json must hold only the public ES384 key:\n%s\n%s", jwks, stdout)
	}
	// Never overwrite a key.
	if code, _, stderr := run(t, nil, "keys", "generate", "--out", dir); code != exitUsage || !strings.Contains(stderr, "refusing to overwrite") {
		t.Errorf("second generate: exit %d, %s", code, stderr)
	}
	if code, _, _ := run(t, nil, "keys", "generate", "--alg", "HS256", "--out", t.TempDir()); code != exitUsage {
		t.Errorf("HS256: exit %d, want usage error", code)
	}
}

// writeRoster writes dir/roster.csv of the sandbox's first n members, with
// consent from a month before to a year after the sandbox clock; member
// unmatched (-1 for none) gets a birth date nobody has, and with link each
// member has a coverage_to_link (NEW-<i>).
func writeRoster(t *testing.T, sb *sandbox.Server, dir string, n, unmatched int, link bool) string {
	t.Helper()
	now := sb.Clock().Now()
	header := "given,family,birth_date,member_id,consent_start,consent_end"
	if link {
		header += ",coverage_to_link"
	}
	rows := []string{header}
	for i := range n {
		m, _ := sb.MemberMatchInfo(i)
		birth := m.BirthDate
		if i == unmatched {
			birth = "1900-01-01" // no such member
		}
		row := []string{m.Given, m.Family, birth, m.MemberID, now.AddDate(0, -1, 0).Format(time.DateOnly), now.AddDate(1, 0, 0).Format(time.DateOnly)}
		if link {
			row = append(row, fmt.Sprintf("NEW-%d", i))
		}
		rows = append(rows, strings.Join(row, ","))
	}
	path := filepath.Join(dir, "roster.csv")
	if err := os.WriteFile(path, []byte(strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMemberMatchAndRunWithRoster(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	roster := writeRoster(t, sb, dir, 3, 2, false)
	env := map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}
	source := []string{"--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), "--token-url", srv.URL + sandbox.TokenPath,
		"--client-id", sandbox.DefaultClientID, "--scope", "bulk-data|user/*.rs member-match|read", "--roster", roster}

	out := filepath.Join(dir, "matches.csv")
	code, stdout, stderr := run(t, env, append([]string{"member-match", "--out", out}, source...)...)
	if code != exitOK || !strings.Contains(stdout, "3 members: 2 matched, 1 not matched") {
		t.Fatalf("member-match exit %d:\n%s\n%s", code, stdout, stderr)
	}
	csv, _ := os.ReadFile(out)
	if lines := strings.Split(strings.TrimSpace(string(csv)), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[0], "line,member_id,status,group_id") ||
		!strings.Contains(lines[3], ",not_matched,") {
		t.Errorf("matches.csv:\n%s", csv)
	}

	sumFile := filepath.Join(dir, "summary.json")
	code, stdout, stderr = run(t, env, append([]string{"--log-level", "warn", "run", "--types", "Patient,Coverage",
		"--warehouse", filepath.Join(dir, "w.duckdb"), "--summary", sumFile}, source...)...)
	if code != exitOK {
		t.Fatalf("run --roster exit %d:\n%s", code, stderr)
	}
	// Two matched members, two groups of one patient each, exported and
	// committed together.
	rows := summaryRows(t, sumFile)
	if !strings.Contains(stdout, "roster (2 exports)) committed: 4 resources") || strings.Count(stdout, "committed:") != 1 || len(rows) != 1 || rows[0]["patient"] != 2 {
		t.Errorf("run --roster output:\n%s\nrows per run: %v", stdout, rows)
	}
	// Each group keeps a watermark scope of its own: a group that joins
	// later starts with a full export.
	if got := warehouseValue(t, filepath.Join(dir, "w.duckdb"), `SELECT count(DISTINCT scope) || ' ' || bool_and(scope LIKE 'group/%') FROM fhirlake_watermarks`); got != "2 true" {
		t.Errorf("watermark scopes: %s, want 2 true (one per group)", got)
	}
	// Each member's group of one is that member: the match links the
	// Patient of its own group's export, not the other's.
	checkMemberMatches(t, sb, filepath.Join(dir, "w.duckdb"), 0, 1)
}

// warehouseValue is the one value query answers on the warehouse wh.
func warehouseValue(t *testing.T, wh, query string) string {
	t.Helper()
	w, err := duckdb.OpenReadOnly(t.Context(), wh)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rs, err := w.Query(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	var got string
	if !rs.Next() {
		t.Fatalf("%s: no row", query)
	}
	if err := rs.Scan(&got); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return got
}

// checkMemberMatches checks that the warehouse's member matches link
// exactly the sandbox's roster members (by index) each to their Patient.
func checkMemberMatches(t *testing.T, sb *sandbox.Server, wh string, members ...int) {
	t.Helper()
	got := warehouseValue(t, wh, `SELECT string_agg(member_id || '=' || patient_id, ',' ORDER BY member_id) FROM fhirlake_member_matches`)
	var want []string
	for _, i := range members {
		m, _ := sb.MemberMatchInfo(i)
		want = append(want, m.MemberID+"="+m.PatientID)
	}
	slices.Sort(want)
	if got != strings.Join(want, ",") {
		t.Errorf("member matches %s, want %s", got, strings.Join(want, ","))
	}
}

func TestViewsTestSuite(t *testing.T) {
	suite := filepath.Join("..", "..", "..", "shared", "fixtures", "sof-tests")
	if _, err := os.Stat(suite); err != nil {
		t.Skipf("SQL-on-FHIR suite not found at %s", suite)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := run(t, nil, "views", "test", "--suite", suite, "--report", report)
	if code != exitOK || stdout != "144 passed, 0 failed\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	var rep map[string]struct {
		Tests []struct {
			Name   string `json:"name"`
			Result struct {
				Passed bool `json:"passed"`
			} `json:"result"`
		} `json:"tests"`
	}
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil || len(rep["basic.json"].Tests) == 0 || !rep["basic.json"].Tests[0].Result.Passed {
		t.Errorf("report is not in the standard shape: %v\n%.300s", err, b)
	}
	// The report agrees with the printed line, test by test.
	passed, failed := 0, 0
	for _, f := range rep {
		for _, tr := range f.Tests {
			if tr.Result.Passed {
				passed++
			} else {
				failed++
			}
		}
	}
	if got := fmt.Sprintf("%d passed, %d failed\n", passed, failed); got != stdout {
		t.Errorf("report counts %q, printed %q", got, stdout)
	}
	// A failing test fails the command.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "bad.json"), []byte(`{"title":"bad","resources":[{"resourceType":"Patient","id":"p"}],"tests":[{"title":"wrong","view":{"resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]},"expect":[{"id":"q"}]}]}`), 0o644)
	if code, stdout, _ := run(t, nil, "views", "test", "--suite", bad); code != exitFailure || stdout != "0 passed, 1 failed\n" {
		t.Errorf("failing suite: exit %d, stdout %q", code, stdout)
	}
}

func TestRunWithUserViews(t *testing.T) {
	fhirURL, tokenURL := startSandbox(t)
	dir := t.TempDir()
	views := filepath.Join(dir, "views")
	os.MkdirAll(views, 0o755)
	os.WriteFile(filepath.Join(views, "coverage_class.json"), []byte(`{
	  "resourceType": "ViewDefinition", "name": "coverage_class", "resource": "Coverage", "status": "active",
	  "select": [{"column": [{"name": "coverage_id", "path": "getResourceKey()"}]},
	             {"forEach": "class", "column": [{"name": "type", "path": "type.coding.code.first()"}, {"name": "value", "path": "value"}]}]}`), 0o644)
	env := map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}
	args := []string{"--log-level", "warn", "run", "--fhir-url", fhirURL, "--token-url", tokenURL, "--client-id", sandbox.DefaultClientID,
		"--types", "Coverage", "--warehouse", filepath.Join(dir, "w.duckdb"), "--views", views}
	sumFile := filepath.Join(dir, "summary.json")
	code, stdout, stderr := run(t, env, append(args, "--summary", sumFile)...)
	// The sandbox's 10 members have a plan and a group class each.
	if rows := summaryRows(t, sumFile); code != exitOK || len(rows) != 1 || rows[0]["coverage_class"] != 20 {
		t.Fatalf("exit %d, rows %v\n%s\n%s", code, rows, stdout, stderr)
	}
	os.WriteFile(filepath.Join(views, "broken.json"), []byte(`{"resourceType":"ViewDefinition","name":"broken","resource":"Coverage","select":[{"column":[{"name":"x","path":"foo(("}]}]}`), 0o644)
	code, _, stderr = run(t, env, args...)
	if code != exitUsage || !strings.Contains(stderr, "broken.json") {
		t.Errorf("broken view: exit %d, stderr %s; want usage error naming the file", code, stderr)
	}
}

func TestExitCodesOfFailedRuns(t *testing.T) {
	tests := []struct {
		name   string
		cfg    sandbox.Config
		faults sandbox.Faults
		args   []string
		hold   bool // another writer holds the warehouse
		code   int
		stderr string
	}{
		{"export failed on the server", sandbox.Config{}, sandbox.Faults{JobFails: true}, nil, false, exitExport, "export failed on the server"},
		{"files expired", sandbox.Config{}, sandbox.Faults{FilesGone: true}, []string{"--types", "Patient"}, false, exitExport, "files expired (410)"},
		{"wait budget spent", sandbox.Config{PollsBeforeReady: 50}, sandbox.Faults{}, []string{"--max-wait", "1ms"}, false, exitTransient, "--max-wait"},
		{"warehouse busy", sandbox.Config{}, sandbox.Faults{}, nil, true, exitBusy, "only one fhirlake run may write to a warehouse at a time"},
		// Answers that will be the same on every rerun are never exit 5.
		{"token URL is a login page", sandbox.Config{}, sandbox.Faults{TokenLoginPage: true}, nil, false, exitAuth, "text/html"},
		{"scope not granted", sandbox.Config{}, sandbox.Faults{TokenInvalidScope: true}, nil, false, exitAuth, "check the scopes"},
		{"export too costly", sandbox.Config{}, sandbox.Faults{StatusOutcome: "too-costly"}, nil, false, exitExport, "ask for fewer members or types"},
		{"typeFilter refused and unevaluable", sandbox.Config{}, sandbox.Faults{RefuseParams: []string{"_typeFilter"}}, []string{"--types", "Patient", "--type-filter", "Patient?name=Smith"}, false, exitUsage, "search parameter name"},
		{"wrong token URL", sandbox.Config{}, sandbox.Faults{}, []string{"--token-url", "{root}/no/such/token"}, false, exitAuth, "check the token URL"},
		{"file short on every download", sandbox.Config{}, sandbox.Faults{TruncateFiles: 1000}, []string{"--types", "Patient"}, false, exitFailure, "the same on a fresh download"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Members = 5
			sb, err := sandbox.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			sb.SetFaults(tt.faults)
			srv := httptest.NewServer(sb.Handler())
			defer srv.Close()
			wh := filepath.Join(t.TempDir(), "w.duckdb")
			if tt.hold {
				l, err := lockfile.Acquire(wh, "fhirlake run --source nightly")
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
			}
			args := []string{"--log-level", "error", "run", "--warehouse", wh,
				"--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), "--token-url", srv.URL + sandbox.TokenPath,
				"--client-id", sandbox.DefaultClientID}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{root}", srv.URL)) // a later flag wins
			}
			code, _, stderr := run(t, map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}, args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to contain %q", code, tt.code, stderr, tt.stderr)
			}
		})
	}
}

// snapshotDir lists every file under dir with its size and modification
// time, to show that a command left it alone.
func snapshotDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	return out
}

// TestFilesArePrivate: whatever umask a scheduler starts fhirlake with,
// the warehouse, its lock and the lake (files and folders) are readable by
// the owner only, or by the owner's group with --group-readable.
func TestFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "p.ndjson"), []byte(`{"resourceType":"Patient","id":"p1","gender":"female"}`+"\n"), 0o666)
	for _, c := range []struct {
		flags         []string
		file, dir     os.FileMode // the most each may allow
		wantGroupRead bool
	}{
		{nil, 0o600, 0o700, false},
		{[]string{"--group-readable"}, 0o640, 0o750, true},
	} {
		dir := t.TempDir()
		args := append(append([]string{"--log-level", "error"}, c.flags...), "load", "--in", in,
			"--warehouse", filepath.Join(dir, "data", "w.duckdb"), "--lake", filepath.Join(dir, "data", "lake"))
		if code, _, stderr := run(t, nil, args...); code != exitOK {
			t.Fatalf("load %v: exit %d\n%s", c.flags, code, stderr)
		}
		seen, groupRead := 0, false
		filepath.WalkDir(filepath.Join(dir, "data"), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			limit := c.file
			if d.IsDir() {
				limit = c.dir
			}
			if fi.Mode().Perm()&^limit != 0 {
				t.Errorf("%v: %s has mode %v, more than %v", c.flags, path, fi.Mode().Perm(), limit)
			}
			groupRead = groupRead || fi.Mode().Perm()&0o040 != 0
			seen++
			return nil
		})
		if seen < 10 || groupRead != c.wantGroupRead {
			t.Errorf("%v: %d paths checked, group read %v", c.flags, seen, groupRead)
		}
	}
}

// TestRosterSpreadOverExports: a roster whose matches name more patients
// than --max-patients-per-export is exported in several patient-filtered
// exports, exported in parallel and loaded in one commit (one result
// line, one run record), each export's watermark in a scope of its own;
// together they load every matched member.
func TestRosterSpreadOverExports(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	roster := writeRoster(t, sb, dir, 5, -1, false)
	wh := filepath.Join(dir, "w.duckdb")
	code, stdout, stderr := run(t, map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret},
		"--log-level", "warn", "run", "--types", "Patient,Coverage", "--warehouse", wh, "--max-patients-per-export", "2",
		"--fhir-url", sandbox.StandardBase(srv.URL), "--token-url", srv.URL+sandbox.TokenPath,
		"--client-id", sandbox.DefaultClientID, "--scope", "bulk-data|user/*.rs member-match|read", "--roster", roster)
	if code != exitOK {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
	}
	kickoffs := 0
	for _, r := range sb.Requests() {
		if strings.HasSuffix(r.Path, "$export") && r.Status == 202 {
			kickoffs++
		}
	}
	if kickoffs < 3 || strings.Count(stdout, "committed:") != 1 || !strings.Contains(stdout, fmt.Sprintf("roster (%d exports)) committed: 10 resources", kickoffs)) {
		t.Errorf("%d exports for 5 patients at most 2 per export, want 3 or more in one commit:\n%s", kickoffs, stdout)
	}
	got := warehouseValue(t, wh, `SELECT (SELECT count(*) FROM patient) || ' ' || (SELECT count(DISTINCT scope) FROM fhirlake_watermarks WHERE scope LIKE 'patient/%')
		|| ' ' || (SELECT count(*) FROM fhirlake_runs)`)
	if got != fmt.Sprintf("5 %d 1", kickoffs) {
		t.Errorf("patients, bucket scopes and runs: %s, want 5 %d 1", got, kickoffs)
	}
}

// TestRunWithBulkMemberMatch: against a server that advertises
// $bulk-member-match, run --roster matches the whole roster in one
// request, exports the matched Group once, and links each matched
// member's Patient (and only it) to the member.
func TestRunWithBulkMemberMatch(t *testing.T) {
	for _, c := range []struct {
		per        string // --max-patients-per-export
		bulk       int    // $bulk-member-match requests
		runOutcome string // in the one result line
	}{
		{"1000", 1, "group/bmm-"},
		// Two batches, two Groups: both exported and loaded in one commit.
		{"2", 2, "roster (2 exports)) committed: 6 resources"},
	} {
		t.Run("per="+c.per, func(t *testing.T) {
			sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1, BulkMemberMatch: true})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(sb.Handler())
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			roster := writeRoster(t, sb, dir, 4, 2, true)
			wh := filepath.Join(dir, "w.duckdb")
			code, stdout, stderr := run(t, map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret},
				"--log-level", "warn", "run", "--types", "Patient,Coverage", "--warehouse", wh, "--max-patients-per-export", c.per,
				"--fhir-url", sandbox.StandardBase(srv.URL), "--token-url", srv.URL+sandbox.TokenPath,
				"--client-id", sandbox.DefaultClientID, "--scope", "bulk-data|user/*.rs member-match|read", "--roster", roster)
			if code != exitOK {
				t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
			}
			if strings.Count(stdout, "committed:") != 1 || !strings.Contains(stdout, c.runOutcome) {
				t.Errorf("want one run (%s):\n%s", c.runOutcome, stdout)
			}
			bulk, single := 0, 0
			for _, r := range sb.Requests() {
				switch {
				case strings.HasSuffix(r.Path, "$bulk-member-match"):
					bulk++
				case strings.HasSuffix(r.Path, "$member-match"):
					single++
				}
			}
			if bulk != c.bulk || single != 0 {
				t.Errorf("%d bulk and %d single member matches, want %d and 0", bulk, single, c.bulk)
			}
			checkMemberMatches(t, sb, wh, 0, 1, 3)
		})
	}
}

// summaryRows reads a --summary file: the rows per table of each run.
func summaryRows(t *testing.T, path string) []map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	var rows []map[string]int64
	for _, run := range r.Runs {
		rows = append(rows, run.Rows)
	}
	return rows
}
