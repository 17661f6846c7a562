//go:build duckdb_arrow

package duckdb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// benchRows is the size of the table BenchmarkLakeWriters writes; set
// FHIRLAKE_BENCH_ROWS to change it.
func benchRows(b *testing.B) int {
	n := 3_000_000
	if s := os.Getenv("FHIRLAKE_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("FHIRLAKE_BENCH_ROWS: %v", err)
		}
		n = v
	}
	return n
}

// benchTableSQL builds an eob_item-like table: strings of low and high
// cardinality, decimals, dates (5 service years and some nulls), timestamps.
const benchTableSQL = `
CREATE OR REPLACE TABLE bench AS
SELECT
	'eob-' || (range // 4)::VARCHAR                              AS eob_id,
	(range % 4)::INTEGER                                         AS idx,
	(range % 4 + 1)::INTEGER                                     AS sequence,
	'http://www.ama-assn.org/go/cpt'                             AS product_system,
	(99201 + range % 300)::VARCHAR                               AS product_code,
	lpad((range % 1000)::VARCHAR, 4, '0')                        AS revenue_code,
	CASE WHEN range % 97 = 0 THEN NULL
	     ELSE DATE '2020-01-01' + ((range * 7919) % 1826)::INTEGER END AS serviced_start,
	DATE '2020-01-02' + ((range * 7919) % 1826)::INTEGER          AS serviced_end,
	((range % 5) + 1)::DECIMAL(12, 2)                            AS quantity,
	((range * 37) % 100000 / 100.0)::DECIMAL(14, 2)              AS net,
	((range * 31) % 90000 / 100.0)::DECIMAL(14, 2)               AS allowed,
	'Location/' || (range % 5000)::VARCHAR                       AS location_id,
	TIMESTAMPTZ '2024-06-01 00:00:00+00' + to_seconds(range % 31536000) AS meta_last_updated
FROM range(?)`

// lakeWriter writes table bench of w into the folder path.
type lakeWriter func(ctx context.Context, w *Warehouse, path string) error

type benchWriter struct {
	name  string
	write lakeWriter
}

// streamBench streams the bench table out of DuckDB as Arrow record
// batches to write, which writes them to the lake file of dir through w;
// the file is flushed and closed afterwards. It is the common part of the
// Go-side writers the benchmark compares.
func streamBench(ctx context.Context, wh *Warehouse, dir string, write func(rr array.RecordReader, w io.Writer) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rr, err := wh.ar.QueryContext(ctx, "SELECT * FROM bench")
	if err != nil {
		return err
	}
	defer rr.Release()
	f, err := os.Create(filepath.Join(dir, LakeFile))
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(rr, bw); err != nil {
		return err
	}
	if err := rr.Err(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// extraBenchWriters are writers whose dependencies are not in go.mod; the
// files adding them carry their own build tags.
var extraBenchWriters []benchWriter

// BenchmarkLakeWriters compares the Parquet writers the lake could use on
// the same table. Run it with
//
//	go test -tags duckdb_arrow -run '^$' -bench LakeWriters -benchtime 3x ./load/
//
// arrow-go's pqarrow joins with the build tag pqarrow (kept behind a tag
// because it imports arrow/flight, hence grpc, into the test binary):
//
//	go test -tags 'duckdb_arrow pqarrow' -run '^$' -bench LakeWriters -benchtime 3x ./load/
//
// The figures recorded at the top of lake.go come from it.
func BenchmarkLakeWriters(b *testing.B) {
	ctx := b.Context()
	w, err := Open(ctx, filepath.Join(b.TempDir(), "bench.duckdb"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	n := benchRows(b)
	if err := w.exec(ctx, benchTableSQL, n); err != nil {
		b.Fatal(err)
	}
	want, err := w.describe(ctx, "SELECT * FROM bench")
	if err != nil {
		b.Fatal(err)
	}
	writers := append([]benchWriter{
		{"duckdb-copy", copyWriter("SELECT * FROM bench")},
		{"duckdb-copy-per-year", copyPerYear},
		{"writelake-partitioned", writeLakePartitioned},
	}, extraBenchWriters...)
	for _, wr := range writers {
		b.Run(wr.name, func(b *testing.B) {
			dir := b.TempDir()
			var size int64
			start := time.Now()
			for i := 0; i < b.N; i++ {
				path := filepath.Join(dir, fmt.Sprintf("out%d", i))
				if err := wr.write(ctx, w, path); err != nil {
					b.Fatal(err)
				}
				size = dirSize(b, path)
			}
			secs := time.Since(start).Seconds() / float64(b.N)
			b.ReportMetric(float64(n)/secs, "rows/s")
			b.ReportMetric(float64(size)/1e6/secs, "MB/s")
			b.ReportMetric(float64(size)/1e6, "file_MB")
			// The files must read back with the table's types.
			got, err := w.describe(ctx, "SELECT * FROM read_parquet("+sqlString(filepath.Join(dir, "out0", "**", LakeFile))+", hive_partitioning = false)")
			if err != nil {
				b.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				b.Errorf("types read back (-want +got):\n%s", diff)
			}
		})
	}
}

func copyWriter(query string) lakeWriter {
	return func(ctx context.Context, w *Warehouse, dir string) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return w.exec(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)",
			query, sqlString(filepath.Join(dir, LakeFile)), rowGroupRows))
	}
}

// copyPerYear is what WriteLake does for a partitioned table: one COPY per
// partition value.
func copyPerYear(ctx context.Context, w *Warehouse, dir string) error {
	p := &load.Partition{Column: "serviced_start", Name: "service_year"}
	vals, err := w.queryStrings(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM bench", partitionExpr(p)))
	if err != nil {
		return err
	}
	for _, v := range vals {
		q := fmt.Sprintf("SELECT * FROM bench WHERE %s = %s", partitionExpr(p), sqlString(v))
		if err := copyWriter(q)(ctx, w, filepath.Join(dir, p.Name+"="+v)); err != nil {
			return err
		}
	}
	return nil
}

// writeLakePartitioned is WriteLake itself on a table partitioned by year:
// one COPY ... PARTITION_BY into a staging folder, then a rename per file.
func writeLakePartitioned(ctx context.Context, w *Warehouse, dir string) error {
	t := load.Table{Name: "bench", Key: "eob_id", Partition: &load.Partition{Column: "serviced_start", Name: "service_year"}}
	return w.WriteLake(ctx, dir, []load.Table{t}, nil)
}

func dirSize(b *testing.B, dir string) int64 {
	b.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
