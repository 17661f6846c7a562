//go:build duckdb_arrow

package pipeline_test

import (
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/testserver"
	"github.com/fhirlake/fhirlake/load"
)

// BenchmarkLakes runs the same two runs against the sandbox, a full one and
// an incremental one (1% of the patients touched; the first claim of 1% of
// the members changed, half of them moving to another year; the first claim
// of 0.2% deleted), with no lake, the Hive-Parquet lake, an Iceberg lake on
// a folder and an Iceberg lake on versitygw S3. It reports each run's time,
// the bytes the incremental run wrote to the lake and the lake's size
// afterwards (data, metadata and the catalog; the warehouse is the same in
// every case and left out). FHIRLAKE_BENCH_MEMBERS sets the sandbox's size
// (default 2000).
//
//	make bench, or:
//	FHIRLAKE_VERSITYGW=.tools/versitygw go test -tags duckdb_arrow -run '^$' -bench Lakes -benchtime 1x ./internal/pipeline/
func BenchmarkLakes(b *testing.B) {
	members := 2000
	if v := os.Getenv("FHIRLAKE_BENCH_MEMBERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			b.Fatalf("FHIRLAKE_BENCH_MEMBERS=%q: want a number of members, 10 or more", v)
		}
		members = n
	}
	for _, lake := range []string{"none", "parquet", "iceberg-folder", "iceberg-s3"} {
		b.Run(lake, func(b *testing.B) {
			var full, incr time.Duration
			var written, total int64
			for range b.N {
				f, i, w, t := lakeRuns(b, members, lake)
				full, incr, written, total = full+f, incr+i, written+w, total+t
			}
			n := float64(b.N)
			b.ReportMetric(full.Seconds()/n, "full-s")
			b.ReportMetric(incr.Seconds()/n, "incr-s")
			b.ReportMetric(float64(written)/n, "incr-lake-bytes")
			b.ReportMetric(float64(total)/n, "lake-bytes")
			b.ReportMetric(0, "ns/op") // the two runs are the figures, not the loop
		})
	}
}

// lakeRuns makes a fresh sandbox and warehouse, runs a full and an
// incremental run into the lake kind, and returns their times, the lake
// bytes the incremental run wrote and the lake's size after it.
func lakeRuns(b *testing.B, members int, kind string) (full, incr time.Duration, written, total int64) {
	b.StopTimer()
	defer b.StartTimer()
	sb, err := sandbox.New(sandbox.Config{Members: members, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	dir := b.TempDir()
	p := pipelineFor(b, srv.URL, dir)
	p.BatchRows = 0    // the default batch size, as users run it
	var roots []string // where the lake's bytes land
	switch kind {
	case "none":
		p.Lake = ""
	case "parquet":
		roots = []string{p.Lake}
	case "iceberg-folder":
		icebergLake(&p)
		roots = []string{p.Lake, filepath.Join(dir, "catalog.db")}
	case "iceberg-s3":
		s3 := testserver.S3(b)
		s3.Bucket(b, "lake")
		b.Setenv("AWS_ACCESS_KEY_ID", s3.AccessKey)
		b.Setenv("AWS_SECRET_ACCESS_KEY", s3.SecretKey)
		p.LakeFormat = "iceberg"
		p.Lake = "s3://lake/fhirlake"
		p.LakeOptions = load.LakeOptions{S3Endpoint: s3.Endpoint, S3PathStyle: true}
		roots = []string{s3.Dir, filepath.Join(dir, "catalog.db")}
	}
	start := time.Now()
	if _, err := p.Run(b.Context()); err != nil {
		b.Fatalf("full run: %v", err)
	}
	full = time.Since(start)

	sb.Clock().Advance(time.Hour)
	changeForBench(b, sb, members)
	sb.Clock().Advance(time.Hour)
	before := lakeFiles(b, roots)
	start = time.Now()
	if _, err := p.Run(b.Context()); err != nil {
		b.Fatalf("incremental run: %v", err)
	}
	incr = time.Since(start)
	for path, fi := range lakeFiles(b, roots) {
		total += fi.size
		if old, ok := before[path]; !ok || old != fi {
			written += fi.size
		}
	}
	return full, incr, written, total
}

// changeForBench touches 1% of the patients, changes 1% of the members'
// first claims (every other one to another year) and deletes 0.2% of them.
func changeForBench(b *testing.B, sb *sandbox.Server, members int) {
	for i := 1; i <= members; i += 100 {
		if err := sb.Touch("Patient", fmt.Sprintf("pat-%04d", i)); err != nil {
			b.Fatal(err)
		}
	}
	changed := 0
	for i := 2; i <= members; i += 100 {
		err := sb.Update("ExplanationOfBenefit", fmt.Sprintf("eob-%04d-01", i), func(r map[string]any) {
			if changed%2 == 0 {
				r["billablePeriod"] = map[string]any{"start": "2019-03-01", "end": "2019-03-01"}
			}
			r["outcome"] = "partial"
		})
		if err == nil {
			changed++
		}
	}
	for i := 3; i <= members; i += 500 {
		sb.Delete("ExplanationOfBenefit", fmt.Sprintf("eob-%04d-01", i)) // a member without claims has none to delete
	}
	if changed == 0 {
		b.Fatal("no claim changed: the sandbox's ids are not what the benchmark expects")
	}
}

type fileStamp struct {
	size  int64
	mtime time.Time
}

// lakeFiles lists the files under roots (folders or single files) with
// their sizes and modification times.
func lakeFiles(b *testing.B, roots []string) map[string]fileStamp {
	files := map[string]fileStamp{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files[path] = fileStamp{fi.Size(), fi.ModTime()}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
	}
	return files
}
