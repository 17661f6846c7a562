package extract

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fuzzcheck"
)

func TestReadDeleted(t *testing.T) {
	two := `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}},{"request":{"method":"DELETE","url":"Coverage/c1"}}]}` + "\n\n" +
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"/Patient/p2"}}]}`
	gz := func(s string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		return buf.String()
	}
	bundle := func(url string) string {
		return `{"resourceType":"Bundle","entry":[{"request":{"method":"DELETE","url":"` + url + `"}}]}`
	}
	// cut is a gzip stream that ends after parts, each flushed whole.
	cut := func(parts ...string) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		for _, p := range parts {
			zw.Write([]byte(p))
			zw.Flush()
		}
		return buf.String()
	}
	three := gz(bundle("Patient/p1") + "\n" + bundle("Patient/p2") + "\n" + bundle("Patient/p3") + "\n")
	tests := []struct {
		name, body string
		want       []Tombstone
		err        string
	}{
		{"two bundles", two, []Tombstone{{"Patient", "p1"}, {"Coverage", "c1"}, {"Patient", "p2"}}, ""},
		{"gzip", gz(two), []Tombstone{{"Patient", "p1"}, {"Coverage", "c1"}, {"Patient", "p2"}}, ""},
		{"not a bundle", `{"resourceType":"Patient"}`, nil, "deleted.Bundle.001.ndjson line 1: not a Bundle"},
		{"not a delete", `{"resourceType":"Bundle","entry":[{"request":{"method":"PUT","url":"Patient/p1"}}]}`, nil, "line 1 entry 0: want request.method DELETE"},
		{"type not a resource type", bundle("patient/p1"), nil, "line 1 entry 0: want request.method DELETE and request.url Type/id"},
		{"id with a space", bundle("Patient/p 1"), nil, "line 1 entry 0: want"},
		{"id dot dot", bundle("Patient/.."), nil, "line 1 entry 0: want"},
		{"versioned", bundle("Patient/p1/_history/2"), nil, "line 1 entry 0: want"},
		// A gzip stream cut inside line 2 is a read error there, not a
		// bad line and never the tombstones of line 1 alone.
		{"gzip cut", cut(bundle("Patient/p1")+"\n", bundle("Patient/p2")[:20]), nil, "deleted.Bundle.001.ndjson line 2: unexpected EOF"},
		{"gzip cut after a line that parses", cut(bundle("Patient/p1") + "\n" + bundle("Patient/p2")), nil, "deleted.Bundle.001.ndjson line 2: unexpected EOF"},
		{"gzip without trailer", three[:len(three)-4], nil, "deleted.Bundle.001.ndjson line 4: unexpected EOF"},
		{"gzip header only", three[:5], nil, "deleted.Bundle.001.ndjson line 1: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "deleted.Bundle.001.ndjson")
			os.WriteFile(path, []byte(tt.body), 0o644)
			got, err := ReadDeleted(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || got != nil {
					t.Fatalf("got %v, err = %v, want %q", got, err, tt.err)
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

// TestSmallFilesAllocateLittle checks that reading a deleted[] or error[]
// file costs in proportion to the file: the line scanner's buffer once
// started at 1 MiB, and every blank line of an error file cost a parse
// error.
func TestSmallFilesAllocateLittle(t *testing.T) {
	tests := []struct {
		name, body string
		read       func(dir, name string)
		max        uint64
	}{
		{"deleted, empty", "", func(dir, name string) { ReadDeleted(filepath.Join(dir, name)) }, 256 << 10},
		{"errors, empty", "", func(dir, name string) { summarizeErrors(dir, []File{{Kind: KindError, Name: name}}) }, 256 << 10},
		{"errors, blank lines", strings.Repeat("\n", 100_000), func(dir, name string) { summarizeErrors(dir, []File{{Kind: KindError, Name: name}}) }, 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "f.ndjson"), []byte(tt.body), 0o644)
			if got := fuzzcheck.Allocated(func() { tt.read(dir, "f.ndjson") }); got > tt.max {
				t.Errorf("allocated %d bytes, more than %d", got, tt.max)
			}
		})
	}
}
