//go:build unix

package private

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRestrictAndTighten(t *testing.T) {
	old := syscall.Umask(0) // the widest umask a user could start with
	defer syscall.Umask(old)
	for _, c := range []struct {
		group             bool
		wantFile, wantDir os.FileMode
	}{
		{false, 0o600, 0o700},
		{true, 0o640, 0o750},
	} {
		restore := Restrict(c.group)
		dir := filepath.Join(t.TempDir(), "d")
		if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o777); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "sub", "f")
		if err := os.WriteFile(f, []byte("x"), 0o666); err != nil {
			t.Fatal(err)
		}
		for p, want := range map[string]os.FileMode{dir: c.wantDir, f: c.wantFile} {
			if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
				t.Errorf("group %v: %s made with mode %v, want %v", c.group, p, fi.Mode().Perm(), want)
			}
		}
		// A file an earlier release left world-readable is narrowed, never
		// widened.
		os.Chmod(f, 0o644)
		narrow := filepath.Join(dir, "narrow")
		os.WriteFile(narrow, nil, 0o400)
		if err := Tighten(f, narrow, filepath.Join(dir, "missing")); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o644&c.wantFile {
			t.Errorf("group %v: tightened to %v, want %v", c.group, fi.Mode().Perm(), 0o644&c.wantFile)
		}
		if fi, _ := os.Stat(narrow); fi.Mode().Perm() != 0o400 {
			t.Errorf("a narrower file was widened to %v", fi.Mode().Perm())
		}
		restore()
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o500)
	readOnlyFS := os.Geteuid() != 0 // root writes anywhere
	tests := []struct {
		path string
		ok   bool
	}{
		{dir, true},
		{filepath.Join(dir, "new", "deeper"), true}, // created later
		{filepath.Join(file, "sub"), false},         // under a file
		{filepath.Join(ro, "lake"), !readOnlyFS},
	}
	for _, tt := range tests {
		err := CheckWritable(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("CheckWritable(%s) = %v, want ok=%v", tt.path, err, tt.ok)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("probe files left behind: %v", entries)
	}
}
