package extract_test

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// tree lists every entry under dir with its kind, size, mode and mtime.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[rel] = fmt.Sprintf("dir=%v size=%d mode=%v mtime=%d", d.IsDir(), fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		if !d.IsDir() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] += " content=" + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCancelRemovesOnlyTheJobsFiles: the export directory may be a folder
// that holds other things. Cancel (and ResetJob) used to remove every
// *.ndjson in it (a user's own NDJSON, another export's files, even an
// empty folder named *.ndjson; a full one made cancel fail) and any
// manifest.json, and left the job's temporary files behind.
func TestCancelRemovesOnlyTheJobsFiles(t *testing.T) {
	e := newEnv(t, sandbox.Config{MaxLinesPerFile: 20})
	e.sb.SetFaults(sandbox.Faults{ErrorFile: true})
	dir := t.TempDir()
	theirs := map[string]string{
		"notes.txt":                         "not ours",
		"patients.ndjson":                   `{"resourceType":"Patient","id":"mine"}` + "\n",
		"Patient.ndjson":                    `{"resourceType":"Patient","id":"mine too"}` + "\n",
		".hidden.ndjson.123.tmp":            "someone else's temporary file",
		"old/Patient.001.ndjson":            `{"resourceType":"Patient","id":"old"}` + "\n",
		"old/manifest.json":                 `{"transactionTime":"2020-01-01T00:00:00Z"}`,
		"old/job.json":                      `{"version":1}`,
		"other.ndjson/Coverage.001.ndjson":  "a folder named like a download",
		".Patient.001.ndjson.tmp":           "not a temporary name atomicfile makes",
		".Patient.001.ndjson.12ab.tmp":      "nor this",
		"Patient.001.ndjson.bak":            "a backup",
		"error.OperationOutcome.999.ndjson": "a name of ours the job never wrote",
	}
	for name, content := range theirs {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "empty.ndjson"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Old mtimes show whether anything was rewritten.
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	filepath.WalkDir(dir, func(path string, _ fs.DirEntry, _ error) error { return os.Chtimes(path, old, old) })
	before := tree(t, dir)

	c := e.client()
	res, err := c.Export(t.Context(), extract.Request{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	ours := []string{extract.JobFile, extract.ManifestFile}
	for _, f := range res.Files {
		ours = append(ours, f.Name)
	}
	// A write the job left half done (a crash) is the job's too.
	crashed := ".Patient.001.ndjson.987654.tmp"
	if err := os.WriteFile(filepath.Join(dir, crashed), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range append(ours, crashed) {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("before cancel: %v", err)
		}
	}
	// The directory's own mtime changes with the job's files; the
	// directories below it must not.
	os.Chtimes(dir, old, old)

	found, err := c.CancelJob(t.Context(), dir)
	if !found || err != nil {
		t.Fatalf("CancelJob = %v, %v", found, err)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool {
		return r.Method == http.MethodDelete && r.Status == http.StatusAccepted
	}); n != 1 {
		t.Errorf("%d DELETEs accepted by the server, want 1", n)
	}
	after := tree(t, dir)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("cancel touched what the job did not write (-before +after):\n%s", diff)
	}
	for _, n := range append(ours, crashed) {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s is still there after cancel", n)
		}
	}
	if found, err := c.CancelJob(t.Context(), dir); found || err != nil {
		t.Errorf("second cancel = %v, %v; want no job", found, err)
	}
}

// TestResetJobKeepsAManifestThatIsNotTheJobs: manifest.json goes with the
// job only when it holds the job's manifest (Export writes it at the end);
// a file of that name with anything else in it is someone else's.
func TestResetJobKeepsAManifestThatIsNotTheJobs(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	tests := []struct {
		name     string
		manifest func(t *testing.T, dir string) // what manifest.json holds at reset
		kept     bool
	}{
		{"the job's", func(*testing.T, string) {}, false},
		{"edited", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, extract.ManifestFile), []byte(`{"transactionTime":"2020-01-01T00:00:00Z","output":[]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"none", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, extract.ManifestFile)) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			res, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient", "Coverage"}}, dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.manifest(t, dir)
			if err := extract.ResetJob(dir); err != nil {
				t.Fatal(err)
			}
			var left []string
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				left = append(left, e.Name())
			}
			var want []string
			if tt.kept {
				want = []string{extract.ManifestFile}
			}
			if !slices.Equal(left, want) {
				t.Errorf("left %q after reset of %d files, want %q", left, len(res.Files), want)
			}
		})
	}
}
