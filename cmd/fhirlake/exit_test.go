//go:build duckdb_arrow

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMainHelper runs main() itself when the test binary is re-executed by
// TestMainExitCodes; otherwise it does nothing.
func TestMainHelper(t *testing.T) {
	args := os.Getenv("FHIRLAKE_TEST_MAIN_ARGS")
	if args == "" {
		t.Skip("helper process of TestMainExitCodes")
	}
	os.Args = append([]string{"fhirlake"}, strings.Split(args, "\x1f")...)
	main()
}

// TestMainExitCodes checks the codes the real process exits with, signal
// handling and all, not just the classification.
func TestMainExitCodes(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "keys")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"success", []string{"keys", "generate", "--out", key}, exitOK},
		{"usage: unknown flag", []string{"run", "--bogus"}, exitUsage},
		{"usage: refusing to overwrite a key", []string{"keys", "generate", "--out", key}, exitUsage},
		{"usage: no warehouse", []string{"run", "--fhir-url", "http://127.0.0.1:1/fhir"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMainHelper$")
			cmd.Env = append(os.Environ(), "FHIRLAKE_TEST_MAIN_ARGS="+strings.Join(tt.args, "\x1f"))
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", code, tt.code, out)
			}
		})
	}
}
