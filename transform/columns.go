package transform

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/fhirlake/fhirlake/transform/fhirpath"
)

// The engine builds its batches with these column builders rather than
// Arrow's own: a cell is an append to a Go slice that is reused from one
// batch to the next, with no interface conversion or growth check of the
// Arrow builders on the way. At the end of a batch the slices are copied
// once into buffers from the engine's allocator, so the arrays handed to
// the sink own their memory and the slices can be refilled.

// colBuilder accumulates the cells of one column of a batch.
type colBuilder interface {
	// add converts v, a primitive (see addValue), to the column's type
	// and appends it; on error it appends nothing.
	add(v *fhirpath.Value) error
	addNull()
	// truncate drops the cells after the first n.
	truncate(n int)
	// build returns the array of the cells added since the last build, in
	// memory from mem, and starts the next batch.
	build(mem memory.Allocator) arrow.Array
}

// newColBuilder returns the builder of a column of type dt whose elements
// are of kind k (dt is a list of them for a collection column).
func newColBuilder(dt arrow.DataType, k colKind) colBuilder {
	if lt, ok := dt.(*arrow.ListType); ok {
		return &listCol{dt: lt, elem: newColBuilder(lt.Elem(), k), offsets: []int32{0}}
	}
	switch k.base {
	case kBool:
		return &boolCol{}
	case kInt32:
		return &fixedCol[int32]{dt: dt, conv: toInt32}
	case kInt64:
		return &fixedCol[int64]{dt: dt, conv: func(v *fhirpath.Value) (int64, error) { return toInt(*v) }}
	case kDecimal:
		return &fixedCol[decimal128.Num]{dt: dt, conv: func(v *fhirpath.Value) (decimal128.Num, error) { return toDecimal(v, k) }}
	case kDate:
		return &fixedCol[arrow.Date32]{dt: dt, conv: toDate32}
	case kTimestamp:
		return &fixedCol[arrow.Timestamp]{dt: dt, conv: toTimestamp}
	}
	return newStringCol()
}

// addValue appends v to c, or returns an error and appends nothing.
func addValue(c colBuilder, v *fhirpath.Value) error {
	if v.Kind() == fhirpath.KindObject {
		return fmt.Errorf("%w: %s is not a primitive", errCell, typeName(*v))
	}
	return c.add(v)
}

// bitmap collects the bits of an Arrow bitmap (validity or boolean
// values) one byte per bit, which costs a single store per cell; build
// packs them.
type bitmap struct {
	bytes  []byte // 0 or 1 per cell
	packed []byte // reused by pack
}

func (b *bitmap) push(v bool) {
	var x byte
	if v {
		x = 1
	}
	b.bytes = append(b.bytes, x)
}

func (b *bitmap) len() int { return len(b.bytes) }

func (b *bitmap) reset() { b.bytes = b.bytes[:0] }

func (b *bitmap) truncate(n int) { b.bytes = b.bytes[:n] }

// pack returns the bits as an Arrow bitmap (least significant bit first)
// and the number of ones. Eight cells at a time: a multiplication gathers
// the low bits of eight 0-or-1 bytes into one byte (each byte's bit lands
// on its own place, so no two products add up and nothing carries).
func (b *bitmap) pack() ([]byte, int) {
	n := len(b.bytes)
	b.packed = slices.Grow(b.packed[:0], (n+7)/8)[:(n+7)/8]
	ones, i := 0, 0
	for ; i+8 <= n; i += 8 {
		x := byte(binary.LittleEndian.Uint64(b.bytes[i:i+8]) * 0x0102040810204080 >> 56)
		b.packed[i/8] = x
		ones += bits.OnesCount8(x)
	}
	if i < n {
		var x byte
		for j, c := range b.bytes[i:] {
			x |= c << j
		}
		b.packed[i/8] = x
		ones += bits.OnesCount8(x)
	}
	return b.packed, ones
}

// validity returns the validity buffer of the cells, nil when none is
// null, and the number of nulls.
func (b *bitmap) validity(mem memory.Allocator) (*memory.Buffer, int) {
	bits, ones := b.pack()
	if ones == len(b.bytes) {
		return nil, 0
	}
	return copyBuffer(mem, bits), len(b.bytes) - ones
}

// copyBuffer returns a buffer from mem holding a copy of b.
func copyBuffer(mem memory.Allocator, b []byte) *memory.Buffer {
	buf := memory.NewResizableBuffer(mem)
	buf.Resize(len(b))
	copy(buf.Bytes(), b)
	return buf
}

