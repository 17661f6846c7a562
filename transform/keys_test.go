package transform

import (
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	tests := []struct{ view, want string }{
		{`{"name":"v","resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}]}`, ""},
		// Keys near no known one are the user's own.
		{`{"name":"v","resource":"Patient","myNote":"x","select":[{"column":[{"name":"id","path":"id","owner":"me"}]}]}`, ""},
		// A near key beside the one it resembles is not a misspelling.
		{`{"name":"v","resource":"Patient","select":[{"column":[{"name":"id","path":"id"}]}],"selects":[]}`, ""},
		{`{"name":"v","resource":"Patient","selct":[]}`, `ViewDefinition: unknown key "selct": did you mean "select"?`},
		{`{"name":"v","resource":"Patient","select":[{"forEch":"name","column":[]}]}`, `ViewDefinition.select[0]: unknown key "forEch": did you mean "forEach"?`},
		{`{"name":"v","resource":"Patient","select":[{"unionAll":[{"colum":[]}]}]}`, `ViewDefinition.select[0].unionAll[0]: unknown key "colum": did you mean "column"?`},
		{`{"name":"v","resource":"Patient","select":[{"column":[{"name":"id","pth":"id"}]}]}`, `ViewDefinition.select[0].column[0]: unknown key "pth": did you mean "path"?`},
	}
	for _, tt := range tests {
		err := checkKeys([]byte(tt.view))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: %v, want %q", tt.view, err, tt.want)
		}
	}
}
