package iceberg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	iceberggo "github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/apache/iceberg-go/table"
)

// keyRow is one row of a test file of key columns; nil is null.
type keyRow []*string

func str(s string) *string { return &s }

// writeKeyFile writes rows as a Parquet file of nullable string columns
// named cols, with the given row group size and dictionary encoding on or
// off, in pages of about pageSize bytes.
func writeKeyFile(t testing.TB, cols []string, rows []keyRow, rowGroup int64, dict bool, pageSize int64) string {
	t.Helper()
	return writeStringFile(t, cols, rows, true, parquet.WithDictionaryDefault(dict), parquet.WithMaxRowGroupLength(rowGroup),
		parquet.WithDataPageSize(pageSize), parquet.WithBatchSize(64))
}

// writeStringFile writes rows as a Parquet file of string columns named
// cols, nullable or not, with the writer properties opts.
func writeStringFile(t testing.TB, cols []string, rows []keyRow, nullable bool, opts ...parquet.WriterProperty) string {
	t.Helper()
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c, Type: arrow.BinaryTypes.String, Nullable: nullable}
	}
	sc := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	for _, r := range rows {
		for i, v := range r {
			fb := b.Field(i).(*array.StringBuilder)
			if v == nil {
				fb.AppendNull()
			} else {
				fb.Append(*v)
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return writeRecordFile(t, rec, opts...)
}

// writeRecordFile writes rec as a Parquet file with the writer properties
// opts.
func writeRecordFile(t testing.TB, rec arrow.RecordBatch, opts ...parquet.WriterProperty) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, parquet.NewWriterProperties(opts...), pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBuffered(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEachMatch checks the positions eachMatch finds against those of
// every row whose key columns' values form a key, whichever way the file
// is read: in place (few values in the columns before the last, with
// nulls in any, dictionary or plain pages, runs of one id) or through
// Arrow (too many values in a column before the last).
func TestEachMatch(t *testing.T) {
	two := []string{"data_source", "id"}
	three := []string{"source", "resource_type", "id"}
	keys := map[string]struct{}{
		joinKey("a", "id-0007"): {}, joinKey("a", "id-0500"): {}, joinKey("b", "id-0003"): {}, joinKey("a", "id-0999"): {},
		joinKey("s299", "id-0299"): {}, joinKey("s1", "id-0301"): {},
		joinKey("a", "Patient", "id-0007"): {}, joinKey("a", "Claim", "id-0008"): {}, joinKey("b", "Claim", "id-0009"): {},
		joinKey("a", "Patient", "id-0005"): {},
	}
	rows := func(n int, col ...func(i int) *string) []keyRow {
		out := make([]keyRow, n)
		for i := range out {
			for _, c := range col {
				out[i] = append(out[i], c(i))
			}
		}
		return out
	}
	is := func(v string) func(int) *string { return func(int) *string { return str(v) } }
	idOf := func(i int) *string { return str(fmt.Sprintf("id-%04d", i%1000)) }
	orNull := func(f func(int) *string, null func(i int) bool) func(int) *string {
		return func(i int) *string {
			if null(i) {
				return nil
			}
			return f(i)
		}
	}
	of := func(vals ...string) func(int) *string { return func(i int) *string { return str(vals[i%len(vals)]) } }
	cases := []struct {
		name     string
		cols     []string
		rows     []keyRow
		rowGroup int64
	}{
		{"one source, many pages and row groups", two, rows(3000, is("a"), idOf), 700},
		{"null ids", two, rows(2000, is("a"), orNull(idOf, func(i int) bool { return i%3 == 0 })), 512},
		{"two sources in a row group", two, rows(2000, of("a", "b"), idOf), 1 << 20},
		{"a source per row group", two, rows(2000, func(i int) *string { return str([]string{"a", "b"}[i/1000]) }, idOf), 1000},
		{"null sources", two, rows(2000, orNull(is("a"), func(i int) bool { return i >= 1000 && i%7 == 0 }), idOf), 1000},
		{"runs of one id", two, rows(3000, is("a"), func(i int) *string { return idOf(i / 18) }), 1 << 20},
		{"one id under two sources", two, rows(3000, of("a", "b"), func(i int) *string { return idOf(i / 2) }), 1 << 20},
		{"too many sources for codes", two, rows(3000, func(i int) *string { return str(fmt.Sprintf("s%d", i%300)) }, idOf), 1 << 20},
		{"the version index", three, rows(3000, is("a"), of("Patient", "Claim", "Claim"), idOf), 1000},
		{"the version index, null types", three, rows(3000, of("a", "b"), orNull(of("Patient", "Claim"), func(i int) bool { return i%5 == 0 }), idOf), 1 << 20},
		// b Patient, a null, a Patient: the source changes on the row whose
		// type is null, and the row after it must still look in a's set.
		{"the version index, a null type where the source changes", three, rows(3000, func(i int) *string { return str([]string{"b", "a", "a"}[i%3]) },
			orNull(is("Patient"), func(i int) bool { return i%3 == 1 }), idOf), 1 << 20},
		{"one row", two, []keyRow{{str("a"), str("id-0500")}}, 10},
	}
	for _, c := range cases {
		var want []int64
		for i, r := range c.rows {
			vals := make([]string, len(r))
			null := false
			for j, v := range r {
				if v == nil {
					null = true
					break
				}
				vals[j] = *v
			}
			if _, ok := keys[joinKey(vals...)]; ok && !null {
				want = append(want, int64(i))
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s: the case matches nothing", c.name)
		}
		for _, dict := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/dict=%v", c.name, dict), func(t *testing.T) {
				path := writeKeyFile(t, c.cols, c.rows, c.rowGroup, dict, 1<<10)
				var got []int64
				match := rowKeys{cols: c.cols, ids: idSetsOf(keys)}
				ids := make([]int, len(c.cols))
				for i := range ids {
					ids[i] = 1001 + i // the file has no field ids: found by name
				}
				err := eachMatch(context.Background(), iceio.LocalFS{}, path, match, ids, 0, -1, func(pos int64) { got = append(got, pos) })
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("positions %v, want %v", got, want)
				}
				// Read in chunks of row groups (one, then two, then the
				// rest), and past the last row group, it finds the same.
				pf, err := file.OpenParquetFile(path, false)
				if err != nil {
					t.Fatal(err)
				}
				groups := pf.NumRowGroups()
				pf.Close()
				got = got[:0]
				for _, r := range [][2]int{{0, 1}, {1, 3}, {3, -1}, {groups, groups + 2}} {
					err := eachMatch(context.Background(), iceio.LocalFS{}, path, match, ids, r[0], r[1], func(pos int64) { got = append(got, pos) })
					if err != nil {
						t.Fatal(err)
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("in chunks of %d row groups: positions %v, want %v", groups, got, want)
				}
			})
		}
	}
}

// BenchmarkEachMatch finds 1% of the resources of a child table's file
// (1.2M rows, 18 per resource, one source, in row groups of the lake's
// 122,880 rows), in place and through Arrow, the way every row group went
// before.
func BenchmarkEachMatch(b *testing.B) {
	const resources, perResource = 66_000, 18
	rows := make([]keyRow, 0, resources*perResource)
	keys := map[string]struct{}{}
	src := str("payer-a")
	for r := range resources {
		id := str(fmt.Sprintf("%08x-1c2d-4e5f-8a9b-%012x", r*2654435761%(1<<32), r))
		if r%100 == 50 {
			keys[joinKey(*src, *id)] = struct{}{}
		}
		for range perResource {
			rows = append(rows, keyRow{src, id})
		}
	}
	path := writeKeyFile(b, []string{"data_source", "id"}, rows, 122_880, true, 1<<20)
	match := rowKeys{cols: []string{"data_source", "id"}, ids: idSetsOf(keys)}
	ids := []int{1001, 1002} // the file has no field ids: found by name
	ctx := context.Background()
	b.Run("in-place", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := eachMatch(ctx, iceio.LocalFS{}, path, match, ids, 0, -1, func(int64) { n++ }); err != nil {
				b.Fatal(err)
			}
			if n != len(keys)*perResource {
				b.Fatalf("%d rows, want %d", n, len(keys)*perResource)
			}
		}
	})
	b.Run("arrow", func(b *testing.B) {
		for b.Loop() {
			n := 0
			m := matcher{ids: match.ids}
			err := scanColumns(ctx, iceio.LocalFS{}, path, match.cols, ids, func(_ int64, cols []arrow.Array) error {
				return m.batch(cols, match.cols, func(int) { n++ })
			})
			if err != nil {
				b.Fatal(err)
			}
			if n != len(keys)*perResource {
				b.Fatalf("%d rows, want %d", n, len(keys)*perResource)
			}
		}
	})
}

