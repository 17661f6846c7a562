//go:build duckdb_arrow && pqarrow

package load

import (
	"bufio"
	"context"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

func init() {
	extraBenchWriters = append(extraBenchWriters, benchWriter{"pqarrow", pqarrowWriter})
}

// pqarrowWriter streams the rows out of DuckDB as Arrow record batches and
// writes them with arrow-go's pqarrow.
func pqarrowWriter(ctx context.Context, w *Warehouse, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rr, err := w.ar.QueryContext(ctx, "SELECT * FROM bench")
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
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		parquet.WithMaxRowGroupLength(rowGroupRows),
		parquet.WithDictionaryDefault(true),
	)
	fw, err := pqarrow.NewFileWriter(rr.Schema(), bw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return err
	}
	for rr.Next() {
		if err := fw.WriteBuffered(rr.RecordBatch()); err != nil {
			fw.Close()
			return err
		}
	}
	if err := rr.Err(); err != nil {
		fw.Close()
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
