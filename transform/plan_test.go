package transform

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/fixtures"
	"github.com/fhirlake/fhirlake/schemas"
)

// TestPlansMatchGeneral runs the built-in views (and the test views) over
// the shared fixtures and the sandbox's generated resources twice: with
// the compiled plans and with the general evaluator only. Every table,
// reject and count must be the same, so a plan can never silently diverge.
func TestPlansMatchGeneral(t *testing.T) {
	builtin, err := LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{}
	for _, sub := range []string{"cms-dpc", "carin-bb"} {
		dir := filepath.Join("..", "..", "shared", "fixtures", sub)
		if nd := fixtures.NDJSON(t, fixtures.Files(t, dir, "*")...); len(nd) > 0 {
			inputs[sub] = nd
		}
	}
	srv, err := sandbox.New(sandbox.Config{Members: 40, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	var gen bytes.Buffer
	for _, rt := range srv.ResourceTypes() {
		for _, r := range srv.Resources(rt) {
			gen.Write(bytes.TrimSpace(r))
			gen.WriteByte('\n')
		}
	}
	inputs["sandbox"] = gen.Bytes()
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			fast, fastStats := transformBoth(t, builtin, false, data)
			slow, slowStats := transformBoth(t, builtin, true, data)
			compareRuns(t, fast, slow, fastStats, slowStats)
		})
	}
	t.Run("testdata", func(t *testing.T) {
		data, err := os.ReadFile(testdata("patients.ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		views := loadTestViews(t)
		fast, fastStats := transformBoth(t, views, false, data)
		slow, slowStats := transformBoth(t, views, true, data)
		compareRuns(t, fast, slow, fastStats, slowStats)
	})
}

func transformBoth(t *testing.T, views []*View, general bool, data []byte) (*MemSink, Stats) {
	t.Helper()
	e, err := NewEngine(views, Options{Workers: 1, BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	e.general = general
	sink := NewMemSink()
	t.Cleanup(sink.Release)
	st, err := e.Transform(t.Context(), "in.ndjson", bytes.NewReader(data), sink)
	if err != nil {
		t.Fatal(err)
	}
	return sink, st
}

func compareRuns(t *testing.T, fast, slow *MemSink, fastStats, slowStats Stats) {
	t.Helper()
	if diff := cmp.Diff(slowStats, fastStats); diff != "" {
		t.Errorf("stats (-general +plans):\n%s", diff)
	}
	if diff := cmp.Diff(slow.Rejects, fast.Rejects); diff != "" {
		t.Errorf("rejects (-general +plans):\n%s", diff)
	}
	rows := int64(0)
	for table := range slowStats.Rows {
		want, err := slow.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fast.JSON(table)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("table %s (-general +plans):\n%s", table, diff)
		}
		rows += slowStats.Rows[table]
	}
	if rows == 0 {
		t.Error("no rows at all: the comparison proves nothing")
	}
}
