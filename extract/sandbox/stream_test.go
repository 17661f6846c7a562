package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// TestGenerateStreamsWhatNewServes: the streamed population is, type by
// type and in order, the one a server holds.
func TestGenerateStreamsWhatNewServes(t *testing.T) {
	cfg := Config{Members: 30, Seed: 7}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][][]byte{}
	if err := Generate(cfg, func(typ string, line []byte) error {
		got[typ] = append(got[typ], bytes.Clone(line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, typ := range srv.ResourceTypes() {
		want := srv.Resources(typ)
		if len(got[typ]) != len(want) {
			t.Errorf("%s: %d streamed, the server holds %d", typ, len(got[typ]), len(want))
			continue
		}
		for i := range want {
			if !bytes.Equal(got[typ][i], want[i]) {
				t.Errorf("%s #%d differs:\n%s\n%s", typ, i, got[typ][i], want[i])
				break
			}
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := Generate(cfg, func(string, []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("an error from fn: %v after %d calls", err, n)
	}
}

// TestHistoryYears: HistoryYears spreads claims over that many years
// before the clock start and keeps the first year as it was.
func TestHistoryYears(t *testing.T) {
	years := func(cfg Config) (map[int]int, int) {
		seen := map[int]int{}
		total := 0
		err := Generate(cfg, func(typ string, line []byte) error {
			if typ != "ExplanationOfBenefit" {
				return nil
			}
			total++
			var eob struct {
				BillablePeriod struct{ Start string } `json:"billablePeriod"`
			}
			if err := json.Unmarshal(line, &eob); err != nil {
				return err
			}
			d, err := time.Parse("2006-01-02", eob.BillablePeriod.Start[:10])
			if err != nil {
				return err
			}
			seen[d.Year()]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return seen, total
	}
	one, n1 := years(Config{Members: 50, Seed: 1})
	five, n5 := years(Config{Members: 50, Seed: 1, HistoryYears: 5})
	if len(one) > 2 || len(five) < 5 {
		t.Errorf("claim years: %v with one year of history, %v with five", one, five)
	}
	if n5 < 4*n1 {
		t.Errorf("%d claims over five years, %d over one", n5, n1)
	}
}
