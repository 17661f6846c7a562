package extract

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadDeleted(t *testing.T) {
	tests := []struct {
		name, body string
		want       []Tombstone
		err        string
	}{
		{"two bundles", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}},{"request":{"method":"DELETE","url":"Coverage/c1"}}]}` + "\n\n" +
			`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"/Patient/p2"}}]}`,
			[]Tombstone{{"Patient", "p1"}, {"Coverage", "c1"}, {"Patient", "p2"}}, ""},
		{"not a bundle", `{"resourceType":"Patient"}`, nil, "deleted.Bundle.001.ndjson line 1: not a Bundle"},
		{"not a delete", `{"resourceType":"Bundle","entry":[{"request":{"method":"PUT","url":"Patient/p1"}}]}`, nil, "line 1 entry 0: want request.method DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "deleted.Bundle.001.ndjson")
			os.WriteFile(path, []byte(tt.body), 0o644)
			got, err := ReadDeleted(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
