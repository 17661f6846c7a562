//go:build duckdb_arrow

package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/config"
)

// startRecordedSandbox is startSandbox that also returns the sandbox, for
// its request log and faults.
func startRecordedSandbox(t *testing.T) (*sandbox.Server, []string) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1, MaxLinesPerFile: 10})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	t.Setenv("FHIRLAKE_CLIENT_SECRET", sandbox.DefaultClientSecret)
	return sb, []string{"--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant),
		"--token-url", srv.URL + sandbox.TokenPath, "--client-id", sandbox.DefaultClientID}
}

// TestExportCancelRemovesOnlyTheJobsFiles: --out may be a folder that
// holds other things. `export --cancel` used to remove every *.ndjson in
// it and any manifest.json (and failed on a folder named *.ndjson); it
// must remove exactly what the job wrote and leave the rest as it was.
func TestExportCancelRemovesOnlyTheJobsFiles(t *testing.T) {
	sb, source := startRecordedSandbox(t)
	sb.SetFaults(sandbox.Faults{ErrorFile: true})
	out := t.TempDir()
	for name, content := range map[string]string{
		"README.txt":                 "the user's notes",
		"members.ndjson":             `{"resourceType":"Patient","id":"theirs"}` + "\n",
		"archive/Patient.001.ndjson": `{"resourceType":"Patient","id":"last year"}` + "\n",
		"archive/manifest.json":      `{"transactionTime":"2025-01-01T00:00:00Z"}`,
		"archive/job.json":           `{"version":1}`,
		"batch.ndjson/readme":        "a folder named like NDJSON",
	} {
		path := filepath.Join(out, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	filepath.Walk(out, func(path string, _ os.FileInfo, _ error) error { return os.Chtimes(path, old, old) })
	before := snapshotDir(t, out)

	code, stdout, stderr := run(t, nil, append([]string{"--log-level", "error", "export", "--out", out}, source...)...)
	if code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "the server reported 1 errors and 1 warnings about the export, about Observation") {
		t.Errorf("export output does not report the server's issues:\n%s", stdout)
	}
	job, err := extract.LoadJob(out)
	if err != nil || job == nil {
		t.Fatalf("job state: %v, %v", job, err)
	}
	ours := []string{extract.JobFile, extract.ManifestFile}
	for name := range job.Files {
		ours = append(ours, name)
	}

	code, stdout, stderr = run(t, nil, append([]string{"--log-level", "error", "export", "--cancel", "--out", out}, source...)...)
	if code != exitOK || !strings.Contains(stdout, "cancelled") {
		t.Fatalf("export --cancel: exit %d\n%s%s", code, stdout, stderr)
	}
	deletes := 0
	for _, r := range sb.Requests() {
		if r.Method == http.MethodDelete && r.Status == http.StatusAccepted {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("%d DELETEs reached the server, want 1", deletes)
	}
	if diff := cmp.Diff(before, snapshotDir(t, out)); diff != "" {
		t.Errorf("files that are not the job's changed (-before +after):\n%s", diff)
	}
	for _, name := range ours {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("%s of the job is still in --out", name)
		}
	}
	if code, _, stderr := run(t, nil, append([]string{"export", "--cancel", "--out", out}, source...)...); code != exitUsage {
		t.Errorf("cancel with no job: exit %d, want %d\n%s", code, exitUsage, stderr)
	}
}

// TestDownloadLimitsFromTheCommandLine: --max-file-size and
// --max-decompression-ratio (and their variables) reach the client; a
// file over a limit is exit 2 with the setting to raise, and bad values
// are usage errors.
func TestDownloadLimitsFromTheCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr []string
	}{
		{"file over the limit", []string{"--max-file-size", "1KB"}, nil, exitUsage,
			[]string{"download Patient.001.ndjson: larger than 1kB", "raise --max-file-size (max_file_size in the config)"}},
		{"limit from the environment", nil, map[string]string{"FHIRLAKE_MAX_FILE_SIZE": "2 KiB"}, exitUsage,
			[]string{"larger than 2KiB"}},
		{"flag over the environment", []string{"--max-file-size", "10MB"}, map[string]string{"FHIRLAKE_MAX_FILE_SIZE": "1KB"}, exitOK, nil},
		{"within the defaults", nil, nil, exitOK, nil},
		{"not a size", []string{"--max-file-size", "lots"}, nil, exitUsage, []string{`--max-file-size: "lots" is not a size such as 500MB or 64GiB`}},
		{"ratio below 1", []string{"--max-decompression-ratio", "0.5"}, nil, exitUsage, []string{"--max-decompression-ratio must be at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, source := startRecordedSandbox(t)
			out := t.TempDir()
			args := append(append([]string{"--log-level", "error", "export", "--types", "Patient", "--out", out}, source...), tt.args...)
			code, _, stderr := run(t, tt.env, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s", code, tt.code, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

// TestDownloadLimitSettings: flag > environment > config file > default,
// for the download limits of a source.
func TestDownloadLimitSettings(t *testing.T) {
	if n, err := config.ParseSize(sourceFlagDefault(t, "max-file-size")); err != nil || n != extract.DefaultMaxFileSize {
		t.Errorf("--max-file-size default is %d (%v), want extract's %d", n, err, extract.DefaultMaxFileSize)
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		file      config.Source
		size      int64
		ratio     float64
		usageText string
	}{
		{"defaults", nil, nil, config.Source{}, extract.DefaultMaxFileSize, extract.DefaultMaxDecompressionRatio, ""},
		{"file", nil, nil, config.Source{MaxFileSize: "500MB", MaxDecompressionRatio: 40}, 500e6, 40, ""},
		{"env over file", nil, map[string]string{"FHIRLAKE_MAX_FILE_SIZE": "1GiB", "FHIRLAKE_MAX_DECOMPRESSION_RATIO": "30"},
			config.Source{MaxFileSize: "500MB", MaxDecompressionRatio: 40}, 1 << 30, 30, ""},
		{"flag over env", []string{"--max-file-size", "2GB", "--max-decompression-ratio", "25"},
			map[string]string{"FHIRLAKE_MAX_FILE_SIZE": "1GiB", "FHIRLAKE_MAX_DECOMPRESSION_RATIO": "30"},
			config.Source{MaxFileSize: "500MB"}, 2e9, 25, ""},
		{"bad size in the file", nil, nil, config.Source{Name: "p", MaxFileSize: "-1"}, 0, 0, `source p: --max-file-size: "-1" is not a size`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var got sourceOptions
			var err error
			app := &cli.App{Flags: sourceFlags(), Writer: io.Discard, Action: func(c *cli.Context) error {
				got, err = resolveSettings(c, &tt.file).source(slog.New(slog.DiscardHandler))
				return nil
			}}
			if runErr := app.Run(append([]string{"x", "--fhir-url", "http://127.0.0.1:1/fhir"}, tt.args...)); runErr != nil {
				t.Fatal(runErr)
			}
			if tt.usageText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.usageText) || exitCode(t.Context(), err) != exitUsage {
					t.Fatalf("err = %v, want a usage error with %q", err, tt.usageText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.client.MaxFileSize != tt.size || got.client.MaxDecompressionRatio != tt.ratio {
				t.Errorf("client limits %d and %g, want %d and %g", got.client.MaxFileSize, got.client.MaxDecompressionRatio, tt.size, tt.ratio)
			}
		})
	}
}

// sourceFlagDefault is the default value text of a source flag.
func sourceFlagDefault(t *testing.T, name string) string {
	t.Helper()
	for _, f := range sourceFlags() {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == name {
			return sf.Value
		}
	}
	t.Fatalf("no flag --%s", name)
	return ""
}
