//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

func init() {
	extraBenchWriters = append(extraBenchWriters, benchWriter{"parquet-go", parquetGoWriter})
}

// benchRow is one row of the bench table for parquet-go, whose writer is
// driven by Go struct tags: decimals as unscaled int64, dates as days.
type benchRow struct {
	EOBID           string     `parquet:"eob_id,dict"`
	Idx             int32      `parquet:"idx"`
	Sequence        int32      `parquet:"sequence"`
	ProductSystem   string     `parquet:"product_system,dict"`
	ProductCode     string     `parquet:"product_code,dict"`
	RevenueCode     string     `parquet:"revenue_code,dict"`
	ServicedStart   *time.Time `parquet:"serviced_start,date,optional"`
	ServicedEnd     time.Time  `parquet:"serviced_end,date"`
	Quantity        int64      `parquet:"quantity,decimal(2:12)"`
	Net             int64      `parquet:"net,decimal(2:14)"`
	Allowed         int64      `parquet:"allowed,decimal(2:14)"`
	LocationID      string     `parquet:"location_id"`
	MetaLastUpdated time.Time  `parquet:"meta_last_updated,timestamp(microsecond)"`
}

// parquetGoWriter streams the rows out of DuckDB as Arrow record batches,
// converts each to Go structs and writes them with parquet-go: the cost a
// Go-side writer pays, conversion included.
func parquetGoWriter(ctx context.Context, w *Warehouse, dir string) error {
	return streamBench(ctx, w, dir, func(rr array.RecordReader, out io.Writer) error {
		pw := parquet.NewGenericWriter[benchRow](out, parquet.Compression(&zstd.Codec{}), parquet.MaxRowsPerRowGroup(rowGroupRows))
		var rows []benchRow
		for rr.Next() {
			rec := rr.RecordBatch()
			rows = rows[:0]
			for i := 0; i < int(rec.NumRows()); i++ {
				rows = append(rows, rowAt(rec, i))
			}
			if _, err := pw.Write(rows); err != nil {
				return fmt.Errorf("parquet-go write: %w", err)
			}
		}
		return pw.Close()
	})
}

func rowAt(rec arrow.RecordBatch, i int) benchRow {
	str := func(c int) string { return rec.Column(c).(*array.String).Value(i) }
	i32 := func(c int) int32 { return rec.Column(c).(*array.Int32).Value(i) }
	day := func(c int) time.Time { return rec.Column(c).(*array.Date32).Value(i).ToTime() }
	dec := func(c int) int64 {
		switch a := rec.Column(c).(type) {
		case *array.Decimal128:
			return int64(a.Value(i).LowBits())
		case *array.Int64:
			return a.Value(i)
		}
		panic(fmt.Sprintf("column %d: unexpected %T", c, rec.Column(c)))
	}
	r := benchRow{
		EOBID: str(0), Idx: i32(1), Sequence: i32(2), ProductSystem: str(3), ProductCode: str(4), RevenueCode: str(5),
		ServicedEnd: day(7), Quantity: dec(8), Net: dec(9), Allowed: dec(10), LocationID: str(11),
		MetaLastUpdated: time.UnixMicro(int64(rec.Column(12).(*array.Timestamp).Value(i))).UTC(),
	}
	if !rec.Column(6).IsNull(i) {
		t := day(6)
		r.ServicedStart = &t
	}
	return r
}
