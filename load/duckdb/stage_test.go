//go:build duckdb_arrow

package duckdb

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
	"github.com/google/go-cmp/cmp"
)

// TestStagedViewsAnswerRight guards the staged rows' Arrow views against
// DuckDB pushing a column list or a filter into a producer that ignores
// them: a query naming the third column must read the third column, and a
// filter must filter.
func TestStagedViewsAnswerRight(t *testing.T) {
	ctx := t.Context()
	w, err := Open(ctx, filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	li, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	l := li.(*Loader)
	defer l.Rollback(ctx)
	for _, b := range []batch{{"parent", parents("a", "b", "c")}, {"child", children("a", 1, "b", 2, "c", 3)}} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	tests := []struct {
		table, query string // %s is the staged selection
		want         []string
	}{
		{"parent", "SELECT strftime(updated, '%%Y') FROM (%s) ORDER BY 1 LIMIT 1", []string{"2025"}},
		{"parent", "SELECT amount::VARCHAR FROM (%s) ORDER BY 1", []string{"0.25", "1.25", "2.25"}},
		{"parent", "SELECT id FROM (%s) WHERE amount > 1 ORDER BY 1", []string{"b", "c"}},
		{"child", "SELECT seq::VARCHAR FROM (%s) WHERE parent_id = 'b'", []string{"2"}},
		{"child", "SELECT count(*)::VARCHAR FROM (%s) WHERE seq >= 2", []string{"2"}},
	}
	for _, tt := range tests {
		var table load.Table
		for _, tb := range tables {
			if tb.Name == tt.table {
				table = tb
			}
		}
		l.mu.Lock()
		sel, release, err := l.stagedView(table)
		l.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		q := fmt.Sprintf(tt.query, sel)
		got := query(t, w, q)
		release()
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", q, diff)
		}
	}
}

// TestStageFoldersRemoved: a run's stage folder holds its rows until the
// commit and is gone when the warehouse closes, while the next run stages
// at once; the folders a killed run left (its own, one it was still
// removing) go when the next run begins.
func TestStageFoldersRemoved(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "w.duckdb")
	stageFiles := func() []string {
		t.Helper()
		var out []string
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.Contains(p, ".stage") {
				out = append(out, p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// As a killed run leaves them.
	for _, f := range []string{"w.duckdb.stage/parent.0.arrows", "w.duckdb.stage" + discardedSuffix + "123/stage/child.3.arrows"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("rows"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	if got := stageFiles(); !slices.Equal(got, []string{filepath.Join(dir, "w.duckdb.stage")}) {
		t.Errorf("after Begin: %v, want the run's empty stage folder alone", got)
	}
	for _, b := range []batch{{load.Resources, resources("a")}, {"parent", parents("a")}} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	if len(stageFiles()) < 2 {
		t.Errorf("staged rows: %v, want files in the stage folder", stageFiles())
	}
	if _, err := l.Commit(ctx, load.Run{ID: "r1", Source: "test", Scope: "all", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	loadRun(t, w, "r2", batch{load.Resources, resources("b")}, batch{"parent", parents("b")})
	if got := query(t, w, "SELECT id FROM parent ORDER BY id"); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("rows %v, want a and b", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := stageFiles(); len(got) != 0 {
		t.Errorf("after Close: %v, want no stage folder", got)
	}
}