func makeArray(dt arrow.DataType, n int, buffers []*memory.Buffer, children []arrow.ArrayData, nulls int) arrow.Array {
	data := array.NewData(dt, n, buffers, children, nulls, 0)
	for _, b := range buffers {
		if b != nil {
			b.Release() // data holds them now
		}
	}
	for _, c := range children {
		c.Release()
	}
	a := array.MakeFromData(data)
	data.Release()
	return a
}

// maxStringData is the string bytes after which a table is flushed early,
// so that a batch of very long strings never overflows int32 offsets (one
// value is at most a line, MaxLineBytes).
const maxStringData = 1 << 30

// stringCol builds a utf8 column.
type stringCol struct {
	valid   bitmap
	offsets []int32 // len = cells + 1
	data    []byte
}

func newStringCol() *stringCol { return &stringCol{offsets: []int32{0}} }

func (c *stringCol) add(v *fhirpath.Value) error {
	c.addString(v.Str())
	return nil
}

func (c *stringCol) addString(s string) {
	c.data = append(c.data, s...)
	c.offsets = append(c.offsets, int32(len(c.data)))
	c.valid.push(true)
}

func (c *stringCol) addNull() {
	c.offsets = append(c.offsets, int32(len(c.data)))
	c.valid.push(false)
}

func (c *stringCol) truncate(n int) {
	c.offsets = c.offsets[:n+1]
	c.data = c.data[:c.offsets[n]]
	c.valid.truncate(n)
}

func (c *stringCol) full() bool { return len(c.data) >= maxStringData }

func (c *stringCol) build(mem memory.Allocator) arrow.Array {
	valid, nulls := c.valid.validity(mem)
	n := c.valid.len()
	a := makeArray(arrow.BinaryTypes.String, n, []*memory.Buffer{valid, copyBuffer(mem, bytesOf(c.offsets)), copyBuffer(mem, c.data)}, nil, nulls)
	c.valid.reset()
	c.offsets, c.data = c.offsets[:1], c.data[:0]
	return a
}

// boolCol builds a boolean column.
type boolCol struct{ valid, vals bitmap }

func (c *boolCol) add(v *fhirpath.Value) error {
	if v.Kind() != fhirpath.KindBoolean {
		return fmt.Errorf("%w: %s is not a boolean", errCell, typeName(*v))
	}
	c.vals.push(v.Bool())
	c.valid.push(true)
	return nil
}

func (c *boolCol) addNull() {
	c.vals.push(false)
	c.valid.push(false)
}

func (c *boolCol) truncate(n int) {
	c.valid.truncate(n)
	c.vals.truncate(n)
}

func (c *boolCol) build(mem memory.Allocator) arrow.Array {
	valid, nulls := c.valid.validity(mem)
	vals, _ := c.vals.pack()
	a := makeArray(arrow.FixedWidthTypes.Boolean, c.valid.len(), []*memory.Buffer{valid, copyBuffer(mem, vals)}, nil, nulls)
	c.valid.reset()
	c.vals.reset()
	return a
}

// fixedCol builds a column of fixed-width values of Go type T, which has
// the memory layout of the Arrow type dt.
type fixedCol[T any] struct {
	dt    arrow.DataType
	conv  func(*fhirpath.Value) (T, error)
	valid bitmap
	vals  []T
}

func (c *fixedCol[T]) add(v *fhirpath.Value) error {
	x, err := c.conv(v)
	if err != nil {
		return err
	}
	c.addRaw(x)
	return nil
}

func (c *fixedCol[T]) addRaw(x T) {
	c.vals = append(c.vals, x)
	c.valid.push(true)
}

func (c *fixedCol[T]) addNull() {
	var zero T
	c.vals = append(c.vals, zero)
	c.valid.push(false)
}

func (c *fixedCol[T]) truncate(n int) {
	c.vals = c.vals[:n]
	c.valid.truncate(n)
}

func (c *fixedCol[T]) build(mem memory.Allocator) arrow.Array {
	valid, nulls := c.valid.validity(mem)
	a := makeArray(c.dt, c.valid.len(), []*memory.Buffer{valid, copyBuffer(mem, bytesOf(c.vals))}, nil, nulls)
	c.valid.reset()
	c.vals = c.vals[:0]
	return a
}

