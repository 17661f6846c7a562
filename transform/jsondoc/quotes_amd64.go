//go:build !purego

package jsondoc

// scanQuotes sets in mask[k] bit j when s[64k+j] is '"' or '\\', for each
// 64-byte block of s (len(s) a multiple of 64, len(mask) at least
// len(s)/64). Implemented with SSE2, which every amd64 processor has;
// the purego build tag selects scanQuotesGeneric instead.
//
//go:noescape
func scanQuotes(s string, mask []uint64)
