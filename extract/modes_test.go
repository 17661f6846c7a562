package extract_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// tempModes records the modes of the temporary files in dir each time a
// download reports progress, that is while the temporary files are open.
type tempModes struct {
	extract.NopProgress
	t     *testing.T
	dir   string
	mu    sync.Mutex
	modes map[fs.FileMode]int
}

func (p *tempModes) FileProgress(string, int64) {
	p.t.Helper()
	tmps, _ := filepath.Glob(filepath.Join(p.dir, ".*.tmp"))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, tmp := range tmps {
		if fi, err := os.Stat(tmp); err == nil {
			p.modes[fi.Mode().Perm()]++
		}
	}
}

// TestFilesArePrivateWhateverTheUmask: downloads hold PHI. With umask 0
// the job directories used to be created 0755 (world-readable listing of
// the files). Every directory Export creates must be 0700 and every file
// (downloads, job.json, manifest.json and their temporary files) 0600, or
// 0750/0640 with GroupReadable.
func TestFilesArePrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })

	tests := []struct {
		name          string
		groupReadable bool
		dir, file     fs.FileMode
	}{
		{"private", false, 0o700, 0o600},
		{"group readable", true, 0o750, 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{MaxLinesPerFile: 20})
			e.sb.SetFaults(sandbox.Faults{ErrorFile: true})
			c := e.client()
			c.GroupReadable = tt.groupReadable
			c.Concurrency = 1 // one temporary file at a time
			root := t.TempDir()
			if err := os.Chmod(root, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(root, "work", "jobs", "src")
			p := &tempModes{t: t, dir: out, modes: map[fs.FileMode]int{}}
			res, err := c.Export(extract.WithProgress(t.Context(), p), extract.Request{}, out)
			if err != nil {
				t.Fatal(err)
			}
			// The folder that was there keeps its mode; the ones Export
			// made get the private one.
			if got := mode(t, root); got != 0o755 {
				t.Errorf("existing %s changed to %v", root, got)
			}
			for _, d := range []string{filepath.Join(root, "work"), filepath.Join(root, "work", "jobs"), out} {
				if got := mode(t, d); got != tt.dir {
					t.Errorf("directory %s: %v, want %v", d, got, tt.dir)
				}
			}
			names := []string{extract.JobFile, extract.ManifestFile}
			for _, f := range res.Files {
				names = append(names, f.Name)
			}
			if len(names) < 4 {
				t.Fatalf("only %v written", names)
			}
			for _, n := range names {
				if got := mode(t, filepath.Join(out, n)); got != tt.file {
					t.Errorf("file %s: %v, want %v", n, got, tt.file)
				}
			}
			ents, _ := os.ReadDir(out)
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
			if len(p.modes) != 1 || p.modes[tt.file] == 0 {
				t.Errorf("temporary files had modes %v, want all %v", p.modes, tt.file)
			}
			// A resumed job rewrites its state with the same mode.
			if _, err := c.Export(t.Context(), extract.Request{}, out); err != nil {
				t.Fatal(err)
			}
			if got := mode(t, filepath.Join(out, extract.JobFile)); got != tt.file {
				t.Errorf("job.json rewritten as %v", got)
			}
		})
	}
}

// mode is the permission bits of path.
func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}
