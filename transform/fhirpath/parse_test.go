package fhirpath

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		ok    bool
		want  string // canonical String(), or the error message
	}{
		{"path", "name.family", true, "name.family"},
		{"spaces", "name . given", true, "name.given"},
		{"where", "name.where(use='official').family", true, "name.where(use = 'official').family"},
		{"index", "name[0].given[1]", true, "name[0].given[1]"},
		{"string escape", `'it\'s'`, true, `'it\'s'`},
		{"integer", "42", true, "42"},
		{"decimal", "4.50", true, "4.50"},
		{"boolean", "true and false", true, "true and false"},
		{"empty", "{}", true, "{}"},
		{"date", "@2020-01", true, "@2020-01"},
		{"datetime", "@2020-01-02T10:00:00Z", true, "@2020-01-02T10:00:00Z"},
		{"time", "@T10:30", true, "@T10:30"},
		{"constant", "gender = %gender", true, "gender = %gender"},
		{"delimited constant", "%`a-b`", true, "%`a-b`"},
		{"this", "$this.value", true, "$this.value"},
		{"precedence kept", "a or b and c", true, "a or b and c"},
		{"parens kept", "(a or b) and c", true, "(a or b) and c"},
		{"unary", "-1 + 2", true, "-1 + 2"},
		{"ofType", "value.ofType(Quantity).value", true, "value.ofType(Quantity).value"},
		{"qualified type", "value.ofType(FHIR.Quantity)", true, "value.ofType(FHIR.Quantity)"},
		{"is", "value is Quantity", true, "value is Quantity"},
		{"reference key", "subject.getReferenceKey(Patient)", true, "subject.getReferenceKey(Patient)"},
		{"delimited keyword", "`div`.x", true, "`div`.x"},
		{"arithmetic", "a * b / c - d & e", true, "a * b / c - d & e"},
		{"comparison", "a <= 3 xor b != 'x' implies c", true, "a <= 3 xor b != 'x' implies c"},
		{"unexpected paren", "name.where(use = 'x'))", false, "fhirpath: 1:22: unexpected ')'"},
		{"unknown function", "name.foo()", false, "fhirpath: 1:6: unknown function foo"},
		{"arity", "first(1)", false, "fhirpath: 1:1: first takes 0 arguments, got 1"},
		{"bad date", "@@", false, "fhirpath: 1:1: invalid date/time literal"},
		{"unterminated", "'abc", false, "fhirpath: 1:1: unterminated string"},
		{"dangling op", "a and", false, "fhirpath: 1:6: unexpected end of input"},
		{"second line", "a\n  )", false, "fhirpath: 2:3: unexpected ')'"},
		{"ofType needs type", "ofType(1)", false, "fhirpath: 1:8: ofType: expected a type name"},
		{"too deep", repeat("(", 200) + "1" + repeat(")", 200), false, "fhirpath: 1:101: expression nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.input)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Parse(%q) = %s, want error %q", tt.input, e, tt.want)
				}
				if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.input, err)
			}
			got := e.String()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("String() (-want +got):\n%s", diff)
			}
			// Round trip: the canonical form parses to itself.
			e2, err := Parse(got)
			if err != nil {
				t.Fatalf("reparse %q: %v", got, err)
			}
			if e2.String() != got {
				t.Errorf("round trip: %q -> %q", got, e2.String())
			}
		})
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}
