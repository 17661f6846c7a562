package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  string
	}{
		{"1048576", 1 << 20, ""},
		{"64GiB", 64 << 30, ""},
		{"64 GiB", 64 << 30, ""},
		{"64gib", 64 << 30, ""},
		{"500MB", 500e6, ""},
		{"1.5GiB", 3 << 29, ""},
		{"1kB", 1000, ""},
		{"1KB", 1000, ""},
		{"2KiB", 2048, ""},
		{"1TB", 1e12, ""},
		{"1TiB", 1 << 40, ""},
		{"10B", 10, ""},
		{" 3MiB ", 3 << 20, ""},
		{"", 0, `"" is not a size`},
		{"lots", 0, `"lots" is not a size such as 500MB or 64GiB`},
		{"-1", 0, "is not a size"},
		{"1e9", 0, "is not a size"},
		{"0x10", 0, "is not a size"},
		{"5PB", 0, `unknown unit "PB"`},
		{"64 G", 0, `unknown unit "G"`},
		{"0", 0, "at least 1 byte"},
		{"0.4B", 0, "at least 1 byte"},
		{"9999999TiB", 0, "too large"},
		{"1.", 0, "is not a size"},
		{"1 2MB", 0, "is not a size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseSize(%q) = %d, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestDownloadLimitProblems: the download limits of a source are checked
// with the other keys, each problem with its file, line and key.
func TestDownloadLimitProblems(t *testing.T) {
	bad := `sources:
  - name: a
    kind: bulk
    fhir_url: https://x.example/fhir
    max_file_size: 64GiB
    max_decompression_ratio: 200
  - name: b
    kind: bulk
    fhir_url: https://y.example/fhir
    max_file_size: huge
    max_decompression_ratio: 0.5
  - name: c
    kind: bulk
    fhir_url: https://z.example/fhir
    max_file_size: 10XB
    max_decompression_ratio: -3
`
	f, err := Parse("f.yaml", []byte(bad))
	var ps Problems
	if !errorsAs(err, &ps) {
		t.Fatalf("err = %v, want Problems", err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	want := []string{
		`f.yaml:10: sources[1].max_file_size: "huge" is not a size such as 500MB or 64GiB`,
		"f.yaml:11: sources[1].max_decompression_ratio: 0.5: must be 1 or more (bytes after decompression per byte downloaded)",
		`f.yaml:15: sources[2].max_file_size: "10XB": unknown unit "XB" (want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)`,
		"f.yaml:16: sources[2].max_decompression_ratio: -3: must be 1 or more (bytes after decompression per byte downloaded)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if s := f.Sources[0]; s.MaxFileSize != "64GiB" || s.MaxDecompressionRatio != 200 {
		t.Errorf("source a: %q, %g", s.MaxFileSize, s.MaxDecompressionRatio)
	}
}
