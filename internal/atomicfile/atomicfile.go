// Package atomicfile writes files the crash-safe way: into a temporary file
// in the target directory, synced, closed, renamed over the target, and the
// directory synced, so a reader sees either the old file or the whole new
// one, never a torn write.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a pending atomic write. Write to it, then Commit to publish it or
// Abort to discard it. Abort after Commit is a no-op, so
// `defer f.Abort()` is always safe.
type File struct {
	*os.File
	target string
	done   bool
}

// Create starts an atomic write of path. The temporary file lives in the
// same directory, so the final rename never crosses file systems; its name
// starts with a dot and ends in .tmp so that globs such as *.parquet or
// *.ndjson never match it.
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create temp file for %s: %w", path, err)
	}
	return &File{File: f, target: path}, nil
}

// Commit syncs, closes and renames the file into place, then syncs the
// directory so that the rename itself survives a crash.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already finished", f.target)
	}
	f.done = true
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", f.target, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", f.target, err)
	}
	if err := os.Rename(tmp, f.target); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename into %s: %w", f.target, err)
	}
	return SyncDir(filepath.Dir(f.target))
}

// Abort discards the pending write.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// Copy atomically replaces path with everything read from r.
func Copy(path string, r io.Reader) (int64, error) {
	f, err := Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	n, err := io.Copy(f, r)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", path, err)
	}
	return n, f.Commit()
}

// SyncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
