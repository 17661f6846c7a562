//go:build !linux

package hive

// SwapDir puts directory src in place of dst. Without an atomic exchange,
// dst is moved aside first, so a reader may briefly find no dst (never a
// mix of the two).
func SwapDir(src, dst string) error {
	return moveAsideDir(src, dst)
}
