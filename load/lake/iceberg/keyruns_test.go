package iceberg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	iceio "github.com/apache/iceberg-go/io"
)

// runsOf reads column 0 of every row group of the file at path with
// eachRun, expanded to one value per row ("" marks a null, which the
// values never are), and checks that the runs are contiguous and that a
// run's dictionary index always stands for the same value.
func runsOf(t *testing.T, path string) (vals []string, coded, plain int, ok bool) {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	ok = true
	for rg := range pf.NumRowGroups() {
		var next int64
		byCode := map[int32]string{}
		done, err := eachRun(pf.RowGroup(rg), 0, func(r valueRun) bool {
			if r.row != next || r.n <= 0 {
				t.Fatalf("row group %d: a run of %d rows at row %d, want one at %d", rg, r.n, r.row, next)
			}
			next += r.n
			v := string(r.val)
			if r.val == nil {
				v = ""
			}
			if r.code < 0 && r.val != nil {
				plain++
			}
			if r.code >= 0 {
				coded++
				if w, seen := byCode[r.code]; seen && w != v {
					t.Fatalf("row group %d: index %d is %q and %q", rg, r.code, w, v)
				}
				byCode[r.code] = v
			}
			for range r.n {
				vals = append(vals, v)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		ok = ok && done
	}
	return vals, coded, plain, ok
}

// TestEachRunReadsWhatArrowReads writes random string columns (runs of
// one value, nulls, long values) with the writer settings fhirlake and
// other engines use, and checks that eachRun reads back each row's value:
// dictionary-coded and plain pages, a dictionary that overflows into
// plain pages, data pages v1 and v2, with and without compression, in
// small and large pages and row groups.
func TestEachRunReadsWhatArrowReads(t *testing.T) {
	type setting struct {
		name string
		opts []parquet.WriterProperty
	}
	settings := []setting{
		{"dictionary", nil},
		{"plain", []parquet.WriterProperty{parquet.WithDictionaryDefault(false)}},
		{"dictionary overflowing into plain pages", []parquet.WriterProperty{parquet.WithDictionaryPageSizeLimit(2000),
			parquet.WithDataPageSize(256), parquet.WithBatchSize(64)}},
		{"data pages v2", []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2)}},
		{"data pages v2, plain, zstd", []parquet.WriterProperty{parquet.WithDataPageVersion(parquet.DataPageV2),
			parquet.WithDictionaryDefault(false), parquet.WithCompression(compress.Codecs.Zstd)}},
		{"zstd, small pages and row groups", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Zstd),
			parquet.WithDataPageSize(256), parquet.WithMaxRowGroupLength(333), parquet.WithBatchSize(50)}},
		{"snappy, v2, small pages", []parquet.WriterProperty{parquet.WithCompression(compress.Codecs.Snappy),
			parquet.WithDataPageVersion(parquet.DataPageV2), parquet.WithDataPageSize(512), parquet.WithBatchSize(64)}},
	}
	rng := rand.New(rand.NewPCG(15, 1))
	for seed := range 6 {
		// Runs of 1 to 40 rows of one value, from a pool of 1 to 3000
		// values (so index widths from 0 to 12 bits), some null.
		pool := make([]string, 1+rng.IntN([]int{1, 8, 300, 3000, 3000, 60}[seed]))
		for i := range pool {
			pool[i] = fmt.Sprintf("%08x-%s", rng.Uint32(), string(bytes.Repeat([]byte{'x'}, rng.IntN(1+seed*20))))
		}
		var rows []keyRow
		for len(rows) < 5000 {
			var v *string
			if seed%2 == 1 && rng.IntN(7) == 0 {
				v = nil
			} else {
				v = &pool[rng.IntN(len(pool))]
			}
			for range 1 + rng.IntN(40) {
				rows = append(rows, keyRow{v})
			}
		}
		want := make([]string, len(rows))
		for i, r := range rows {
			if r[0] != nil {
				want[i] = *r[0]
			}
		}
		for _, s := range settings {
			for _, nullable := range []bool{true, false} {
				if !nullable && seed%2 == 1 {
					continue // nulls need a nullable column
				}
				t.Run(fmt.Sprintf("%d values, nulls %v/%s/nullable=%v", len(pool), seed%2 == 1, s.name, nullable), func(t *testing.T) {
					path := writeStringFile(t, []string{"id"}, rows, nullable, s.opts...)
					got, coded, plain, ok := runsOf(t, path)
					if !ok {
						t.Fatal("eachRun did not read the file")
					}
					if !slices.Equal(got, want) {
						t.Fatalf("read %d values, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
					}
					wantCoded := s.name != "plain" && s.name != "data pages v2, plain, zstd"
					wantPlain := !wantCoded || (s.name == "dictionary overflowing into plain pages" && len(pool) > 100)
					if wantCoded != (coded > 0) || wantPlain != (plain > 0) {
						t.Errorf("%d runs read by dictionary index, %d plain", coded, plain)
					}
				})
			}
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestEachRunLeavesOtherColumns: a column eachRun does not read (another
// encoding of strings, not strings) is refused before fn sees a run, and
// eachMatch still finds the rows, through Arrow.
func TestEachRunLeavesOtherColumns(t *testing.T) {
	cols := []string{"data_source", "id"}
	rows := []keyRow{{str("s"), str("a")}, {str("s"), str("b")}, {str("s"), str("c")}, {str("s"), str("b")}}
	delta := writeStringFile(t, cols, rows, true, parquet.WithDictionaryDefault(false), parquet.WithEncoding(parquet.Encodings.DeltaByteArray))
	pf, err := file.OpenParquetFile(delta, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	for c := range cols {
		ok, err := eachRun(pf.RowGroup(0), c, func(valueRun) bool { t.Fatal("a run of a DELTA_BYTE_ARRAY column"); return false })
		if ok || err != nil {
			t.Errorf("DELTA_BYTE_ARRAY: ok %v, err %v; want false and no error", ok, err)
		}
	}
	var got []int64
	match := rowKeys{cols: cols, ids: idSetsOf(map[string]struct{}{joinKey("s", "b"): {}})}
	if err := eachMatch(context.Background(), iceio.LocalFS{}, delta, match, []int{1001, 1002}, 0, -1, func(pos int64) { got = append(got, pos) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("eachMatch through Arrow: positions %v, want [1 3]", got)
	}

	// A column of numbers.
	sc := arrow.NewSchema([]arrow.Field{{Name: "n", Type: arrow.PrimitiveTypes.Int64}}, nil)
	nb := array.NewInt64Builder(memory.DefaultAllocator)
	defer nb.Release()
	nb.AppendValues([]int64{1, 2}, nil)
	arr := nb.NewArray()
	defer arr.Release()
	rec := array.NewRecordBatch(sc, []arrow.Array{arr}, 2)
	defer rec.Release()
	nf, err := file.OpenParquetFile(writeRecordFile(t, rec), false)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	if ok, err := eachRun(nf.RowGroup(0), 0, func(valueRun) bool { t.Fatal("a run of a number column"); return false }); ok || err != nil {
		t.Errorf("INT64: ok %v, err %v; want false and no error", ok, err)
	}

	path := writeKeyFile(t, []string{"data_source", "id"}, []keyRow{{str("s"), str("a")}, {str("s"), str("b")}}, 10, true, 1<<10)
	pf2, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf2.Close()
	if ok, err := eachRun(pf2.RowGroup(0), 2, func(valueRun) bool { return true }); ok || err == nil {
		t.Errorf("a column past the last: ok %v, err %v; want an error", ok, err)
	}
}

// TestHybrid decodes hand-made RLE/bit-packing hybrid runs, and refuses
// truncated and out-of-range ones with errCorrupt.
func TestHybrid(t *testing.T) {
	type run struct {
		v uint32
		k int64
	}
	cases := []struct {
		name  string
		buf   []byte
		width uint
		want  []run
		bad   bool
	}{
		// header 10<<1 = 20: 10 repeats of 0x0102 in two bytes
		{"repeated, 9 bits", []byte{20, 0x02, 0x01}, 9, []run{{0x102, 10}}, false},
		// header 1<<1|1: one group of eight 3-bit values 0..7
		{"bit-packed, 3 bits", []byte{3, 0x88, 0xc6, 0xfa}, 3, []run{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}, {6, 1}, {7, 1}}, false},
		{"width 0", []byte{6}, 0, []run{{0, 3}}, false},
		{"repeated then bit-packed", []byte{4, 1, 3, 0xff}, 1, []run{{1, 2}, {1, 1}, {1, 1}}, false},
		{"32 bits", []byte{2, 0xff, 0xff, 0xff, 0xff}, 32, []run{{0xffffffff, 1}}, false},
		{"no header", nil, 1, nil, true},
		{"repeated, value cut", []byte{20, 0x02}, 9, nil, true},
		{"repeated, none", []byte{0, 1}, 1, nil, true},
		{"repeated, value too wide", []byte{2, 0x04}, 2, nil, true},
		{"bit-packed, cut", []byte{5, 0xff}, 3, nil, true},
		{"header past the end", []byte{0x80}, 1, nil, true},
	}
	for _, c := range cases {
		var h hybrid
		h.reset(c.buf, c.width)
		var got []run
		var err error
		for range len(c.want) + 1 {
			var r run
			if r.v, r.k, err = h.next(); err != nil {
				break
			}
			got = append(got, r)
			if len(got) == len(c.want) && !c.bad {
				break
			}
		}
		if c.bad {
			if !errors.Is(err, errCorrupt) {
				t.Errorf("%s: %v after %v, want errCorrupt", c.name, err, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// FuzzHybrid: the hybrid decoder never panics and never returns a value
// wider than its width or an empty run.
func FuzzHybrid(f *testing.F) {
	f.Add([]byte{20, 0x02, 0x01}, uint8(9))
	f.Add([]byte{3, 0x88, 0xc6, 0xfa}, uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, uint8(32))
	f.Fuzz(func(t *testing.T, buf []byte, width uint8) {
		w := uint(width % 33)
		var h hybrid
		h.reset(buf, w)
		for range 1000 {
			v, k, err := h.next()
			if err != nil {
				if !errors.Is(err, errCorrupt) {
					t.Fatalf("error %v is not errCorrupt", err)
				}
				return
			}
			if k <= 0 || (w < 32 && uint64(v) >= 1<<w) {
				t.Fatalf("run of %d of %d at width %d", k, v, w)
			}
		}
	})
}
