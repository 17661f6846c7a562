package bench

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestChangeValue(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"first amount, decimals kept",
			`{"quantity":{"value":1},"adjudication":[{"amount":{"value":40.95}},{"amount":{"value":0.00}}]}`,
			`{"quantity":{"value":1},"adjudication":[{"amount":{"value":41.95}},{"amount":{"value":0.00}}]}`},
		{"no amount: first number value",
			`{"code":{"text":"BP"},"valueQuantity":{"value":133,"unit":"mm[Hg]"},"component":[{"valueQuantity":{"value":78}}]}`,
			`{"code":{"text":"BP"},"valueQuantity":{"value":134,"unit":"mm[Hg]"},"component":[{"valueQuantity":{"value":78}}]}`},
		{"negative amount", `{"amount":{"value":-2.5}}`, `{"amount":{"value":-1.5}}`},
		{"string values only: unchanged",
			`{"identifier":[{"value":"44016089337"}],"telecom":[{"value":"555-637-1581"}]}`,
			`{"identifier":[{"value":"44016089337"}],"telecom":[{"value":"555-637-1581"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(changeValue([]byte(tc.in))); got != tc.want {
				t.Errorf("changeValue(%s)\n got %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

// TestGenerateChanges: every step-th resource comes back a day newer, and
// every other one of them with a changed value too.
func TestGenerateChanges(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	var in bytes.Buffer
	for i := range 8 {
		in.WriteString(`{"resourceType":"ExplanationOfBenefit","id":"e` + string(rune('0'+i)) +
			`","meta":{"lastUpdated":"2024-03-01T10:00:00Z"},"item":[{"adjudication":[{"amount":{"value":10.00}}]}]}` + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "ExplanationOfBenefit.001.ndjson"), in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := GenerateChanges(dir, out, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("changed %d resources, want 4", n)
	}
	f, err := os.Open(filepath.Join(out, "ExplanationOfBenefit.001.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := []string{
		`{"resourceType":"ExplanationOfBenefit","id":"e1","meta":{"lastUpdated":"2024-03-02T10:00:00Z"},"item":[{"adjudication":[{"amount":{"value":10.00}}]}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"e3","meta":{"lastUpdated":"2024-03-02T10:00:00Z"},"item":[{"adjudication":[{"amount":{"value":11.00}}]}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"e5","meta":{"lastUpdated":"2024-03-02T10:00:00Z"},"item":[{"adjudication":[{"amount":{"value":10.00}}]}]}`,
		`{"resourceType":"ExplanationOfBenefit","id":"e7","meta":{"lastUpdated":"2024-03-02T10:00:00Z"},"item":[{"adjudication":[{"amount":{"value":11.00}}]}]}`,
	}
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		if i >= len(want) || sc.Text() != want[i] {
			t.Errorf("line %d:\n got %s", i+1, sc.Text())
			if i < len(want) {
				t.Errorf("want %s", want[i])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