// TestChunksOf: a file is read in chunks of rowGroupsPerChunk row groups
// by its split offsets, each file's chunks consecutive and in order, the
// last one to the file's end; a file without offsets is one chunk.
func TestChunksOf(t *testing.T) {
	spec := iceberggo.NewPartitionSpec()
	fileOf := func(groups int) table.FileScanTask {
		offsets := make([]int64, groups)
		for i := range offsets {
			offsets[i] = 4 + int64(i)*1000
		}
		b, err := iceberggo.NewDataFileBuilder(spec, iceberggo.EntryContentData, fmt.Sprintf("f%d.parquet", groups), iceberggo.ParquetFile,
			nil, nil, nil, 10, 4+int64(groups)*1000)
		if err != nil {
			t.Fatal(err)
		}
		return table.FileScanTask{File: b.SplitOffsets(offsets).Build()}
	}
	n := rowGroupsPerChunk
	got := chunksOf([]table.FileScanTask{fileOf(0), fileOf(1), fileOf(n), fileOf(n + 1), fileOf(2*n + 3)})
	want := []chunk{
		{0, 0, -1},
		{1, 0, -1},
		{2, 0, -1},
		{3, 0, n}, {3, n, -1},
		{4, 0, n}, {4, n, 2 * n}, {4, 2 * n, -1},
	}
	if !slices.Equal(got, want) {
		t.Errorf("chunks %v, want %v", got, want)
	}
}

