package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestErrorFileCountAndStatus(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		count  int // declared in the manifest
		status int // of the error file
	}{
		{"as listed", Faults{ErrorFile: true}, 2, http.StatusOK},
		{"declared count", Faults{ErrorFile: true, ErrorFileCount: 9}, 9, http.StatusOK},
		{"404", Faults{ErrorFile: true, ErrorFileStatus: http.StatusNotFound}, 2, http.StatusNotFound},
		{"410", Faults{ErrorFile: true, ErrorFileStatus: http.StatusGone}, 2, http.StatusGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Members: 3, PollsBeforeReady: -1})
			token := getToken(t, ts.URL)
			s.SetFaults(tt.faults)
			_, m := export(t, StandardBase(ts.URL)+"/$export?_type=Patient", token)
			if len(m.Error) != 1 {
				t.Fatalf("%d error files, want 1", len(m.Error))
			}
			var e struct {
				URL   string `json:"url"`
				Count int    `json:"count"`
			}
			if err := json.Unmarshal(m.Error[0], &e); err != nil {
				t.Fatal(err)
			}
			if e.Count != tt.count {
				t.Errorf("declared count %d, want %d", e.Count, tt.count)
			}
			if r := do(t, http.MethodGet, e.URL, token, nil); r.status != tt.status {
				t.Errorf("error file: HTTP %d, want %d", r.status, tt.status)
			} else if r.status == http.StatusOK && strings.Count(string(r.body), "\n") != 2 {
				t.Errorf("error file holds %q, want 2 lines", r.body)
			}
			// The output files are served as usual.
			for _, out := range m.Output {
				if r := do(t, http.MethodGet, out.URL, token, nil); r.status != http.StatusOK {
					t.Errorf("output file %s: HTTP %d", out.URL, r.status)
				}
			}
		})
	}
}
