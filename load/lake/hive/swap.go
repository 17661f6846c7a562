package hive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// renameDir moves src to the free path dst and syncs the parent.
func renameDir(src, dst string) error {
	if err := os.Rename(src, dst); err != nil {
		return fmt.Errorf("rename %s: %w", dst, err)
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// moveAsideDir replaces dst by src with two renames: dst to a hidden
// sibling, src to dst; then the old one is removed.
func moveAsideDir(src, dst string) error {
	old := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".old-"+randomSuffix())
	if err := os.Rename(dst, old); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return renameDir(src, dst)
		}
		return fmt.Errorf("move %s aside: %w", dst, err)
	}
	if err := renameDir(src, dst); err != nil {
		os.Rename(old, dst)
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("remove replaced %s: %w", dst, err)
	}
	return nil
}
