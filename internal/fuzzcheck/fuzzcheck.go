// Package fuzzcheck holds the properties that every fuzz target of a parser
// of untrusted input checks besides "no panic": that decoding allocates no
// more than a bound proportional to the input, and that errors locate the
// problem. It is for tests only.
package fuzzcheck

import (
	"runtime"
	"testing"
)

// Slack is the allocation every decode may make whatever its input size:
// buffers, a scanner, a parser's state.
const Slack = 1 << 20

// Allocated runs fn and returns the bytes it allocated on the heap. The
// count is exact for the calling goroutine's work as long as nothing else
// allocates meanwhile, which holds inside a fuzz or test function that does
// not start goroutines of its own.
func Allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Bounded runs fn, a decode of n bytes of input, and fails t when it
// allocated more than perByte*n + Slack bytes: a decoder's memory must
// grow with what it reads, never with what the input claims or nests.
func Bounded(t testing.TB, what string, n int, perByte uint64, fn func()) {
	t.Helper()
	Within(t, what, n, perByte, Slack, fn)
}

// Within is Bounded with a fixed part of the bound other than Slack, for a
// decoder whose buffers are larger (a pool of read blocks, say).
func Within(t testing.TB, what string, n int, perByte, fixed uint64, fn func()) {
	t.Helper()
	limit := perByte*uint64(n) + fixed
	if got := Allocated(fn); got > limit {
		t.Fatalf("%s allocated %d bytes for %d bytes of input, more than the bound %d (%d per byte + %d)", what, got, n, limit, perByte, fixed)
	}
}
