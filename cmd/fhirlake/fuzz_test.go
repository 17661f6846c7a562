package main

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzPrintable checks that a server's X-Progress text, shown on the
// terminal, can neither break the layout nor drive the terminal: at most n
// runes of it (then "…" when it was longer), valid UTF-8, and only
// printable runes, so no control character, escape sequence or
// bidirectional override. Run it for longer with
//
//	go test -tags duckdb_arrow ./cmd/fhirlake/ -run '^$' -fuzz '^FuzzPrintable$' -fuzztime 60s -parallel 1
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{
		"  in progress 40%  ", "a\x1b[31mred\tx", "abcdefghij", "", "\x1b]0;title\x07", "\x9b2J", "\u009b2J",
		"\u202eevil", "line one\r\nline two", "a\xffb\xc3", "日本語のテキスト", "e\u0301\u0301\u0301", "\u200b\u00a0\u3000",
		strings.Repeat("é", 100),
	} {
		f.Add(s, uint8(48))
		f.Add(s, uint8(5))
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, width uint8) {
		n := int(width) % 100 // the display asks for 48; any small width will do
		got := printable(s, n)
		if !utf8.ValidString(got) {
			t.Fatalf("printable(%q, %d) = %q is not valid UTF-8", s, n, got)
		}
		if i := strings.IndexFunc(got, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
			t.Fatalf("printable(%q, %d) = %q holds a non-printable rune at byte %d", s, n, got, i)
		}
		text, cut := strings.CutSuffix(got, "…")
		if runes := utf8.RuneCountInString(text); runes > n {
			t.Fatalf("printable(%q, %d) = %q has %d runes before the ellipsis", s, n, got, runes)
		}
		if long := utf8.RuneCountInString(strings.TrimSpace(s)) > n; long && !cut {
			t.Fatalf("printable(%q, %d) = %q cut the text without saying so", s, n, got)
		}
	})
}
