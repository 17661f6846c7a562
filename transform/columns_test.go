package transform

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// TestColBuilders builds two batches per column kind, with nulls and
// values that do not convert, and reads them back through Arrow: the
// builders' slices are reused between batches, the arrays must not be.
func TestColBuilders(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	s, i, d, b := fhirpath.String, fhirpath.Integer, fhirpath.Decimal, fhirpath.Boolean
	tests := []struct {
		name    string
		dt      arrow.DataType
		k       colKind
		batches [][]*fhirpath.Value // nil: a null cell
		want    []string            // per batch, Arrow's rendering
		bad     int                 // values that must fail to convert
	}{
		{
			name: "string", dt: arrow.BinaryTypes.String, k: colKind{base: kString},
			batches: [][]*fhirpath.Value{{ptr(s("a")), nil, ptr(s("")), ptr(s("héllo"))}, {nil, ptr(s("z"))}},
			want:    []string{`["a" (null) "" "héllo"]`, `[(null) "z"]`},
		},
		{
			name: "bool", dt: arrow.FixedWidthTypes.Boolean, k: colKind{base: kBool},
			batches: [][]*fhirpath.Value{{ptr(b(true)), ptr(b(false)), nil, ptr(s("true")), ptr(b(true)), ptr(b(true)), ptr(b(false)), ptr(b(true)), ptr(b(true))}, {ptr(b(false))}},
			want:    []string{`[true false (null) true true false true true]`, `[false]`},
			bad:     1,
		},
		{
			name: "int32", dt: arrow.PrimitiveTypes.Int32, k: colKind{base: kInt32},
			batches: [][]*fhirpath.Value{{ptr(i(7)), nil, ptr(s("-3")), ptr(i(1 << 40)), ptr(s("x"))}, {ptr(i(1))}},
			want:    []string{`[7 (null) -3]`, `[1]`},
			bad:     2,
		},
		{
			name: "decimal", dt: &arrow.Decimal128Type{Precision: 12, Scale: 2}, k: colKind{base: kDecimal, precision: 12, scale: 2},
			batches: [][]*fhirpath.Value{{ptr(d("12.5")), ptr(i(3)), nil, ptr(d("1.005")), ptr(b(true))}, {ptr(s("0.10"))}},
			// 1.005 has more decimals than the scale keeps: a cell error,
			// not rounded; 0.10's trailing zero is not one.
			want: []string{`[12.5 3 (null)]`, `[0.1]`},
			bad:  2,
		},
		{
			name: "date", dt: arrow.FixedWidthTypes.Date32, k: colKind{base: kDate},
			batches: [][]*fhirpath.Value{{ptr(fhirpath.Date("2020-02-29")), ptr(s("2021-03")), nil, ptr(s("2021-02-30"))}},
			want:    []string{`[2020-02-29 2021-03-01 (null)]`},
			bad:     1,
		},
		{
			name: "timestamp", dt: TimestampType, k: colKind{base: kTimestamp},
			batches: [][]*fhirpath.Value{{ptr(fhirpath.DateTime("2020-01-01T10:00:00+02:00")), nil, ptr(s("2020"))}},
			want:    []string{`[1577865600000000 (null) 1577836800000000]`}, // µs since the epoch, UTC
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newColBuilder(tt.dt, tt.k)
			bad := 0
			for bi, batch := range tt.batches {
				for _, v := range batch {
					if v == nil {
						c.addNull()
						continue
					}
					if err := addValue(c, v); err != nil {
						bad++
					}
				}
				a := c.build(mem)
				if got := a.String(); got != tt.want[bi] {
					t.Errorf("batch %d = %s, want %s", bi, got, tt.want[bi])
				}
				if !arrow.TypeEqual(a.DataType(), tt.dt) {
					t.Errorf("type %s, want %s", a.DataType(), tt.dt)
				}
				a.Release()
			}
			if bad != tt.bad {
				t.Errorf("%d values failed to convert, want %d", bad, tt.bad)
			}
		})
	}
}

func TestListCol(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := newColBuilder(arrow.ListOf(arrow.BinaryTypes.String), colKind{base: kString}).(*listCol)
	cells := []fhirpath.Collection{{fhirpath.String("a"), fhirpath.String("b")}, nil, {}, {fhirpath.String("c")}}
	for _, cell := range cells {
		if cell == nil {
			c.addNull()
			continue
		}
		for i := range cell {
			if err := addValue(c.elem, &cell[i]); err != nil {
				t.Fatal(err)
			}
		}
		c.end(len(cell))
	}
	a := c.build(mem)
	defer a.Release()
	if got, want := a.String(), `[["a" "b"] (null) [] ["c"]]`; got != want {
		t.Errorf("list = %s, want %s", got, want)
	}
	if err := a.(*array.List).ValidateFull(); err != nil {
		t.Error(err)
	}
}

func ptr(v fhirpath.Value) *fhirpath.Value { return &v }

// TestBitmapPack checks packing against setting one bit per cell, for
// every length around a byte and random cells.
func TestBitmapPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 70 {
		var b bitmap
		want := make([]byte, (n+7)/8)
		wantOnes := 0
		for i := range n {
			v := rng.IntN(2) == 1
			b.push(v)
			if v {
				want[i/8] |= 1 << (i % 8)
				wantOnes++
			}
		}
		got, ones := b.pack()
		if !bytes.Equal(got, want) || ones != wantOnes {
			t.Fatalf("%d cells: pack = %08b, %d ones; want %08b, %d", n, got, ones, want, wantOnes)
		}
	}
}
