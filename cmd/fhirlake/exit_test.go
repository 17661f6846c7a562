//go:build duckdb_arrow

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load/duckdb"
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

// TestHoldWarehouseHelper, re-executed by TestStatusDuringARun, holds a
// warehouse as a run does (its lock and the DuckDB file, read-write)
// until its stdin closes.
func TestHoldWarehouseHelper(t *testing.T) {
	path := os.Getenv("FHIRLAKE_TEST_HOLD")
	if path == "" {
		t.Skip("helper process of TestStatusDuringARun")
	}
	lock, err := lockfile.Acquire(path, "fhirlake run --source payer-a")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	w, err := duckdb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Println("holding")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// TestStatusDuringARun: status on a warehouse a run is writing says that a
// run is in progress, names it, and exits 7 (try later), not 2.
func TestStatusDuringARun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldWarehouseHelper$")
	cmd.Env = append(os.Environ(), "FHIRLAKE_TEST_HOLD="+path)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "holding\n" {
		t.Fatalf("helper: %q", line)
	}
	code, _, stderr := run(t, nil, "status", "--warehouse", path)
	want := fmt.Sprintf("a run is in progress on %s (pid %d", path, cmd.Process.Pid)
	if code != exitBusy || !strings.Contains(stderr, want) || !strings.Contains(stderr, "fhirlake run --source payer-a") {
		t.Errorf("exit %d, want %d, and stderr naming the run (%q):\n%s", code, exitBusy, want, stderr)
	}
}
