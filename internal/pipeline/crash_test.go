//go:build duckdb_arrow

package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
)

// TestCrashHelperProcess is the child of TestKilledRunConverges: it runs the
// pipeline against the parent's sandbox and SIGKILLs itself at a stage.
func TestCrashHelperProcess(t *testing.T) {
	at := os.Getenv("FHIRLAKE_CRASH_AT")
	if at == "" {
		t.Skip("helper process of TestKilledRunConverges")
	}
	p := pipelineFor(t, os.Getenv("FHIRLAKE_CRASH_ROOT"), os.Getenv("FHIRLAKE_CRASH_DIR"))
	if os.Getenv("FHIRLAKE_CRASH_ICEBERG") != "" {
		icebergLake(&p)
	}
	p.Observe = func(stage string) {
		if stage == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	p.Run(context.Background())
	t.Fatal("the run was not killed")
}

func TestKilledRunConverges(t *testing.T) {
	for _, stage := range []string{pipeline.StageTransformed, pipeline.StageCommitted} {
		for _, how := range []string{"cancel", "sigkill"} {
			t.Run(stage+"/"+how, func(t *testing.T) {
				sb, err := sandbox.New(sandbox.Config{Members: 30, Seed: 1})
				if err != nil {
					t.Fatal(err)
				}
				srv := httptest.NewServer(sb.Handler())
				defer srv.Close()
				dir := t.TempDir()
				p := pipelineFor(t, srv.URL, dir)

				switch how {
				case "cancel":
					ctx, cancel := context.WithCancel(t.Context())
					p.Observe = func(s string) {
						if s == stage {
							cancel()
						}
					}
					if _, err := p.Run(ctx); !errors.Is(err, context.Canceled) {
						t.Fatalf("cancelled run: %v", err)
					}
					p.Observe = nil
				case "sigkill":
					cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
					cmd.Env = append(os.Environ(), "FHIRLAKE_CRASH_AT="+stage, "FHIRLAKE_CRASH_ROOT="+srv.URL, "FHIRLAKE_CRASH_DIR="+dir)
					out, err := cmd.CombinedOutput()
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
						t.Fatalf("child was not killed: %v\n%s", err, out)
					}
				}
				committed := runsIn(t, p.Warehouse)
				if want := map[string]int{pipeline.StageTransformed: 0, pipeline.StageCommitted: 1}[stage]; committed != want {
					t.Fatalf("%d runs committed after a crash at %s, want %d", committed, stage, want)
				}
				jobs := filepath.Join(filepath.Dir(p.Warehouse), "fhirlake-work", "jobs", "*", "*", "job.json") // the default work dir
				left, _ := filepath.Glob(jobs)
				if len(left) != 1 {
					t.Fatalf("job directories after the crash: %v", left)
				}
				deletes := func() int {
					return countRequests(sb, func(r sandbox.RequestLog) bool { return r.Method == http.MethodDelete })
				}
				before := deletes()

				if _, err := p.Run(t.Context()); err != nil {
					t.Fatalf("rerun: %v", err)
				}
				// No job directory outlives its commit by more than one run:
				// the committed job's downloads are gone and its server job
				// was deleted, besides the rerun's own.
				if left, _ := filepath.Glob(jobs); len(left) != 0 {
					t.Errorf("job directories after the rerun: %v", left)
				}
				if want := map[string]int{pipeline.StageTransformed: 1, pipeline.StageCommitted: 2}[stage]; deletes()-before != want {
					t.Errorf("%d server jobs deleted by the rerun, want %d", deletes()-before, want)
				}
				if stage == pipeline.StageTransformed {
					if k := countRequests(sb, isKickoff); k != 1 {
						t.Errorf("%d kick-offs: the rerun must resume the downloaded export", k)
					}
				}
				clean := pipelineFor(t, srv.URL, t.TempDir())
				if _, err := clean.Run(t.Context()); err != nil {
					t.Fatal(err)
				}
				assertSameTables(t, p, clean)
			})
		}
	}
}

// runsIn counts the committed runs of a warehouse (0 when it is absent).
func runsIn(t *testing.T, path string) int {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		return 0
	}
	w, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var n int
	fmt.Sscan(queryStrings(t, w, "SELECT count(*)::VARCHAR FROM fhirlake_runs")[0], &n)
	return n
}

