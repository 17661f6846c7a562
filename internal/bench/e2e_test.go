//go:build duckdb_arrow

package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// BenchmarkEndToEnd is the user's job on both sides, on the same export:
// `fhirlake load` into a fresh warehouse and Hive lake, against the
// DuckDB-native pipeline (NativeStatements) building the same 16 tables
// in a DuckDB file and their Parquet lake. Each side runs as its own
// process, so its peak RSS is its own; they alternate, and the medians of
// FHIRLAKE_BENCH_ROUNDS rounds (default 3) are compared. Then, on
// fhirlake's warehouse, an incremental load of 1% of the resources in new
// versions (spread over every type, file and year) and a reload of the
// same files (nothing new: it should write nothing); and the full load,
// the incremental one and the reload again with an Iceberg lake
// (merge-on-read), for what they cost and write.
//
// Sizes are FHIRLAKE_BENCH_E2E_MB, comma-separated megabytes (default
// "250,1000"); exports have five years of history. The fhirlake binary is
// FHIRLAKE_BIN (make bench builds it), else it is built here.
//
//	make bench
//	FHIRLAKE_BENCH_E2E_MB=250,1000,10000 make bench
func BenchmarkEndToEnd(b *testing.B) {
	bin := fhirlakeBinary(b)
	rounds := envInt(b, "FHIRLAKE_BENCH_ROUNDS", 3)
	var table []string
	for _, mb := range e2eSizes(b) {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			dir := filepath.Join(benchDir, fmt.Sprintf("e2e-%d", mb))
			export, incr := filepath.Join(dir, "export"), filepath.Join(dir, "changes")
			st, err := GenerateExport(export, int64(mb)*1e6)
			if err != nil {
				b.Fatal(err)
			}
			changed, err := GenerateChanges(export, incr, 100)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(st.Bytes)
			for range b.N {
				var fl, nat []sideRun
				var lastFL string
				for r := range rounds {
					out := filepath.Join(dir, fmt.Sprintf("run-%d", r))
					sides := []func(){
						func() {
							os.RemoveAll(out + "-fl")
							fl = append(fl, runFhirlake(b, bin, export, out+"-fl"))
							lastFL = out + "-fl"
						},
						func() {
							os.RemoveAll(out + "-native")
							nat = append(nat, runNative(b, export, out+"-native"))
							os.RemoveAll(out + "-native")
						},
					}
					if r%2 == 1 {
						sides[0], sides[1] = sides[1], sides[0]
					}
					sides[0]()
					sides[1]()
					if r < rounds-1 {
						os.RemoveAll(out + "-fl")
					}
				}
				f, n := medianRun(fl), medianRun(nat)
				inc := incrementalRun(b, bin, incr, lastFL)
				same := incrementalRun(b, bin, incr, lastFL)
				os.RemoveAll(lastFL)
				// The same on an Iceberg lake (merge-on-read).
				ice := filepath.Join(dir, "iceberg")
				os.RemoveAll(ice)
				iceFull := runFhirlake(b, bin, export, ice, "--lake-format", "iceberg")
				iceInc := incrementalRun(b, bin, incr, ice, "--lake-format", "iceberg")
				iceSame := incrementalRun(b, bin, incr, ice, "--lake-format", "iceberg")
				os.RemoveAll(ice)
				b.Logf("Iceberg lake: full %v; incremental %+v; unchanged reload %+v", iceFull, iceInc, iceSame)
				b.Logf("%d MB (%d members, %d resources, %d files): fhirlake %v, native %v", mb, st.Members, st.Resources, st.Files, runsOf(fl), runsOf(nat))
				row := fmt.Sprintf("| %s | %.1f s | %.1f s | **%.2f×** | %d MB | %d MB | %.1f MB (%.2f×) | %.1f MB | %.1f MB | %.2f s (%.1f%% of full), %d MB peak, %.1f%% of the lake rewritten, warehouse %+.0f%% | %.2f s, %s written | %.2f s (%.1f%% of its full load's %.1f s), %d MB peak, %.1f%% of the lake written; unchanged reload %.2f s, %s written |",
					mbLabel(mb), f.secs, n.secs, n.secs/f.secs, f.rssMB, n.rssMB,
					float64(f.warehouse)/1e6, float64(f.warehouse)/float64(n.warehouse), float64(f.lake)/1e6, float64(n.lake)/1e6,
					inc.secs, 100*inc.secs/f.secs, inc.rssMB, 100*float64(inc.lakeWritten)/float64(inc.lakeSize), 100*float64(inc.warehouseAfter-f.warehouse)/float64(f.warehouse),
					same.secs, humanBytes(same.lakeWritten+max(same.warehouseAfter-inc.warehouseAfter, 0)),
					iceInc.secs, 100*iceInc.secs/iceFull.secs, iceFull.secs, iceInc.rssMB, 100*float64(iceInc.lakeWritten)/float64(iceInc.lakeSize),
					iceSame.secs, humanBytes(iceSame.lakeWritten+max(iceSame.warehouseAfter-iceInc.warehouseAfter, 0)))
				table = append(table, row)
				b.Logf("%d changed resources; incremental %+v; unchanged reload %+v", changed, inc, same)
				b.ReportMetric(n.secs/f.secs, "speed-ratio")
				b.ReportMetric(float64(f.rssMB), "fhirlake-rss-MB")
				b.ReportMetric(float64(n.rssMB), "native-rss-MB")
				b.ReportMetric(inc.secs/f.secs, "incr-time-ratio")
				b.ReportMetric(float64(inc.lakeWritten)/float64(inc.lakeSize), "incr-lake-rewritten")
				b.ReportMetric(float64(iceInc.lakeWritten)/float64(iceInc.lakeSize), "iceberg-incr-lake-written")
				b.ReportMetric(0, "ns/op")
			}
			os.RemoveAll(dir)
		})
	}
	if len(table) > 0 {
		fmt.Printf("\n| input | fhirlake load | DuckDB-native | speed (native time / ours) | fhirlake peak RSS | native peak RSS | warehouse (vs native) | fhirlake lake | native lake | 1%% incremental | unchanged reload | 1%% incremental and unchanged reload, Iceberg lake |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n%s\n\n",
			strings.Join(table, "\n"))
	}
}

