package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// benchDir holds the generated files of this test binary; TestMain removes it.
var benchDir string

func TestMain(m *testing.M) {
	if os.Getenv("GOGC") == "" {
		// Mirrors cmd/fhirlake's main, which collects less often (GC
		// percent 400): the numbers here are those the CLI gets.
		debug.SetGCPercent(400)
	}
	dir, err := os.MkdirTemp("", "fhirlake-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	benchDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fileKey struct {
	kind   Kind
	target int64
}

type genFile struct {
	path      string
	size      int64
	resources int64
}

var (
	filesMu sync.Mutex // guards files
	files   = map[fileKey]genFile{}
)

// input generates (once per binary) the file of kind with target bytes.
func input(tb testing.TB, kind Kind, target int64) genFile {
	tb.Helper()
	filesMu.Lock()
	defer filesMu.Unlock()
	k := fileKey{kind, target}
	if f, ok := files[k]; ok {
		return f
	}
	dir, err := os.MkdirTemp(benchDir, "gen-")
	if err != nil {
		tb.Fatal(err)
	}
	path, n, err := Generate(dir, kind, target)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	f := genFile{path: path, size: st.Size(), resources: n}
	files[k] = f
	return f
}

// countSink discards batches and counts their rows.
type countSink struct {
	rows    atomic.Int64
	rejects atomic.Int64
}

var _ transform.Sink = (*countSink)(nil)

func (s *countSink) WriteBatch(_ context.Context, _ string, rec arrow.RecordBatch) error {
	s.rows.Add(rec.NumRows())
	return nil
}

func (s *countSink) Reject(context.Context, transform.Reject) error {
	s.rejects.Add(1)
	return nil
}

// builtinEngine returns an engine for the built-in views, or only those
// named.
func builtinEngine(tb testing.TB, opts transform.Options, names ...string) *transform.Engine {
	tb.Helper()
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		tb.Fatal(err)
	}
	if len(names) > 0 {
		views = slices.DeleteFunc(views, func(v *transform.View) bool { return !slices.Contains(names, v.Name()) })
	}
	e, err := transform.NewEngine(views, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// transformFile runs the built-in views over path once and returns the
// view rows written (ResourcesTable excluded) and the elapsed time.
func transformFile(tb testing.TB, e *transform.Engine, path string) (int64, time.Duration) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var sink countSink
	start := time.Now()
	st, err := e.Transform(context.Background(), path, f, &sink)
	d := time.Since(start)
	if err != nil {
		tb.Fatal(err)
	}
	if st.Rejected != 0 || sink.rejects.Load() != 0 {
		tb.Fatalf("%d lines rejected, %d rejects reported", st.Rejected, sink.rejects.Load())
	}
	return sink.rows.Load() - st.Rows[transform.ResourcesTable], d
}

// benchFile runs run b.N times over the generated file of kind and
// reports MB/s and the rows/s of the time run measured.
func benchFile(b *testing.B, kind Kind, run func(path string) (rows int64, d time.Duration)) {
	in := input(b, kind, TargetBytes())
	b.SetBytes(in.size)
	b.ResetTimer()
	var rows int64
	var total time.Duration
	for range b.N {
		n, d := run(in.path)
		rows += n
		total += d
	}
	b.ReportMetric(float64(rows)/total.Seconds(), "rows/s")
}

func benchTransform(b *testing.B, kind Kind) {
	e := builtinEngine(b, transform.Options{})
	benchFile(b, kind, func(path string) (int64, time.Duration) { return transformFile(b, e, path) })
}

// BenchmarkTransformEOB runs every built-in view over an EOB-only file.
func BenchmarkTransformEOB(b *testing.B) { benchTransform(b, EOB) }

// BenchmarkTransformObservation runs every built-in view over an
// Observation-only file.
func BenchmarkTransformObservation(b *testing.B) { benchTransform(b, Observation) }

// BenchmarkTransformSmallFiles runs every built-in view over many small
// EOB inputs with one engine, the way an incremental export comes (a 1%
// change set of the 10 GB export is 60 files of about 480 resources).
func BenchmarkTransformSmallFiles(b *testing.B) {
	in := input(b, EOB, TargetBytes())
	data, err := os.ReadFile(in.path)
	if err != nil {
		b.Fatal(err)
	}
	const files, lines = 40, 480
	var parts [][]byte
	for range files {
		end := 0
		for range lines {
			i := bytes.IndexByte(data[end:], '\n')
			if i < 0 {
				b.Fatalf("%s holds fewer than %d lines", in.path, files*lines)
			}
			end += i + 1
		}
		parts, data = append(parts, data[:end]), data[end:]
	}
	e := builtinEngine(b, transform.Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i, p := range parts {
			var sink countSink
			if _, err := e.Transform(context.Background(), fmt.Sprintf("part%d.ndjson", i), bytes.NewReader(p), &sink); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestMemoryBounded checks that the Go heap a Transform needs does not grow
// with the input: a 100 MB file may not need much more than a 20 MB one.
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 120 MB of NDJSON")
	}
	e := builtinEngine(t, transform.Options{BatchRows: 8192})
	peak := func(mb int64) uint64 {
		in := input(t, EOB, mb*1e6)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var max atomic.Uint64
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for {
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > max.Load() {
					max.Store(ms.HeapInuse)
				}
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
		}()
		transformFile(t, e, in.path)
		close(done)
		wg.Wait()
		p := max.Load() - min(max.Load(), base.HeapInuse)
		t.Logf("%d MB file: peak heap in use %.1f MiB above the %.1f MiB baseline", mb, float64(p)/(1<<20), float64(base.HeapInuse)/(1<<20))
		return p
	}
	small, large := peak(20), peak(100)
	// GC timing makes the peak noisy, more so while other packages' tests
	// load the machine; a leak proportional to the input would show as
	// about 5x.
	if tol := 2*small + 16<<20; large > tol {
		t.Errorf("peak heap grew with input: %d MiB for 100 MB vs %d MiB for 20 MB", large>>20, small>>20)
	}
}
