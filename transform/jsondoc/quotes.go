package jsondoc

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// The quote index. Before parsing a document, Parse marks where its
// quotes and backslashes are, one bit per byte, in a pass that reads the
// whole document a block at a time (SSE2 on amd64). After that, finding
// the end of a string is a shift and a count of trailing zeros, however
// long the string: the first marked byte after the opening quote is the
// closing quote, or a backslash that starts an escape (rare in FHIR data),
// which str then decodes byte by byte. Scanning each string for its
// closing quote separately, eight bytes at a time, had been a seventh of
// a transform's instructions.

// indexQuotes fills p.qbits with the quote and backslash bits of s.
func (p *Parser) indexQuotes(s string) {
	full := len(s) / 64
	n := full
	if len(s)%64 != 0 {
		n++
	}
	if cap(p.qbits) < n {
		p.qbits = make([]uint64, n, n+n/4)
	}
	p.qbits = p.qbits[:n]
	scanQuotes(s[:full*64], p.qbits[:full])
	if full < n {
		// The last block is copied out so that no read passes the end of
		// s; its zero padding is neither a quote nor a backslash.
		var last [64]byte
		copy(last[:], s[full*64:])
		scanQuotes(unsafe.String(&last[0], len(last)), p.qbits[full:])
	}
}

// quote returns the index of the first '"' or '\\' in the document from
// i, len(p.in) when there is none. It is small enough to be inlined
// (quoteAfter, which goes on when the block of i has no mark left,
// included).
func (p *Parser) quote(i int) int {
	if k := i >> 6; k < len(p.qbits) {
		if w := p.qbits[k] >> (i & 63); w != 0 {
			return i + bits.TrailingZeros64(w)
		}
		return p.quoteAfter(k + 1)
	}
	return len(p.in)
}

// quoteAfter returns the index of the first '"' or '\\' in the blocks
// from k on.
func (p *Parser) quoteAfter(k int) int {
	for ; k < len(p.qbits); k++ {
		if w := p.qbits[k]; w != 0 {
			return k<<6 + bits.TrailingZeros64(w)
		}
	}
	return len(p.in)
}

// Byte masks for scanQuotesGeneric.
const (
	lows   = 0x0101010101010101
	quotes = '"' * lows
	slashs = '\\' * lows
)

// scanQuotesGeneric is scanQuotes in Go.
func scanQuotesGeneric(s string, mask []uint64) {
	for k := range len(s) / 64 {
		var m uint64
		for j := 0; j < 64; j += 8 {
			x := binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), k*64+j))[:])
			m |= (zeroBytes(x^quotes) | zeroBytes(x^slashs)) << j
		}
		mask[k] = m
	}
}

// zeroBytes returns a bit mask of the zero bytes of x: bit i is set when
// byte i (little-endian) is zero.
func zeroBytes(x uint64) uint64 {
	const sevens = 0x7f7f7f7f7f7f7f7f
	// The high bit of each byte of t is set exactly when the byte is
	// zero: no carry crosses from one byte to the next.
	t := ^((x&sevens + sevens) | x | sevens)
	// Gather the eight high bits into the low byte.
	return (t >> 7) * 0x0102040810204080 >> 56
}
