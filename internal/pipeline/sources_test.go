//go:build duckdb_arrow

package pipeline_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
)

// TestTwoPayersOneWarehouse loads two payers whose resource ids collide
// (both sandboxes number their members pat-0001...) into one warehouse and
// lake, as two sources: both payers' rows are kept, each keyed by its
// source; a delete at one payer leaves the other's row; and a member who
// has an MBI at both payers (under different ids) is one person, listed
// once in member_roster, with claims from both.
func TestTwoPayersOneWarehouse(t *testing.T) {
	dir := t.TempDir()
	type payer struct {
		sb *sandbox.Server
		p  pipeline.Pipeline
	}
	var payers []payer
	for i, name := range []string{"payer-a", "payer-b"} {
		sb, err := sandbox.New(sandbox.Config{Members: 12, Seed: int64(1 + i)})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(sb.Handler())
		t.Cleanup(srv.Close)
		p := pipelineFor(t, srv.URL, dir)
		p.Source = name
		payers = append(payers, payer{sb, p})
	}
	a, b := payers[0], payers[1]
	// The same human: pat-0003 at payer A, pat-0007 at payer B, with one
	// MBI written two ways.
	addMBI := func(sb *sandbox.Server, id, mbi string) {
		t.Helper()
		err := sb.Update("Patient", id, func(r map[string]any) {
			r["identifier"] = append(r["identifier"].([]any), map[string]any{"system": load.MBISystem, "value": mbi})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	addMBI(a.sb, "pat-0003", "1EG4TE5MK73")
	addMBI(b.sb, "pat-0007", "1eg4-te5-mk73")

	for _, py := range payers {
		sum, err := py.p.Run(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", py.p.Source, err)
		}
		if sum.SkippedOlder != 0 || sum.Status != pipeline.StatusCommitted {
			t.Errorf("%s: %+v: another payer's resources with the same ids must not count as older versions", py.p.Source, sum)
		}
	}
	w, err := duckdb.Open(t.Context(), a.p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	q := func(query string) []string {
		t.Helper()
		return queryStrings(t, w, query)
	}
	// Both payers' pat-0001, different people, keyed by source.
	if diff := cmp.Diff([]string{"payer-a 12", "payer-b 12"}, q("SELECT data_source || ' ' || count(*) FROM patient GROUP BY data_source ORDER BY 1")); diff != "" {
		t.Errorf("patients per source (-want +got):\n%s", diff)
	}
	if got := q("SELECT count(DISTINCT birth_date || family)::VARCHAR FROM patient WHERE id = 'pat-0001'"); got[0] != "2" {
		t.Errorf("pat-0001 of the two payers: %v distinct people, want 2", got)
	}
	eobA := q("SELECT count(*)::VARCHAR FROM eob WHERE data_source = 'payer-a'")[0]
	victim := q("SELECT min(id) FROM eob WHERE data_source = 'payer-b' AND id IN (SELECT id FROM eob WHERE data_source = 'payer-a')")[0]
	if victim == "" {
		t.Fatal("no claim id at both payers")
	}
	// One person, once on the roster, with claims at both payers.
	person := q("SELECT count(DISTINCT person_id)::VARCHAR || ' ' || min(person_id) FROM person WHERE (data_source, patient_id) IN (('payer-a', 'pat-0003'), ('payer-b', 'pat-0007'))")[0]
	count, pid, _ := strings.Cut(person, " ")
	if count != "1" {
		t.Fatalf("the member with one MBI at both payers is %s persons", count)
	}
	if got := q("SELECT count(*)::VARCHAR || ' ' || sources::VARCHAR FROM member_roster WHERE person_id = '" + pid + "' GROUP BY sources"); len(got) != 1 || got[0] != "1 [payer-a, payer-b]" {
		t.Errorf("member_roster rows of the person: %v, want one, attributed at both", got)
	}
	if got := q("SELECT string_agg(DISTINCT data_source, ',' ORDER BY data_source) FROM claim_lines WHERE person_id = '" + pid + "'"); got[0] != "payer-a,payer-b" {
		t.Errorf("the person's claims come from %v, want both payers", got)
	}
	if got := q("SELECT count(*)::VARCHAR FROM fhirlake_person_conflicts"); got[0] != "0" {
		t.Errorf("conflicts: %v", got)
	}
	w.Close()

	// Payer B deletes the claim id both payers use: payer A's claim stays,
	// and payer A's lake files are left alone.
	var aFiles []string
	filepath.Walk(a.p.Lake, func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.Contains(path, "data_source=payer-a") {
			aFiles = append(aFiles, path)
		}
		return nil
	})
	before := snapshotFiles(t, aFiles)
	b.sb.Clock().Advance(time.Hour)
	if err := b.sb.Delete("ExplanationOfBenefit", victim); err != nil {
		t.Fatal(err)
	}
	b.sb.Clock().Advance(time.Hour)
	time.Sleep(10 * time.Millisecond) // let modification times differ
	sum, err := b.p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Deleted != 1 || sum.Since == nil {
		t.Errorf("payer B's incremental run: %+v, want one delete", sum)
	}
	w, err = duckdb.Open(t.Context(), a.p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got := queryStrings(t, w, "SELECT data_source FROM eob WHERE id = '"+victim+"' ORDER BY 1")
	if diff := cmp.Diff([]string{"payer-a"}, got); diff != "" {
		t.Errorf("%s after payer B deleted it (-want +got):\n%s", victim, diff)
	}
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM eob WHERE data_source = 'payer-a'")[0]; got != eobA {
		t.Errorf("payer A has %s claims after payer B's delete, had %s", got, eobA)
	}
	if diff := cmp.Diff(before, snapshotFiles(t, aFiles)); diff != "" {
		t.Errorf("payer B's run changed payer A's lake files (-before +after):\n%s", diff)
	}
}

// snapshotFiles lists each file with its size and modification time.
func snapshotFiles(t *testing.T, files []string) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			out = append(out, f+" missing")
			continue
		}
		out = append(out, f+" "+fi.ModTime().String()+" "+fi.Name())
	}
	return out
}
