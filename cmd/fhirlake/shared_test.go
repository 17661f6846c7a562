//go:build duckdb_arrow

package main

import (
	"encoding/json"
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
	"github.com/fhirlake/fhirlake/internal/pipeline"
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
// lake holds no other rows; at the end its data tables hold exactly what
// one process loading the four sources in turn holds. An analyst's file
// synced from the lake then holds every source, linked across sources.
func TestManyWorkersOneLake(t *testing.T) {
	sl := newSharedLake(t, 4, 10)
	s3, pg, ws, start := sl.s3, sl.pg, sl.workers, sl.start
	round := func(name string) {
		t.Helper()
		if err := sl.round(ws); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var retries int64
		for _, wk := range ws {
			retries += wk.summary(t).LakeCommitRetries
		}
		t.Logf("%s: %d lake commits lost a race and were redone", name, retries)
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

	// One process loading the four sources in turn, into one warehouse
	// and a lake of its own, ends with the rows the shared lake holds.
	control := filepath.Join(t.TempDir(), "control.duckdb")
	for _, wk := range ws {
		wk = wk.at(control, control+"."+wk.source+".json")
		wk.args = append(wk.args, "--namespace", "control")
		if err := start(wk).Wait(); err != nil {
			t.Fatalf("control run of %s: %v", wk.source, err)
		}
	}
	func() {
		c, err := duckdb.OpenReadOnly(t.Context(), control)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lk, err := iceberg.Open(t.Context(), "s3://lake/fhirlake", load.LakeOptions{Warehouse: control, S3Endpoint: s3.Endpoint, S3PathStyle: true, Catalog: pg.DSN})
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		icebergtest.CheckMirrors(t, c, lk, s3.Dir, "patient", "coverage", "eob", "eob_item", "eob_item_adjudication", "observation", "encounter", "eob_diagnosis")
	}()

	// An analyst's file synced from the lake holds every source's rows;
	// the next sync copies only the source that changed since.
	analyst := filepath.Join(t.TempDir(), "analyst.duckdb")
	sync := func() string {
		t.Helper()
		var out strings.Builder
		args := []string{"warehouse", "sync", "--warehouse", analyst, "--lake", "s3://lake/fhirlake", "--lake-format", "iceberg",
			"--s3-endpoint", s3.Endpoint, "--s3-path-style", "--catalog", pg.DSN,
			"--person-identifier-system", "https://bison.example.org/fhir/memberidentifier"}
		if err := sl.startWith(sharedWorker{source: "sync", args: args}, &out).Wait(); err != nil {
			t.Fatalf("warehouse sync: %v\n%s", err, out.String())
		}
		return out.String()
	}
	if out := sync(); !strings.Contains(out, "4 sources copied") {
		t.Errorf("first sync: %s", out)
	}
	syncCheck := func(name string) {
		t.Helper()
		a, err := duckdb.OpenReadOnly(t.Context(), analyst)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		lk, err := iceberg.Open(t.Context(), "s3://lake/fhirlake", load.LakeOptions{Warehouse: analyst, S3Endpoint: s3.Endpoint, S3PathStyle: true, Catalog: pg.DSN})
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		icebergtest.CheckMirrors(t, a, lk, s3.Dir, "patient", "coverage", "eob", "eob_item", "eob_item_adjudication", "observation", "fhirlake_runs", "fhirlake_resources", "fhirlake_watermarks")
		if got := icebergtest.Query(t, a, "SELECT count(DISTINCT data_source)::VARCHAR FROM eob"); got[0] != "4" {
			t.Errorf("%s: %s sources in the synced file's eob", name, got[0])
		}
		// The four payers hold the same members (same seed, same member
		// numbers, named a person identifier here): linked across
		// sources in the synced file, though each worker linked only its
		// own.
		persons := icebergtest.Query(t, a, "SELECT count(DISTINCT person_id)::VARCHAR || ' ' || count(*)::VARCHAR FROM person")
		members := icebergtest.Query(t, a, "SELECT count(*)::VARCHAR || ' ' || (4 * count(*))::VARCHAR FROM patient WHERE data_source = '"+ws[0].source+"'")
		if persons[0] != members[0] {
			t.Errorf("%s: persons (distinct, rows) %s, want %s", name, persons[0], members[0])
		}
		if got := icebergtest.Query(t, a, "SELECT count(*)::VARCHAR FROM information_schema.tables WHERE table_name = 'member_months'"); got[0] != "1" {
			t.Errorf("%s: the synced file has no analytics views", name)
		}
	}
	syncCheck("first sync")
	if out := sync(); !strings.Contains(out, "0 sources copied (none; 0 rows), 4 up to date") {
		t.Errorf("a sync with nothing new: %s", out)
	}
	wk = ws[2]
	wk.sb.Clock().Advance(time.Hour)
	wk.sb.Update("ExplanationOfBenefit", "eob-0004-01", func(r map[string]any) {
		r["billablePeriod"] = map[string]any{"start": "2017-06-01", "end": "2017-06-01"}
	})
	wk.sb.Clock().Advance(time.Hour)
	if err := start(wk).Wait(); err != nil {
		t.Fatal(err)
	}
	if out := sync(); !strings.Contains(out, "1 sources copied ("+wk.source+";") || !strings.Contains(out, "3 up to date") {
		t.Errorf("a sync after one source's run: %s", out)
	}
	syncCheck("second sync")
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
			"--summary", filepath.Join(filepath.Dir(wk.warehouse), "summary.json"),
			"--lake", "s3://lake/fhirlake", "--lake-format", "iceberg",
			"--s3-endpoint", sl.s3.Endpoint, "--s3-path-style", "--catalog", sl.pg.DSN}
		sl.workers = append(sl.workers, wk)
	}
	return sl
}

