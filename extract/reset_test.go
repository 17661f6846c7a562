package extract

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSameManifestThroughJobState: the job state keeps the manifest
// re-encoded (indented, <, > and & escaped, as signed URLs have them);
// ResetJob must still recognise manifest.json as the job's.
func TestSameManifestThroughJobState(t *testing.T) {
	raw := []byte(`{"transactionTime":"2026-01-05T00:00:00Z", "output":[{"type":"Patient","url":"https://s.example/f?a=1&b=<2>` + "\u2028\u00e9" + `","count":1}],"error":[]}`)
	dir := t.TempDir()
	st := &jobStore{c: &Client{}, path: filepath.Join(dir, JobFile), job: Job{Version: 1, Manifest: raw}}
	if err := st.save(); err != nil {
		t.Fatal(err)
	}
	j, err := LoadJob(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ManifestFile)
	tests := []struct {
		name string
		file []byte
		same bool
	}{
		{"as the server sent it", raw, true},
		{"another manifest", []byte(`{"transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[]}`), false},
		{"not JSON", []byte("notes"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.file, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := sameManifest(path, j.Manifest); got != tt.same {
				t.Errorf("sameManifest = %v, want %v (job state holds %s)", got, tt.same, j.Manifest)
			}
		})
	}
}
