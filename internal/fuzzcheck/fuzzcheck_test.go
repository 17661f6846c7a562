package fuzzcheck

import (
	"testing"
)

var sink []byte

func TestAllocated(t *testing.T) {
	for _, n := range []int{0, 1 << 10, 1 << 16, 1 << 22} {
		got := Allocated(func() { sink = make([]byte, n) })
		if got < uint64(n) || got > uint64(n)+uint64(n)/8+4096 {
			t.Errorf("Allocated(make %d) = %d", n, got)
		}
	}
}

// fakeTB records a failure instead of stopping the test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }

func TestBounded(t *testing.T) {
	for _, tt := range []struct {
		alloc, n int
		perByte  uint64
		fail     bool
	}{
		{alloc: 1000, n: 10, perByte: 8, fail: false},                 // under the slack
		{alloc: Slack + 100<<10, n: 1 << 10, perByte: 64, fail: true}, // 100 KiB over 64 KiB + slack
		{alloc: Slack + 100<<10, n: 2 << 10, perByte: 64, fail: false},
	} {
		f := &fakeTB{}
		Bounded(f, "x", tt.n, tt.perByte, func() { sink = make([]byte, tt.alloc) })
		if f.failed != tt.fail {
			t.Errorf("Bounded(alloc %d, n %d, %d/byte) failed = %v, want %v", tt.alloc, tt.n, tt.perByte, f.failed, tt.fail)
		}
	}
}
