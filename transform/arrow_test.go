package transform

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// TestFastDecimal checks the fast path against decimal128.FromString.
func TestFastDecimal(t *testing.T) {
	for _, s := range []string{"0", "0.00", "12.5", "-12.50", "+3", "999999999.99", "1000000000", "0.001", "1.", ".5", "1e3", "", "-", "12345678901234567890", "00012.30"} {
		for _, ps := range [][2]int32{{12, 2}, {18, 6}, {38, 10}} {
			got, ok := fastDecimal(s, ps[0], ps[1])
			want, err := decimal128.FromString(s, ps[0], ps[1])
			if ok && (err != nil || got != want) {
				t.Errorf("fastDecimal(%q, %d, %d) = %v, FromString = %v, %v", s, ps[0], ps[1], got, want, err)
			}
		}
	}
}

// TestFastDate checks the fast path against ParseDate.
func TestFastDate(t *testing.T) {
	for _, s := range []string{"2024-02-29", "2023-02-29", "1999-12-31", "2001-13-01", "2001-01-00", "2001-01-01T10:00:00Z", "2001-01", "20x1-01-01"} {
		got, ok := fastDate(s)
		want, err := ParseDate(s)
		if ok && (err != nil || got != arrow.Date32FromTime(want)) {
			t.Errorf("fastDate(%q) = %v, ParseDate = %v, %v", s, got, want, err)
		}
	}
}
