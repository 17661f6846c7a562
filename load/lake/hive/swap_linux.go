//go:build linux

package hive

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// SwapDir puts directory src in place of dst. When dst exists the two are
// exchanged in one atomic renameat2(RENAME_EXCHANGE), so a reader of dst
// sees the old folder or the new one, never neither; the old one (now at
// src) is then removed. File systems without RENAME_EXCHANGE fall back to
// two renames.
func SwapDir(src, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		if err := atomicfile.SyncDir(filepath.Dir(dst)); err != nil {
			return err
		}
		if err := os.RemoveAll(src); err != nil {
			return fmt.Errorf("remove replaced %s: %w", dst, err)
		}
		return nil
	case errors.Is(err, unix.ENOENT):
		if _, serr := os.Stat(dst); !errors.Is(serr, os.ErrNotExist) {
			return fmt.Errorf("swap %s into %s: %w", src, dst, err)
		}
		return renameDir(src, dst)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return moveAsideDir(src, dst)
	default:
		return fmt.Errorf("swap %s into %s: %w", src, dst, err)
	}
}
