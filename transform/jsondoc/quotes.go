package jsondoc

import (
	"math/bits"
	"unsafe"
)

// The quote index. A document without a backslash has no escaped quote,
// so every '"' in it opens or closes a string. For such a document Parse
// first marks where its quotes are, one bit per byte, in a pass that
// reads the whole line a block at a time (SSE2 on amd64); after that,
// finding the end of a string is a shift and a count of trailing zeros,
// however long the string. Scanning each string for its closing quote
// separately, eight bytes at a time, was a seventh of a transform's
// instructions.

// indexQuotes fills p.qbits with the quote bits of s and reports whether
// s holds a backslash, in which case the bits must not be used.
func (p *Parser) indexQuotes(s string) (backslash bool) {
	full := len(s) / 64
	n := full
	if len(s)%64 != 0 {
		n++
	}
	if cap(p.qbits) < n {
		p.qbits = make([]uint64, n, n+n/4)
	}
	p.qbits = p.qbits[:n]
	backslash = scanQuotes(s[:full*64], p.qbits[:full])
	if full < n {
		// The last block is copied out so that no read passes the end of
		// s; the zero padding holds no quote.
		var last [64]byte
		copy(last[:], s[full*64:])
		if scanQuotes(unsafe.String(&last[0], len(last)), p.qbits[full:]) {
			backslash = true
		}
	}
	return backslash
}

// quoteAt returns the index of the first '"' in p.in from i, len(p.in)
// when there is none, from the quote index. It is small enough to be
// inlined; quoteAfter goes on when the block of i has no quote left.
func (p *Parser) quoteAt(i int) int {
	if k := i >> 6; k < len(p.qbits) {
		if w := p.qbits[k] >> (i & 63); w != 0 {
			return i + bits.TrailingZeros64(w)
		}
		return p.quoteAfter(k + 1)
	}
	return len(p.in)
}

// quoteAfter returns the index of the first '"' in the blocks from k on.
func (p *Parser) quoteAfter(k int) int {
	for ; k < len(p.qbits); k++ {
		if w := p.qbits[k]; w != 0 {
			return k<<6 + bits.TrailingZeros64(w)
		}
	}
	return len(p.in)
}

// scanQuotesGeneric is scanQuotes in Go: the quote bits of each 64-byte
// block of s (len(s) a multiple of 64) into mask, and whether s holds a
// backslash.
func scanQuotesGeneric(s string, mask []uint64) bool {
	var slash uint64
	for k := range len(s) / 64 {
		var m uint64
		for j := 0; j < 64; j += 8 {
			x := load8(s, k*64+j)
			m |= zeroBytes(x^quotes) << j
			slash |= zeroBytes(x ^ slashs)
		}
		mask[k] = m
	}
	return slash != 0
}

// zeroBytes returns a byte mask of the zero bytes of x: bit i is set when
// byte i (little-endian) is zero.
func zeroBytes(x uint64) uint64 {
	const sevens = 0x7f7f7f7f7f7f7f7f
	// The high bit of each byte of t is set exactly when the byte is zero;
	// unlike the has-zero test, no borrow crosses bytes.
	t := ^((x&sevens + sevens) | x | sevens)
	// Gather the eight high bits into the low byte.
	return (t >> 7) * 0x0102040810204080 >> 56
}
