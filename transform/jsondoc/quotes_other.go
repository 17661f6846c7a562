//go:build !amd64 || purego

package jsondoc

// scanQuotes: see quotes_amd64.go.
func scanQuotes(s string, mask []uint64) { scanQuotesGeneric(s, mask) }
