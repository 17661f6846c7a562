package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileReplacesWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	for _, want := range []string{"first", "second, longer content"} {
		if err := WriteFile(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("content = %q, want %q", got, want)
		}
	}
	assertOnly(t, dir, "a.json")
}

func TestAbortLeavesTargetUntouched(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.parquet")
	if err := WriteFile(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(f.Name(), ".parquet") {
		t.Errorf("temp name %q would match *.parquet globs", f.Name())
	}
	f.WriteString("half written")
	f.Abort()
	f.Abort() // idempotent
	got, _ := os.ReadFile(path)
	if string(got) != "old" {
		t.Fatalf("content = %q after abort, want old", got)
	}
	assertOnly(t, dir, "a.parquet")
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestCopyFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	if _, err := Copy(filepath.Join(dir, "x"), failingReader{}); err == nil {
		t.Fatal("Copy succeeded on a failing reader")
	}
	assertOnly(t, dir)
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("dir holds %v, want %v", got, names)
	}
}