// sideRun is one process's run.
type sideRun struct {
	secs      float64
	rssMB     int64
	warehouse int64 // bytes of the database file
	lake      int64 // bytes of the lake
}

func (r sideRun) String() string {
	return fmt.Sprintf("%.2fs/%dMB", r.secs, r.rssMB)
}

func runsOf(rs []sideRun) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, " ")
}

// medianRun is the run of median time.
func medianRun(rs []sideRun) sideRun {
	secs := make([]float64, len(rs))
	for i, r := range rs {
		secs[i] = r.secs
	}
	m := median(secs)
	best := rs[0]
	for _, r := range rs {
		if abs(r.secs-m) < abs(best.secs-m) {
			best = r
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// runFhirlake loads export into a new warehouse and lake under out.
func runFhirlake(b *testing.B, bin, export, out string, extra ...string) sideRun {
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	wh, lake := filepath.Join(out, "warehouse.duckdb"), filepath.Join(out, "lake")
	args := append([]string{"--log-level", "warn", "load", "--in", export, "--warehouse", wh, "--lake", lake, "--source", "bench"}, extra...)
	secs, rss := timed(b, exec.Command(bin, args...))
	return sideRun{secs: secs, rssMB: rss, warehouse: treeSize(b, wh), lake: treeSize(b, lake)}
}

// runNative runs the DuckDB-native pipeline in a child process (this test
// binary, TestNativeHelperProcess) into a DuckDB file and lake under out.
func runNative(b *testing.B, export, out string) sideRun {
	lake := filepath.Join(out, "lake")
	if err := os.MkdirAll(lake, 0o755); err != nil {
		b.Fatal(err)
	}
	db := filepath.Join(out, "native.duckdb")
	cmd := exec.Command(os.Args[0], "-test.run=^TestNativeHelperProcess$")
	cmd.Env = append(os.Environ(), "FHIRLAKE_NATIVE_IN="+export, "FHIRLAKE_NATIVE_DB="+db, "FHIRLAKE_NATIVE_LAKE="+lake)
	secs, rss := timed(b, cmd)
	return sideRun{secs: secs, rssMB: rss, warehouse: treeSize(b, db), lake: treeSize(b, lake)}
}

// TestNativeHelperProcess is the native side's process; it does nothing
// unless BenchmarkEndToEnd starts it.
func TestNativeHelperProcess(t *testing.T) {
	in := os.Getenv("FHIRLAKE_NATIVE_IN")
	if in == "" {
		t.Skip("the native pipeline's process for BenchmarkEndToEnd")
	}
	conn, err := duckdb.NewConnector(os.Getenv("FHIRLAKE_NATIVE_DB"), nil)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1) // the statements share temporary tables
	for _, s := range NativeStatements(in, os.Getenv("FHIRLAKE_NATIVE_LAKE")) {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
}

// incrementalStats is one incremental load into an existing warehouse.
type incrementalStats struct {
	secs           float64
	rssMB          int64
	lakeWritten    int64 // bytes of lake files new or changed
	lakeSize       int64 // the lake's bytes afterwards
	warehouseAfter int64
}

// incrementalRun loads dir into the warehouse and lake under out.
func incrementalRun(b *testing.B, bin, dir, out string, extra ...string) incrementalStats {
	wh, lake := filepath.Join(out, "warehouse.duckdb"), filepath.Join(out, "lake")
	before := stamps(b, lake)
	args := append([]string{"--log-level", "warn", "load", "--in", dir, "--warehouse", wh, "--lake", lake, "--source", "bench"}, extra...)
	secs, rss := timed(b, exec.Command(bin, args...))
	st := incrementalStats{secs: secs, rssMB: rss, warehouseAfter: treeSize(b, wh)}
	for path, s := range stamps(b, lake) {
		st.lakeSize += s.size
		if old, ok := before[path]; !ok || old != s {
			st.lakeWritten += s.size
		}
	}
	return st
}

// timed runs cmd and returns its wall time and peak RSS (MB).
func timed(b *testing.B, cmd *exec.Cmd) (float64, int64) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	secs := time.Since(start).Seconds()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return secs, 0
	}
	return secs, ru.Maxrss / 1024 // Linux reports kilobytes
}

type stamp struct {
	size  int64
	mtime time.Time
}

func stamps(b *testing.B, root string) map[string]stamp {
	out := map[string]stamp{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = stamp{fi.Size(), fi.ModTime()}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		b.Fatal(err)
	}
	return out
}

// treeSize is the bytes of a file, or of the files under a folder.
func treeSize(b *testing.B, root string) int64 {
	var n int64
	for _, s := range stamps(b, root) {
		n += s.size
	}
	return n
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

func mbLabel(mb int) string {
	if mb >= 1000 {
		return fmt.Sprintf("%g GB", float64(mb)/1000)
	}
	return fmt.Sprintf("%d MB", mb)
}

func e2eSizes(b *testing.B) []int {
	v := os.Getenv("FHIRLAKE_BENCH_E2E_MB")
	if v == "" {
		v = "250,1000"
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 {
			b.Fatalf("FHIRLAKE_BENCH_E2E_MB=%q: want megabytes, 10 or more, comma-separated", v)
		}
		out = append(out, n)
	}
	return out
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// fhirlakeBinary is $FHIRLAKE_BIN, or a binary built now from this
// module.
func fhirlakeBinary(b *testing.B) string {
	if p := os.Getenv("FHIRLAKE_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			b.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(benchDir, "fhirlake")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-tags", "duckdb_arrow", "-o", out, "github.com/fhirlake/fhirlake/cmd/fhirlake")
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build fhirlake: %v\n%s", err, msg)
	}
	return out
}