// listCol builds a list column: start a cell, add its elements to elem,
// end it.
type listCol struct {
	dt      *arrow.ListType
	elem    colBuilder
	valid   bitmap
	offsets []int32
	n       int32 // elements so far
}

func (c *listCol) add(*fhirpath.Value) error {
	panic("transform: listCol.add: use start, elem and end")
}

func (c *listCol) addNull() {
	c.offsets = append(c.offsets, c.n)
	c.valid.push(false)
}

// end closes a non-null cell of k elements.
func (c *listCol) end(k int) {
	c.n += int32(k)
	c.offsets = append(c.offsets, c.n)
	c.valid.push(true)
}

func (c *listCol) truncate(n int) {
	c.offsets = c.offsets[:n+1]
	c.n = c.offsets[n]
	c.elem.truncate(int(c.n))
	c.valid.truncate(n)
}

func (c *listCol) build(mem memory.Allocator) arrow.Array {
	valid, nulls := c.valid.validity(mem)
	elems := c.elem.build(mem)
	child := elems.Data()
	child.Retain()
	elems.Release()
	a := makeArray(c.dt, c.valid.len(), []*memory.Buffer{valid, copyBuffer(mem, bytesOf(c.offsets))}, []arrow.ArrayData{child}, nulls)
	c.valid.reset()
	c.offsets, c.n = c.offsets[:1], 0
	return a
}

// bytesOf returns the memory of s as bytes.
func bytesOf[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}

// Conversions of a value to a column's type. An error wraps errCell and
// holds no content.

func toInt32(v *fhirpath.Value) (int32, error) {
	i, err := toInt(*v)
	if err != nil {
		return 0, err
	}
	if i < math.MinInt32 || i > math.MaxInt32 {
		return 0, fmt.Errorf("%w: integer out of int32 range", errCell)
	}
	return int32(i), nil
}

func toDecimal(v *fhirpath.Value, k colKind) (decimal128.Num, error) {
	switch v.Kind() {
	case fhirpath.KindDecimal, fhirpath.KindInteger, fhirpath.KindString:
	default:
		return decimal128.Num{}, fmt.Errorf("%w: %s is not a decimal", errCell, typeName(*v))
	}
	if n, ok := fastDecimal(v.Str(), k.precision, k.scale); ok {
		return n, nil
	}
	if d := fractionDigits(v.Str()); d > int(k.scale) {
		// Rounding money silently would change what the payer sent.
		return decimal128.Num{}, fmt.Errorf("%w: %d decimal places, more than decimal(%d,%d) keeps (it would be rounded)", errCell, d, k.precision, k.scale)
	}
	n, err := decimal128.FromString(v.Str(), k.precision, k.scale)
	if err != nil {
		return decimal128.Num{}, fmt.Errorf("%w: not a decimal(%d,%d)", errCell, k.precision, k.scale)
	}
	return n, nil
}

// fractionDigits is the number of significant digits after the point of
// plain decimal text (trailing zeros do not count): 2 for "1.50", 0 for
// "3" or "3.00", and 0 for exponent forms, which FromString handles.
func fractionDigits(s string) int {
	i := strings.IndexByte(s, '.')
	if i < 0 || strings.ContainsAny(s, "eE") {
		return 0
	}
	return len(strings.TrimRight(s[i+1:], "0"))
}

func toDate32(v *fhirpath.Value) (arrow.Date32, error) {
	if d, ok := fastDate(v.Str()); ok {
		return d, nil
	}
	t, err := ParseDate(v.Str())
	if err != nil {
		return 0, err
	}
	return arrow.Date32FromTime(t), nil
}

func toTimestamp(v *fhirpath.Value) (arrow.Timestamp, error) {
	return parseTimestamp(v.Str())
}

// parseTimestamp converts a FHIR dateTime or instant to microseconds
// since the epoch in UTC.
func parseTimestamp(s string) (arrow.Timestamp, error) {
	if ts, ok := fastTimestamp(s); ok {
		return ts, nil
	}
	t, err := ParseDateTime(s)
	if err != nil {
		return 0, err
	}
	return arrow.Timestamp(t.UnixMicro()), nil
}

// kindOfArrow is the colKind of a column of ResourcesSchema.
func kindOfArrow(dt arrow.DataType) colKind {
	switch dt.ID() {
	case arrow.INT64:
		return colKind{base: kInt64}
	case arrow.TIMESTAMP:
		return colKind{base: kTimestamp}
	}
	return colKind{base: kString}
}
