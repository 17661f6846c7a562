//go:build duckdb_arrow

package main

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/testserver"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

// TestManyWorkersOneLake: four fhirlake processes, one per source (four
// sandbox payers with the same ids), each with its own warehouse, run at
// the same time into one Iceberg lake on S3 with a PostgreSQL catalog;
// then four incremental runs at once (an update, a claim that moves
// years, a delete in each payer); then one more run that is killed with
// SIGKILL and run again. After each round every source's rows, in every
// data table and in the bookkeeping, are exactly its warehouse's, and the
// lake holds no other rows.
func TestManyWorkersOneLake(t *testing.T) {
	sl := newSharedLake(t, 4, 10)
	s3, pg, ws, start := sl.s3, sl.pg, sl.workers, sl.start
	round := func(name string) {
		t.Helper()
		if err := sl.round(ws); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	check := func(name string) {
		t.Helper()
		t.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		var total int
		for _, wk := range ws {
			w, err := duckdb.OpenReadOnly(t.Context(), wk.warehouse)
			if err != nil {
				t.Fatal(err)
			}
			lk, err := iceberg.Open(t.Context(), "s3://lake/fhirlake", load.LakeOptions{Warehouse: wk.warehouse, S3Endpoint: s3.Endpoint, S3PathStyle: true, Catalog: pg.DSN})
			if err != nil {
				t.Fatal(err)
			}
			icebergtest.CheckMirrorsWhere(t, w, lk, s3.Dir, "data_source = '"+wk.source+"'", "patient", "coverage", "eob", "eob_item", "eob_item_adjudication", "observation")
			icebergtest.CheckMirrorsWhere(t, w, lk, s3.Dir, "source = '"+wk.source+"'", "fhirlake_runs", "fhirlake_watermarks", "fhirlake_resources", "fhirlake_deleted")
			rows, err := w.TableRows(t.Context(), []string{"eob_item"})
			if err != nil {
				t.Fatal(err)
			}
			total += int(rows["eob_item"])
			if wk.source == ws[0].source {
				tbl, err := lk.Table(t.Context(), "eob_item")
				if err != nil {
					t.Fatal(err)
				}
				_, recs, err := tbl.Scan().ToArrowRecords(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				live := 0
				for rec, err := range recs {
					if err != nil {
						t.Fatal(err)
					}
					live += int(rec.NumRows())
					rec.Release()
				}
				defer func(live int) {
					if live != total {
						t.Errorf("%s: eob_item: %d rows in the lake, %d in the four warehouses", name, live, total)
					}
				}(live)
			}
			lk.Close()
			w.Close()
		}
	}

	round("first runs")
	check("first runs")

	for _, wk := range ws {
		wk.sb.Clock().Advance(time.Hour)
		wk.sb.Update("ExplanationOfBenefit", "eob-0001-02", func(r map[string]any) {
			r["billablePeriod"] = map[string]any{"start": "2019-03-01", "end": "2019-03-01"} // moves years
		})
		wk.sb.Delete("ExplanationOfBenefit", "eob-0002-01")
		wk.sb.Clock().Advance(time.Hour)
	}
	round("incremental runs")
	check("incremental runs")

	// A run killed part-way, at some point of its export, commit or
	// publish, then run again: the lake ends as the warehouse.
	wk := ws[0]
	wk.sb.Clock().Advance(time.Hour)
	wk.sb.Update("ExplanationOfBenefit", "eob-0003-01", func(r map[string]any) {
		r["billablePeriod"] = map[string]any{"start": "2018-06-01", "end": "2018-06-01"}
	})
	wk.sb.Clock().Advance(time.Hour)
	// Killed at several points, each run resuming what the last left.
	killed := 0
	for _, after := range []time.Duration{300 * time.Millisecond, 800 * time.Millisecond, 1500 * time.Millisecond, 2500 * time.Millisecond} {
		cmd := start(wk)
		time.Sleep(after)
		cmd.Process.Signal(syscall.SIGKILL)
		var ee *exec.ExitError
		err := cmd.Wait()
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed++
		} else if err != nil {
			t.Fatalf("killed run: %v", err)
		}
	}
	if killed == 0 {
		t.Fatal("every run finished before it was killed: the test killed none")
	}
	if err := start(wk).Wait(); err != nil {
		t.Fatalf("the run after the killed one: %v", err)
	}
	check("after a killed run")
}

// sharedLake is n sandbox payers (the same ids in each), one worker per
// payer with its own warehouse, and one Iceberg lake on S3 with a
// PostgreSQL catalog that they all write.
type sharedLake struct {
	t       testing.TB
	s3      testserver.S3Server
	pg      testserver.PostgresServer
	env     []string
	workers []sharedWorker
}

type sharedWorker struct {
	source, warehouse string
	sb                *sandbox.Server
	args              []string
}

func newSharedLake(t testing.TB, n, members int) *sharedLake {
	sl := &sharedLake{t: t, s3: testserver.S3(t), pg: testserver.Postgres(t)}
	sl.s3.Bucket(t, "lake")
	sl.env = []string{
		"FHIRLAKE_CLIENT_SECRET=" + sandbox.DefaultClientSecret,
		"AWS_ACCESS_KEY_ID=" + sl.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + sl.s3.SecretKey, "AWS_REGION=us-east-1",
	}
	dir := t.TempDir()
	for i := range n {
		sb, err := sandbox.New(sandbox.Config{Members: members, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(sb.Handler())
		t.Cleanup(srv.Close)
		wk := sharedWorker{source: fmt.Sprintf("payer-%d", i), warehouse: filepath.Join(dir, fmt.Sprint(i), "w.duckdb"), sb: sb}
		wk.args = []string{"--log-level", "warn", "run",
			"--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), "--token-url", srv.URL + sandbox.TokenPath,
			"--client-id", sandbox.DefaultClientID, "--source", wk.source, "--warehouse", wk.warehouse,
			"--lake", "s3://lake/fhirlake", "--lake-format", "iceberg",
			"--s3-endpoint", sl.s3.Endpoint, "--s3-path-style", "--catalog", sl.pg.DSN}
		sl.workers = append(sl.workers, wk)
	}
	return sl
}

// start starts a fhirlake process (this test binary, TestMainHelper) that
// runs wk's source.
func (sl *sharedLake) start(wk sharedWorker) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainHelper$")
	cmd.Env = append(os.Environ(), sl.env...)
	cmd.Env = append(cmd.Env, "FHIRLAKE_TEST_MAIN_ARGS="+strings.Join(wk.args, "\x1f"))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		sl.t.Fatal(err)
	}
	sl.t.Cleanup(func() {
		if sl.t.Failed() {
			sl.t.Logf("%s:\n%s", wk.source, out.String())
		}
	})
	return cmd
}

// round runs every one of ws at the same time and waits for them.
func (sl *sharedLake) round(ws []sharedWorker) error {
	var cmds []*exec.Cmd
	for _, wk := range ws {
		cmds = append(cmds, sl.start(wk))
	}
	var errs []error
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ws[i].source, err))
		}
	}
	return errors.Join(errs...)
}