// at is wk with another warehouse and summary file: the same source run
// from another machine.
func (wk sharedWorker) at(warehouse, summary string) sharedWorker {
	m := wk
	m.warehouse, m.args = warehouse, nil
	for i := 0; i < len(wk.args); i++ {
		m.args = append(m.args, wk.args[i])
		switch wk.args[i] {
		case "--warehouse":
			m.args = append(m.args, warehouse)
			i++
		case "--summary":
			m.args = append(m.args, summary)
			i++
		}
	}
	return m
}

// summary reads the summary of wk's last run.
func (wk sharedWorker) summary(t testing.TB) pipeline.Summary {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(wk.warehouse), "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil || len(r.Runs) != 1 || r.Runs[0].Summary == nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	return *r.Runs[0].Summary
}

// start starts a fhirlake process (this test binary, TestMainHelper) that
// runs wk's source.
func (sl *sharedLake) start(wk sharedWorker) *exec.Cmd {
	return sl.startWith(wk, &strings.Builder{})
}

// startWith is start with the process's output collected in out.
func (sl *sharedLake) startWith(wk sharedWorker, out *strings.Builder) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainHelper$")
	cmd.Env = append(os.Environ(), sl.env...)
	cmd.Env = append(cmd.Env, "FHIRLAKE_TEST_MAIN_ARGS="+strings.Join(wk.args, "\x1f"))
	cmd.Stdout, cmd.Stderr = out, out
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

