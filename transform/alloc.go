package transform

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// poolAllocator is the Arrow allocator of the engine's builders. Batches
// are built, handed to the sink and released again and again with buffers
// of much the same sizes, so it keeps released buffers in pools by power
// of two size and hands them out again: the garbage collector, which would
// otherwise run every few batches to reclaim them, has far less to do.
// Buffers are zeroed and 64-byte aligned, as memory.GoAllocator's are. It
// relies on the Arrow contract that a buffer is freed only when no array
// refers to it any more (a Sink that keeps a batch must Retain it).
type poolAllocator struct {
	pools [maxPoolClass + 1]sync.Pool // class c holds *[]byte of cap 1<<c
}

const (
	minPoolClass = 6  // 64 bytes
	maxPoolClass = 26 // 64 MiB; larger buffers are not pooled
	alignment    = 64
)

var _ memory.Allocator = (*poolAllocator)(nil)

// batchAllocator is shared by every engine; safe for concurrent use.
var batchAllocator = new(poolAllocator)

func sizeClass(size int) int {
	if size <= 1<<minPoolClass {
		return minPoolClass
	}
	return bits.Len(uint(size - 1))
}

// Allocate returns a zeroed buffer of length size.
func (a *poolAllocator) Allocate(size int) []byte {
	c := sizeClass(size)
	if c > maxPoolClass {
		return alignedBuf(size)
	}
	if p, ok := a.pools[c].Get().(*[]byte); ok {
		b := *p
		clear(b)
		return b[:size]
	}
	return alignedBuf(1 << c)[:size]
}

// Reallocate returns a buffer of length size holding b's bytes.
func (a *poolAllocator) Reallocate(size int, b []byte) []byte {
	if cap(b) >= size {
		return b[:size]
	}
	nb := a.Allocate(size)
	copy(nb, b)
	a.Free(b)
	return nb
}

// Free returns b to its pool; b must not be used any more.
func (a *poolAllocator) Free(b []byte) {
	c := cap(b)
	if c < 1<<minPoolClass || c > 1<<maxPoolClass || c&(c-1) != 0 {
		return // not one of ours: left to the garbage collector
	}
	b = b[:c]
	a.pools[bits.Len(uint(c))-1].Put(&b)
}

// alignedBuf returns a zeroed buffer of length and capacity n starting on
// a 64-byte boundary.
func alignedBuf(n int) []byte {
	buf := make([]byte, n+alignment)
	shift := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf))) % alignment); r != 0 {
		shift = alignment - r
	}
	return buf[shift : shift+n : shift+n]
}
