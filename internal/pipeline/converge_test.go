//go:build duckdb_arrow

package pipeline_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load/duckdb"
)

// changeSandbox plays a day at the payer: about 10% of resources updated
// (claims lose a line, labs are corrected), some deleted, a new member
// enrolled, new claims for existing members, and the _since trap: a member
// newly attributed to a group whose whole history was last updated long
// before the watermark.
func changeSandbox(t *testing.T, sb interface {
	Resources(string) [][]byte
	Update(string, string, func(map[string]any)) error
	Delete(string, string) error
	Put([]byte) error
	GroupIDs() []string
}) (trapID, freshID string) {
	t.Helper()
	ids := func(typ string) []string {
		var out []string
		for _, r := range sb.Resources(typ) {
			var m struct{ ID string }
			json.Unmarshal(r, &m)
			out = append(out, m.ID)
		}
		return out
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Observation"} {
		for i, id := range ids(typ) {
			switch {
			case i%10 == 3:
				must(sb.Update(typ, id, func(m map[string]any) {
					switch typ {
					case "ExplanationOfBenefit":
						if items, ok := m["item"].([]any); ok && len(items) > 1 {
							m["item"] = items[:len(items)-1] // a line reversed
						}
						m["outcome"] = "partial"
					case "Observation":
						m["status"] = "amended"
					default:
						m["status"] = "active"
						if typ == "Patient" {
							m["gender"] = "unknown"
						}
					}
				}))
			case i%25 == 7 && typ != "Patient" && typ != "Coverage":
				must(sb.Delete(typ, id))
			}
		}
	}
	// The trap member: a copy of member 1 under new ids, every resource
	// still last updated long ago; only the group that now lists them is new.
	trapID, freshID = "pat-9001", "pat-9002"
	copyMember := func(from, to string, keepDates bool) {
		for _, typ := range []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Observation", "Condition"} {
			for _, r := range sb.Resources(typ) {
				s := string(r)
				if !strings.Contains(s, `"`+from+`"`) && !strings.Contains(s, "Patient/"+from+`"`) {
					continue
				}
				n := strings.ReplaceAll(s, from, to)
				n = strings.ReplaceAll(n, "-"+strings.TrimPrefix(from, "pat-")+"-", "-"+strings.TrimPrefix(to, "pat-")+"-")
				n = strings.ReplaceAll(n, "cov-"+strings.TrimPrefix(from, "pat-"), "cov-"+strings.TrimPrefix(to, "pat-"))
				if !keepDates {
					var m map[string]any
					json.Unmarshal([]byte(n), &m)
					delete(m["meta"].(map[string]any), "lastUpdated")
					b, _ := json.Marshal(m)
					n = string(b)
				}
				must(sb.Put([]byte(n)))
			}
		}
	}
	copyMember("pat-0001", trapID, true)
	copyMember("pat-0002", freshID, false) // newly enrolled: everything is new
	must(sb.Update("Group", sb.GroupIDs()[1], func(m map[string]any) {
		m["member"] = append(m["member"].([]any), map[string]any{
			"entity": map[string]any{"reference": "Patient/" + trapID}, "period": map[string]any{"start": "2026-01-06"}})
	}))
	return trapID, freshID
}

func TestIncrementalRunConvergesToFullLoad(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 60, dir)
	first, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	trapID, freshID := changeSandbox(t, sb)

	second, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if second.Since == nil || !second.Since.Equal(first.TransactionTime) {
		t.Fatalf("second run since %v, want %v", second.Since, first.TransactionTime)
	}
	if want := []string{trapID, freshID}; !slices.Equal(second.Backfill.Patients, want) || second.Backfill.Mode != "patient" {
		t.Errorf("back-fill %+v, want members %v by patient export", second.Backfill, want)
	}
	if second.Deleted == 0 {
		t.Error("no deletes applied")
	}
	// Run 2 exported only what changed (plus the two back-filled members).
	if second.Resources >= first.Resources/3 {
		t.Errorf("incremental run carried %d resources of %d: not incremental", second.Resources, first.Resources)
	}

	// A fresh full load of the payer's new state, in another warehouse.
	fresh := p
	fresh.Warehouse = filepath.Join(t.TempDir(), "fresh.duckdb")
	fresh.Lake = ""
	fresh.WorkDir = filepath.Join(t.TempDir(), "work")
	if _, err := fresh.Run(t.Context()); err != nil {
		t.Fatal(err)
	}

	w, err := duckdb.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Exec(t.Context(), "ATTACH '"+fresh.Warehouse+"' AS fresh (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	for _, v := range p.Views {
		n := v.Name()
		for _, q := range []string{
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM main.%s EXCEPT ALL SELECT * FROM fresh.%s)", n, n),
			fmt.Sprintf("SELECT count(*)::VARCHAR FROM (SELECT * FROM fresh.%s EXCEPT ALL SELECT * FROM main.%s)", n, n),
		} {
			if got := queryStrings(t, w, q); got[0] != "0" {
				t.Errorf("%s: %s rows differ from a fresh full load", n, got[0])
			}
		}
	}
	// The trap member's old claims arrived.
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM eob WHERE patient_id = '"+trapID+"'"); got[0] == "0" {
		t.Errorf("the newly attributed member's history is missing")
	}
}