// TestSourceMovesBetweenMachines: a source's state lives in the lake, so
// its runs may move between machines (a Kubernetes pod per run, a worker
// that died). A run on a new warehouse restores the source from the lake
// and continues incrementally from the last run's watermark with the same
// newest-wins decisions: its tables equal those of a control warehouse
// that ran every round itself. While another machine holds the source's
// lease a run exits 7 naming the holder, before it exports or creates
// anything; the first machine, stale once another ran the source,
// restores it in turn.
func TestSourceMovesBetweenMachines(t *testing.T) {
	sl := newSharedLake(t, 1, 10)
	wk := sl.workers[0]
	dir := t.TempDir()
	machine := func(name string) sharedWorker {
		return wk.at(filepath.Join(dir, name, "w.duckdb"), filepath.Join(dir, name, "summary.json"))
	}
	// The control runs every round on one warehouse, into its own namespace.
	control := machine("control")
	control.args = append(control.args, "--namespace", "control")
	one, two := machine("one"), machine("two")
	run := func(m sharedWorker) pipeline.Summary {
		t.Helper()
		if err := sl.round([]sharedWorker{m}); err != nil {
			t.Fatal(err)
		}
		return m.summary(t)
	}
	data := []string{"patient", "coverage", "eob", "eob_item", "eob_item_adjudication", "observation"}
	same := func(name string, m sharedWorker) {
		t.Helper()
		t.Setenv("AWS_ACCESS_KEY_ID", sl.s3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", sl.s3.SecretKey)
		t.Setenv("AWS_REGION", "us-east-1")
		w, err := duckdb.OpenReadOnly(t.Context(), m.warehouse)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		icebergtest.Query(t, w, "ATTACH IF NOT EXISTS '"+control.warehouse+"' AS ctl (READ_ONLY)")
		for _, table := range data {
			for _, q := range []string{
				"SELECT * FROM " + table + " EXCEPT ALL SELECT * FROM ctl." + table,
				"SELECT * FROM ctl." + table + " EXCEPT ALL SELECT * FROM " + table,
			} {
				if n := icebergtest.Query(t, w, "SELECT count(*)::VARCHAR FROM ("+q+")"); n[0] != "0" {
					t.Errorf("%s: %s: %s rows differ from the control warehouse's: %s", name, table, n[0], q)
				}
			}
		}
		lk, err := iceberg.Open(t.Context(), "s3://lake/fhirlake", load.LakeOptions{Warehouse: m.warehouse, S3Endpoint: sl.s3.Endpoint, S3PathStyle: true, Catalog: sl.pg.DSN})
		if err != nil {
			t.Fatal(err)
		}
		defer lk.Close()
		icebergtest.CheckMirrorsWhere(t, w, lk, sl.s3.Dir, "data_source = '"+wk.source+"'", data...)
		icebergtest.CheckMirrorsWhere(t, w, lk, sl.s3.Dir, "source = '"+wk.source+"'", "fhirlake_runs", "fhirlake_watermarks", "fhirlake_resources", "fhirlake_deleted")
	}
	change := func(id, start string) {
		wk.sb.Clock().Advance(time.Hour)
		wk.sb.Update("ExplanationOfBenefit", id, func(r map[string]any) {
			r["billablePeriod"] = map[string]any{"start": start, "end": start} // moves years
		})
		wk.sb.Clock().Advance(time.Hour)
	}

	first := run(one)
	run(control)
	same("first run, machine one", one)

	change("eob-0001-02", "2019-03-01")
	wk.sb.Delete("ExplanationOfBenefit", "eob-0002-01")
	moved := run(two)
	run(control)
	if moved.Since == nil || !moved.Since.Equal(first.TransactionTime) {
		t.Errorf("the run on a new machine exported since %v, want the last run's transaction time %v", moved.Since, first.TransactionTime)
	}
	same("second run, machine two", two)

	// Another machine holds the lease: a run exits 7 naming it, and
	// neither exports nor creates its warehouse.
	t.Setenv("AWS_ACCESS_KEY_ID", sl.s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sl.s3.SecretKey)
	lk, err := iceberg.Open(t.Context(), "s3://lake/fhirlake", load.LakeOptions{Warehouse: filepath.Join(dir, "x.duckdb"), S3Endpoint: sl.s3.Endpoint, S3PathStyle: true, Catalog: sl.pg.DSN})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	lease, err := lk.Lease(t.Context(), wk.source, "elsewhere:/w.duckdb", "a run on host elsewhere", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	three := machine("three")
	var out strings.Builder
	err = sl.startWith(three, &out).Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitBusy || !strings.Contains(out.String(), "a run on host elsewhere") {
		t.Fatalf("a run while another machine holds the lease: %v, want exit %d naming the holder; output:\n%s", err, exitBusy, out.String())
	}
	if _, err := os.Stat(three.warehouse); err == nil {
		t.Error("the refused run created its warehouse")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(three.warehouse), "fhirlake-work", "jobs")); err == nil {
		t.Error("the refused run started an export")
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Machine one, stale now, restores the source and continues.
	change("eob-0003-01", "2018-06-01")
	again := run(one)
	run(control)
	if again.Since == nil || !again.Since.Equal(moved.TransactionTime) {
		t.Errorf("machine one's next run exported since %v, want machine two's transaction time %v", again.Since, moved.TransactionTime)
	}
	same("third run, machine one again", one)
}
