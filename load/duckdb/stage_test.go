//go:build duckdb_arrow

package duckdb

import (
	"fmt"
	"path/filepath"
	"testing"

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