// idSetsOf is keys (joinKey of each key's values) as the sets of ids of
// rowKeys: by the values before the last.
func idSetsOf(keys map[string]struct{}) map[string]idSet {
	out := map[string]idSet{}
	for k := range keys {
		prefix, id := "", k
		if i := strings.LastIndexByte(k, 0); i >= 0 {
			prefix, id = k[:i], k[i+1:]
		}
		if out[prefix] == nil {
			out[prefix] = idSet{}
		}
		out[prefix][id] = struct{}{}
	}
	return out
}

// TestLiveOnly: the positions a data file's delete files list, in any
// order across files, are left out; the others stay, in order.
func TestLiveOnly(t *testing.T) {
	dir := t.TempDir()
	spec := iceberggo.NewPartitionSpec()
	b, err := iceberggo.NewDataFileBuilder(spec, iceberggo.EntryContentData, filepath.Join(dir, "data.parquet"), iceberggo.ParquetFile, nil, nil, nil, 20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	df := b.Build()
	task := table.FileScanTask{File: df}
	for i, pos := range [][]int64{{5, 9, 12}, {1, 7}} {
		d, err := writeDeleteFile(iceio.LocalFS{}, spec, filepath.Join(dir, fmt.Sprintf("d%d.parquet", i)), df, pos)
		if err != nil {
			t.Fatal(err)
		}
		task.DeleteFiles = append(task.DeleteFiles, d)
	}
	got, err := liveOnly(t.Context(), iceio.LocalFS{}, task, []int64{0, 1, 2, 5, 6, 7, 9, 10, 13})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{0, 2, 6, 10, 13}; !slices.Equal(got, want) {
		t.Errorf("live positions %v, want %v", got, want)
	}
}

// TestWriteDeleteFileInBatches: a delete file of more positions than one
// batch holds every one of them, in order, in one row group.
func TestWriteDeleteFileInBatches(t *testing.T) {
	dir := t.TempDir()
	spec := iceberggo.NewPartitionSpec()
	n := 3*deleteBatchRows + 5
	b, err := iceberggo.NewDataFileBuilder(spec, iceberggo.EntryContentData, filepath.Join(dir, "data.parquet"), iceberggo.ParquetFile, nil, nil, nil, int64(2*n), 1000)
	if err != nil {
		t.Fatal(err)
	}
	df := b.Build()
	pos := make([]int64, n)
	for i := range pos {
		pos[i] = int64(2*i + i%3)
	}
	path := filepath.Join(dir, "deletes.parquet")
	d, err := writeDeleteFile(iceio.LocalFS{}, spec, path, df, pos)
	if err != nil {
		t.Fatal(err)
	}
	if d.Count() != int64(n) {
		t.Errorf("delete file records %d rows, want %d", d.Count(), n)
	}
	got, err := readDeletes(t.Context(), iceio.LocalFS{}, path, df.FilePath(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, pos) {
		t.Errorf("read back %d positions, want the %d written", len(got), n)
	}
	f, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.NumRowGroups() != 1 {
		t.Errorf("%d row groups, want 1", f.NumRowGroups())
	}
}
