// Package private keeps the files fhirlake writes private to their owner:
// the warehouse, its write-ahead log and lock, the lake and the work
// directories all hold PHI. The CLI sets the process umask once at start
// (Restrict), so that every file and folder any part of the process makes,
// DuckDB's included, is created private whatever the umask it was started
// with; Tighten narrows files an earlier release left wider.
package private

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// groupReadable is the mode chosen by Restrict: owner only, or owner and
// group read.
var groupReadable atomic.Bool

// GroupReadable reports whether Restrict allowed group read.
func GroupReadable() bool { return groupReadable.Load() }

// FileMode is the mode of a file fhirlake writes: 0600, or 0640 when
// Restrict allowed group read.
func FileMode() fs.FileMode {
	if groupReadable.Load() {
		return 0o640
	}
	return 0o600
}

// DirMode is the mode of a folder fhirlake makes: 0700, or 0750.
func DirMode() fs.FileMode {
	if groupReadable.Load() {
		return 0o750
	}
	return 0o700
}

// Restrict sets the process umask to 077 (027 with groupRead, for a
// reporting group that reads the lake) and returns a function that puts
// the old one back. The umask is process-wide: call it once, from main,
// before any file is made.
func Restrict(groupRead bool) (restore func()) {
	groupReadable.Store(groupRead)
	mask := 0o077
	if groupRead {
		mask = 0o027
	}
	old := setUmask(mask)
	return func() { setUmask(old) }
}

// Tighten removes from path's mode what FileMode (or DirMode, for a
// folder) does not allow: files an earlier release made under a wider
// umask. A missing path is not an error.
func Tighten(paths ...string) error {
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		allowed := FileMode()
		if fi.IsDir() {
			allowed = DirMode()
		}
		if mode := fi.Mode().Perm(); mode&^allowed != 0 {
			if err := os.Chmod(p, mode&allowed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CheckWritable reports whether the process can make files in dir, or
// create dir: the nearest folder on its path that exists must be a folder
// it can write in (a probe file is made there and removed). Runs check
// their output folders with it before they export, not after.
func CheckWritable(dir string) error {
	d := filepath.Clean(dir)
	for {
		fi, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			parent := filepath.Dir(d)
			if parent == d {
				return err
			}
			d = parent
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a folder", d)
		}
		f, err := os.CreateTemp(d, ".fhirlake-probe-*")
		if err != nil {
			return fmt.Errorf("cannot write in %s: %w", d, errors.Unwrap(err))
		}
		f.Close()
		return os.Remove(f.Name())
	}
}