// assertSameTables compares every view table of two pipelines' warehouses
// (EXCEPT ALL both ways) and checks that got's lake holds its tables.
func assertSameTables(t *testing.T, got, want pipeline.Pipeline) {
	t.Helper()
	w, err := duckdb.Open(t.Context(), got.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Exec(t.Context(), "ATTACH '"+want.Warehouse+"' AS want (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	for _, v := range got.Views {
		n := v.Name()
		for _, q := range []string{
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM main.%s EXCEPT ALL SELECT * FROM want.%s)", n, n),
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM want.%s EXCEPT ALL SELECT * FROM main.%s)", n, n),
			// The lake mirrors the warehouse (files hold every column; the
			// year in the path is only for pruning).
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM main.%s EXCEPT ALL SELECT * FROM read_parquet('%s', hive_partitioning = false))",
				n, filepath.Join(got.Lake, n, "**", "*.parquet")),
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM read_parquet('%s', hive_partitioning = false) EXCEPT ALL SELECT * FROM main.%s)",
				filepath.Join(got.Lake, n, "**", "*.parquet"), n),
		} {
			if r := queryStrings(t, w, q); r[0] != "0" {
				t.Errorf("%s: %s rows differ (%s)", n, r[0], q)
			}
		}
	}
}

// icebergLake points p's lake at an Iceberg lake in its folder, with the
// default SQLite catalog beside the warehouse.
func icebergLake(p *pipeline.Pipeline) {
	p.LakeFormat = "iceberg"
	p.Lake = filepath.Join(filepath.Dir(p.Warehouse), "iceberg")
}

// TestKilledRunCatchesUpTheIcebergLake: a run killed between its warehouse
// commit and its lake snapshot leaves the Iceberg lake a run behind; the
// next run catches it up, and every table's current snapshot equals the
// warehouse again, with no file left that no snapshot references.
func TestKilledRunCatchesUpTheIcebergLake(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 20, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	dir := t.TempDir()
	p := pipelineFor(t, srv.URL, dir)
	icebergLake(&p)
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(time.Hour)
	if err := sb.Touch("Patient", "pat-0003"); err != nil {
		t.Fatal(err)
	}
	if err := sb.Delete("ExplanationOfBenefit", "eob-0001-01"); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(time.Hour)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
	cmd.Env = append(os.Environ(), "FHIRLAKE_CRASH_AT="+pipeline.StageCommitted, "FHIRLAKE_CRASH_ROOT="+srv.URL,
		"FHIRLAKE_CRASH_DIR="+dir, "FHIRLAKE_CRASH_ICEBERG=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}
	if n := runsIn(t, p.Warehouse); n != 2 {
		t.Fatalf("%d runs committed, want 2", n)
	}
	sb.Clock().Advance(time.Hour)
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	assertIcebergMirrors(t, p)
}

// assertIcebergMirrors compares every view table's current Iceberg
// snapshot with the warehouse, reading the data files with read_parquet.
func assertIcebergMirrors(t *testing.T, p pipeline.Pipeline) {
	t.Helper()
	lk, err := iceberg.Open(t.Context(), p.Lake, load.LakeOptions{Warehouse: p.Warehouse})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, v := range p.Views {
		tbl, err := lk.Table(t.Context(), v.Name())
		if err != nil {
			t.Fatalf("%s: %v", v.Name(), err)
		}
		tasks, err := tbl.Scan().PlanFiles(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var files []string
		for _, task := range tasks {
			files = append(files, "'"+strings.TrimPrefix(task.File.FilePath(), "file://")+"'")
		}
		if len(files) == 0 {
			if n := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM "+v.Name()); n[0] != "0" {
				t.Errorf("%s: no data files for %s rows", v.Name(), n[0])
			}
			continue
		}
		src := "read_parquet([" + strings.Join(files, ", ") + "], hive_partitioning = false)"
		for _, q := range []string{
			"SELECT count(*)::VARCHAR FROM (SELECT * FROM " + v.Name() + " EXCEPT ALL SELECT * FROM " + src + ")",
			"SELECT count(*)::VARCHAR FROM (SELECT * FROM " + src + " EXCEPT ALL SELECT * FROM " + v.Name() + ")",
		} {
			if r := queryStrings(t, w, q); r[0] != "0" {
				t.Errorf("%s: %s rows differ (%s)", v.Name(), r[0], q)
			}
		}
	}
}