// BenchmarkWorkers: runs per minute of 1, 2 and 4 workers writing one
// Iceberg lake at the same time (S3 and PostgreSQL on loopback), each a
// full run of its own sandbox payer (FHIRLAKE_BENCH_MEMBERS members,
// default 200) into its own new warehouse, then an incremental one.
func BenchmarkWorkers(b *testing.B) {
	members := 200
	if v := os.Getenv("FHIRLAKE_BENCH_MEMBERS"); v != "" {
		fmt.Sscan(v, &members)
	}
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("%d-workers", n), func(b *testing.B) {
			var full, incr time.Duration
			for range b.N {
				sl := newSharedLake(b, n, members)
				t0 := time.Now()
				if err := sl.round(sl.workers); err != nil {
					b.Fatal(err)
				}
				full += time.Since(t0)
				for _, wk := range sl.workers {
					wk.sb.Clock().Advance(time.Hour)
					wk.sb.Update("ExplanationOfBenefit", "eob-0001-02", func(r map[string]any) {
						r["billablePeriod"] = map[string]any{"start": "2019-03-01", "end": "2019-03-01"}
					})
					wk.sb.Clock().Advance(time.Hour)
				}
				t0 = time.Now()
				if err := sl.round(sl.workers); err != nil {
					b.Fatal(err)
				}
				incr += time.Since(t0)
			}
			runs := float64(n * b.N)
			b.ReportMetric(runs/full.Minutes(), "full-runs/min")
			b.ReportMetric(runs/incr.Minutes(), "incr-runs/min")
			b.ReportMetric(0, "ns/op")
		})
	}
}
