//go:build !unix

package private

// setUmask does nothing where there is no umask (Windows): files there
// take the folder's access control list.
func setUmask(int) int { return 0 }
