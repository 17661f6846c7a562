package suggest

import "testing"

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		d    int
	}{
		{"", "", 0},
		{"run", "run", 0},
		{"rnu", "run", 1}, // a swap
		{"rn", "run", 1},
		{"selct", "select", 1},
		{"kitten", "sitting", 3},
		{"", "abc", 3},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.d)
		}
		if got := Distance(tt.b, tt.a); got != tt.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.b, tt.a, got, tt.d)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"run", "rebuild", "status", "sandbox", "fhir-url", "log-level", "log-format", "warehouse", "Patient", "Practitioner"}
	tests := []struct{ typed, want string }{
		{"rnu", "run"},
		{"stauts", "status"},
		{"fhir-ulr", "fhir-url"},
		{"log-levl", "log-level"},
		{"warehose", "warehouse"},
		{"Patinet", "Patient"},
		{"frobnicate", ""},
		{"rn", "run"},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.typed, names); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.typed, got, tt.want)
		}
	}
}
