//go:build duckdb_arrow

package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// writeConfig writes a config with two sources on one sandbox.
func writeConfig(t *testing.T, dir, root string) string {
	t.Helper()
	cfg := `warehouse: ` + filepath.Join(dir, "file.duckdb") + `
lake: ` + filepath.Join(dir, "lake") + `
sources:
  - name: bison
    kind: provider-access
    tenant: bison
    fhir_url: ` + root + `/v1/{tenant}/bulk-data/r4
    token_url: ` + root + sandbox.TokenPath + `
    auth:
      client_id: ` + sandbox.DefaultClientID + `
      client_secret: env:TEST_SANDBOX_SECRET
      scope: "bulk-data|user/*.rs"
    types: [Patient, Coverage]
  - name: standard
    kind: bulk
    fhir_url: ` + root + `/fhir
    token_url: ` + root + sandbox.TokenPath + `
    auth:
      client_id: ` + sandbox.DefaultClientID + `
      client_secret: env:TEST_SANDBOX_SECRET
    types: [Patient]
`
	path := filepath.Join(dir, "fhirlake.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunFromConfig(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, srv.URL)
	env := map[string]string{"TEST_SANDBOX_SECRET": sandbox.DefaultClientSecret}

	code, stdout, stderr := run(t, env, "config", "check", "--config", cfg)
	if code != exitOK || !strings.Contains(stdout, "ok, 2 source(s)") {
		t.Fatalf("config check: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// All sources in order, into the config's warehouse; summary written.
	summary := filepath.Join(dir, "summary.json")
	code, stdout, stderr = run(t, env, "--log-level", "warn", "run", "--config", cfg, "--summary", summary)
	if code != exitOK || strings.Count(stdout, "committed") != 2 || !strings.Contains(stdout, "(bison system)") || !strings.Contains(stdout, "(standard system)") {
		t.Fatalf("run --config: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		Status string
		Runs   []struct {
			Status string
			Source string
			Rows   map[string]int64
		}
	}
	b, _ := os.ReadFile(summary)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Status != "succeeded" || len(rep.Runs) != 2 ||
		rep.Runs[0].Source != "bison" || rep.Runs[0].Rows["coverage"] != 10 || rep.Runs[1].Rows["patient"] != 10 {
		t.Errorf("summary %v:\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(dir, "file.duckdb")); err != nil {
		t.Errorf("the config's warehouse was not used: %v", err)
	}

	// Flag beats env beats file: --warehouse overrides the file, and
	// FHIRLAKE_TYPES overrides the source's types; --source picks one.
	// The config's lake mirrors the config's warehouse: a run into another
	// warehouse refuses before exporting, naming both, and changes nothing.
	flagWH := filepath.Join(dir, "flag.duckdb")
	env["FHIRLAKE_TYPES"] = "Coverage"
	before := snapshotDir(t, filepath.Join(dir, "lake"))
	code, stdout, stderr = run(t, env, "--log-level", "warn", "run", "--config", cfg, "--source", "bison", "--warehouse", flagWH)
	if code != exitUsage || !strings.Contains(stderr, filepath.Join(dir, "file.duckdb")) || !strings.Contains(stderr, flagWH) ||
		strings.Contains(stdout, "committed") {
		t.Errorf("a run into another warehouse than the lake's: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(flagWH); err == nil {
		t.Errorf("the refused run created %s", flagWH)
	}
	if diff := cmp.Diff(before, snapshotDir(t, filepath.Join(dir, "lake"))); diff != "" {
		t.Errorf("the refused run changed the lake (-before +after):\n%s", diff)
	}
	sumFile := filepath.Join(dir, "precedence.json")
	code, stdout, stderr = run(t, env, "--log-level", "warn", "run", "--config", cfg, "--source", "bison", "--warehouse", flagWH,
		"--lake", filepath.Join(dir, "flag-lake"), "--summary", sumFile)
	if rows := summaryRows(t, sumFile); code != exitOK || strings.Count(stdout, "committed") != 1 || len(rows) != 1 || rows[0]["coverage"] != 10 || rows[0]["patient"] != 0 {
		t.Errorf("precedence: exit %d, rows %v\n%s\n%s", code, rows, stdout, stderr)
	}
	if _, err := os.Stat(flagWH); err != nil {
		t.Errorf("--warehouse did not override the file: %v", err)
	}

	code, _, stderr = run(t, env, "run", "--config", cfg, "--source", "nope")
	if code != exitUsage || !strings.Contains(stderr, `source "nope"`) {
		t.Errorf("unknown source: exit %d, %s", code, stderr)
	}

	code, stdout, _ = run(t, nil, "status", "--config", cfg, "--json")
	var st struct {
		Runs, Watermarks []map[string]any
		PersonConflicts  *[]map[string]any `json:"person_conflicts"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); code != exitOK || err != nil || len(st.Runs) != 2 || len(st.Watermarks) != 3 ||
		st.PersonConflicts == nil || len(*st.PersonConflicts) != 0 {
		t.Errorf("status --json: exit %d, %v\n%s", code, err, stdout)
	}
}

func TestConfigCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte("sources:\n  - name: a\n    kind: bulk\n    fhir_url: https://x.example/fhir\n    token_url: https://x.example/token\n    auth:\n      client_id: c\n      client_secret: plain-text\n  - name: b\n    kind: nope\n"), 0o600)
	code, _, stderr := run(t, nil, "config", "check", "--config", path)
	for _, want := range []string{
		path + ":8: sources[0].auth.client_secret: must be a reference",
		path + ":10: sources[1].kind:",
		path + ":9: sources[1].fhir_url: is required",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("config check output lacks %q:\n%s", want, stderr)
		}
	}
	if code != exitUsage || strings.Contains(stderr, "plain-text") {
		t.Errorf("exit %d (want %d), or the inline secret leaked:\n%s", code, exitUsage, stderr)
	}
}

func TestRejectsOverThresholdCommitNothing(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o755)
	os.WriteFile(filepath.Join(in, "p.ndjson"), []byte(`{"resourceType":"Patient","id":"p1","gender":"female"}`+"\n"+`{"resourceType":"Patient","id":`+"\n"), 0o644)
	wh := filepath.Join(dir, "w.duckdb")
	summary := filepath.Join(dir, "summary.json")
	code, _, stderr := run(t, nil, "--log-level", "error", "load", "--in", in, "--warehouse", wh, "--max-rejects", "0", "--summary", summary)
	if code != exitRejected || !strings.Contains(stderr, "1 lines or values rejected, more than the limit of 0: nothing was committed") {
		t.Fatalf("exit %d (want %d):\n%s", code, exitRejected, stderr)
	}
	code, stdout, _ := run(t, nil, "status", "--warehouse", wh, "--json")
	var st struct{ Runs []map[string]any }
	json.Unmarshal([]byte(stdout), &st)
	if code != exitOK || len(st.Runs) != 1 || st.Runs[0]["status"] != "rejected" {
		t.Errorf("status after a rejected load: %s", stdout)
	}
	// Within the limit, the good line loads and the bad one is recorded.
	within := filepath.Join(dir, "within.json")
	code, stdout, stderr = run(t, nil, "--log-level", "error", "load", "--in", in, "--warehouse", wh, "--max-rejects", "1", "--summary", within)
	if rows := summaryRows(t, within); code != exitOK || !strings.HasSuffix(stdout, ", 1 rows in 1 tables, 1 rejects\n") || len(rows) != 1 || rows[0]["patient"] != 1 {
		t.Errorf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var rep struct {
		Status   string
		ExitCode int `json:"exit_code"`
		Runs     []map[string]any
	}
	b, _ := os.ReadFile(summary)
	// The command failed; its run says what fhirlake_runs says: rejected.
	// Without a manifest there is no transaction time, and no watermark
	// moved.
	if json.Unmarshal(b, &rep); rep.Status != "failed" || rep.ExitCode != exitRejected || len(rep.Runs) != 1 ||
		rep.Runs[0]["status"] != "rejected" || rep.Runs[0]["transaction_time"] != nil || rep.Runs[0]["watermark_advanced"] != nil {
		t.Errorf("summary of the rejected load: %s", b)
	}
	summary2 := filepath.Join(dir, "summary2.json")
	if code, _, stderr := run(t, nil, "--log-level", "error", "load", "--in", in, "--warehouse", wh, "--max-rejects", "1", "--summary", summary2); code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	b, _ = os.ReadFile(summary2)
	rep.Runs = nil
	if json.Unmarshal(b, &rep); len(rep.Runs) != 1 || rep.Runs[0]["status"] != "committed" || rep.Runs[0]["transaction_time"] != nil || rep.Runs[0]["watermark_advanced"] != nil {
		t.Errorf("summary of a load without a manifest: %s", b)
	}
}
