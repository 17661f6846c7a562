//go:build duckdb_arrow

package iceberg_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

// TestListColumns: a table with a column of lists (a view's collection
// column) is published from the warehouse's own Parquet files, whose
// list elements carry the field id the table's schema gives them, so that
// a reader that goes by field ids (iceberg-go here; Trino, Spark and
// Athena alike) reads the lists back as they are. So is a bookkeeping
// table with a list (the export errors' codes).
func TestListColumns(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	w := warehouseAt(t, filepath.Join(root, "w.duckdb"))
	lk, err := iceberg.Open(ctx, filepath.Join(root, "lake"), load.LakeOptions{Warehouse: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "given", Type: arrow.ListOf(arrow.BinaryTypes.String), Nullable: true},
	}, nil)
	tagged := []load.Table{{Name: "tagged", Resource: "Patient", Key: "id", Schema: schema, PrimaryKey: []string{"id"}}}

	l, err := w.Begin(ctx, "payer-a", tagged)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(ctx)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, load.ResourcesSchema)
	pb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	given := map[string][]string{"p1": {"Ann", "Beth"}, "p2": nil, "p3": {}}
	for i, id := range []string{"p1", "p2", "p3"} {
		rb.Field(0).(*array.StringBuilder).Append("Patient")
		rb.Field(1).(*array.StringBuilder).Append(id)
		rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Now().UnixMicro()))
		rb.Field(3).AppendNull()
		rb.Field(4).(*array.StringBuilder).Append("Patient.ndjson")
		rb.Field(5).(*array.Int64Builder).Append(int64(i + 1))
		rb.Field(6).AppendNull()
		pb.Field(0).(*array.StringBuilder).Append(id)
		lb := pb.Field(1).(*array.ListBuilder)
		if given[id] == nil {
			lb.AppendNull()
			continue
		}
		lb.Append(true)
		for _, g := range given[id] {
			lb.ValueBuilder().(*array.StringBuilder).Append(g)
		}
	}
	for name, b := range map[string]*array.RecordBuilder{load.Resources: rb, "tagged": pb} {
		rec := b.NewRecordBatch()
		if err := l.WriteBatch(ctx, name, rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		b.Release()
	}
	st, err := l.Commit(ctx, load.Run{ID: "r1", Source: "payer-a", Scope: "all", Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// A bookkeeping table with a list, too.
	rows, err := w.Query(ctx, `INSERT INTO fhirlake_export_errors VALUES ('r1', 'payer-a', 'Patient', 'error', 2, ['not-found', 'processing'])`)
	if err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if err := lk.Publish(ctx, w, load.Identity{Path: w.Path(), ID: w.ID()}, tagged, st.Changes); err != nil {
		t.Fatal(err)
	}
	files, _ := icebergtest.Files(t, lk, "fhirlake_export_errors")
	for _, f := range files {
		if !strings.Contains(f, "/data/fhirlake-") {
			t.Errorf("fhirlake_export_errors holds %s, not a file of the warehouse", f)
		}
	}
	if len(files) != 1 {
		t.Errorf("fhirlake_export_errors: %d files, want one", len(files))
	}
	er, err := lk.ReadTable(ctx, "fhirlake_export_errors")
	if err != nil {
		t.Fatal(err)
	}
	defer er.Release()
	var codes []string
	for er.Next() {
		rec := er.RecordBatch()
		lists := rec.Column(int(rec.Schema().FieldIndices("codes")[0])).(*array.List)
		for i := range int(rec.NumRows()) {
			codes = append(codes, lists.ValueStr(i))
		}
	}
	if err := er.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`["not-found","processing"]`}, codes); diff != "" {
		t.Errorf("fhirlake_export_errors' codes as the lake reads them (-want +got):\n%s", diff)
	}
	files, _ = icebergtest.Files(t, lk, "tagged")
	for _, f := range files {
		if !strings.Contains(f, "/data/fhirlake-") {
			t.Errorf("tagged holds %s, not a file of the warehouse", f)
		}
	}

	rr, err := lk.ReadTable(ctx, "tagged")
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	got := map[string]string{}
	for rr.Next() {
		rec := rr.RecordBatch()
		ids := rec.Column(int(rec.Schema().FieldIndices("id")[0])).(*array.String)
		lists := rec.Column(int(rec.Schema().FieldIndices("given")[0])).(*array.List)
		for i := range int(rec.NumRows()) {
			got[ids.Value(i)] = lists.ValueStr(i)
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"p1": `["Ann","Beth"]`, "p2": array.NullValueStr, "p3": "[]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tagged as the lake reads it (-want +got):\n%s", diff)
	}
}
