//go:build !amd64

package jsondoc

// scanQuotes: see quotes_amd64.go.
func scanQuotes(s string, mask []uint64) { scanQuotesGeneric(s, mask) }
