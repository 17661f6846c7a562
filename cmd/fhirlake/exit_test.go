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
	"sync"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load"
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
	if os.Getenv("FHIRLAKE_TEST_HOLD_READER") != "" {
		// An analyst's DuckDB client: the file open read-only, no lock.
		w, err := load.OpenReadOnly(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
	} else {
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
	}
	fmt.Println("holding")
	bufio.NewReader(os.Stdin).ReadString('\n')
}

// holdWarehouse starts TestHoldWarehouseHelper on path (as a reader with
// reader set) and returns its pid and the function that lets it go.
func holdWarehouse(t *testing.T, path string, reader bool) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldWarehouseHelper$")
	cmd.Env = append(os.Environ(), "FHIRLAKE_TEST_HOLD="+path)
	if reader {
		cmd.Env = append(cmd.Env, "FHIRLAKE_TEST_HOLD_READER=1")
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			stdin.Close()
			cmd.Wait()
		})
	}
	t.Cleanup(release)
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "holding\n" {
		t.Fatalf("helper: %q", line)
	}
	return cmd.Process.Pid, release
}

// TestRunWaitsForAReader: a load that finds the warehouse open in a
// reader (a DuckDB client in another process) waits for it, up to
// --lock-wait; a reader that stays longer is named (its pid) and the run
// exits 7 without loading.
func TestRunWaitsForAReader(t *testing.T) {
	dir := t.TempDir()
	in := onePatientDir(t, dir)
	wh := filepath.Join(dir, "w.duckdb")
	if code, _, stderr := run(t, nil, "load", "--in", in, "--warehouse", wh, "--source", "a"); code != exitOK {
		t.Fatalf("first load: exit %d\n%s", code, stderr)
	}
	pid, release := holdWarehouse(t, wh, true)
	code, stdout, stderr := run(t, nil, "load", "--in", in, "--warehouse", wh, "--source", "a", "--lock-wait", "1s")
	if code != exitBusy || !strings.Contains(stderr, fmt.Sprintf("PID %d", pid)) || !strings.Contains(stderr, "waited 1s") || strings.Contains(stdout, "committed") {
		t.Errorf("reader holding past --lock-wait: exit %d, want %d naming PID %d\nstdout: %s\nstderr: %s", code, exitBusy, pid, stdout, stderr)
	}
	release()
	_, release = holdWarehouse(t, wh, true)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		release()
	}()
	code, stdout, stderr = run(t, nil, "load", "--in", in, "--warehouse", wh, "--source", "a", "--lock-wait", "1m")
	if code != exitOK || !strings.Contains(stdout, "committed") {
		t.Errorf("reader gone within --lock-wait: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// TestStatusDuringARun: status on a warehouse a run is writing says that a
// run is in progress, names it, and exits 7 (try later), not 2.
func TestStatusDuringARun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	pid, _ := holdWarehouse(t, path, false)
	code, _, stderr := run(t, nil, "status", "--warehouse", path)
	want := fmt.Sprintf("a run is in progress on %s (pid %d", path, pid)
	if code != exitBusy || !strings.Contains(stderr, want) || !strings.Contains(stderr, "fhirlake run --source payer-a") {
		t.Errorf("exit %d, want %d, and stderr naming the run (%q):\n%s", code, exitBusy, want, stderr)
	}
}

// TestExitCodeOutOfMemory: a run that needs more warehouse memory fails
// the same way until FHIRLAKE_WAREHOUSE_MEMORY is raised, a setting: exit
// code 2, not a failure to alert on nor one to retry.
func TestExitCodeOutOfMemory(t *testing.T) {
	err := fmt.Errorf("commit run r1: %w: raise %s", load.ErrOutOfMemory, duckdb.MemoryEnv)
	if got := exitCode(t.Context(), err); got != exitUsage {
		t.Errorf("exit code %d, want %d", got, exitUsage)
	}
}

// TestWarehouseCompact: warehouse compact says when there is nothing to
// compact, rewrites the file with --force (its rows the same), refuses a
// missing file as a usage error, and a load takes --no-compact.
func TestWarehouseCompact(t *testing.T) {
	dir := t.TempDir()
	in := onePatientDir(t, dir)
	wh := filepath.Join(dir, "w.duckdb")
	if code, _, stderr := run(t, nil, "load", "--in", in, "--warehouse", wh, "--source", "a", "--no-compact"); code != exitOK {
		t.Fatalf("load --no-compact: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := run(t, nil, "warehouse", "compact", "--warehouse", wh)
	if code != exitOK || stdout != wh+": nothing to compact (--force rewrites it anyway)\n" {
		t.Errorf("compact: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	before, err := os.Stat(wh)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, nil, "warehouse", "compact", "--warehouse", wh, "--force")
	if code != exitOK || !strings.HasPrefix(stdout, "compacted "+wh+": ") || !strings.HasSuffix(stdout, " MB, 0 replaced rows of 0 tables reclaimed\n") {
		t.Errorf("compact --force: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if after, err := os.Stat(wh); err != nil || os.SameFile(before, after) {
		t.Errorf("compact --force left the file as it was (%v)", err)
	}
	if code, stdout, stderr = run(t, nil, "status", "--warehouse", wh); code != exitOK || !strings.Contains(stdout, "committed") {
		t.Errorf("status after compaction: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, _, stderr = run(t, nil, "warehouse", "compact", "--warehouse", filepath.Join(dir, "none.duckdb")); code != exitUsage || !strings.Contains(stderr, "no warehouse at") {
		t.Errorf("compact of a missing file: exit %d, want %d\n%s", code, exitUsage, stderr)
	}
}
