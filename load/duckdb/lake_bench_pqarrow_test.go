//go:build duckdb_arrow && pqarrow

package duckdb

import (
	"context"
	"io"

	"github.com/apache/arrow-go/v18/arrow/array"
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
	return streamBench(ctx, w, dir, func(rr array.RecordReader, out io.Writer) error {
		props := parquet.NewWriterProperties(
			parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithMaxRowGroupLength(rowGroupRows),
			parquet.WithDictionaryDefault(true),
		)
		fw, err := pqarrow.NewFileWriter(rr.Schema(), out, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
		if err != nil {
			return err
		}
		for rr.Next() {
			if err := fw.WriteBuffered(rr.RecordBatch()); err != nil {
				fw.Close()
				return err
			}
		}
		return fw.Close()
	})
}
