//go:build unix

package private

import "syscall"

func setUmask(mask int) int { return syscall.Umask(mask) }
