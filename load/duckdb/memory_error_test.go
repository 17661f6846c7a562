//go:build duckdb_arrow

package duckdb

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
)

// TestCommitOutOfMemory: a run whose changes do not fit in the memory
// FHIRLAKE_WAREHOUSE_MEMORY gives DuckDB fails with load.ErrOutOfMemory,
// in one line naming the variable and its value (not DuckDB's advice
// about settings a user cannot reach), and commits nothing; a snapshot's
// reader says the same; other errors pass through outOfMemory unchanged.
func TestCommitOutOfMemory(t *testing.T) {
	t.Setenv(MemoryEnv, "8MB")
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := t.Context()
	l, err := w.Begin(ctx, "test", tables)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200_000
	ids := make([]string, n)
	pairs := make([]any, 0, 4*n)
	for i := range ids {
		ids[i] = fmt.Sprintf("claim-%07d-with-a-long-identifier", i)
		pairs = append(pairs, ids[i], 1, ids[i], 2)
	}
	for _, b := range []batch{{load.Resources, resources(ids...)}, {"parent", parents(ids...)}, {"child", children(pairs...)}} {
		if err := l.WriteBatch(ctx, b.table, b.rec); err != nil {
			t.Fatal(err)
		}
		b.rec.Release()
	}
	_, err = l.Commit(ctx, load.Run{ID: "big", Source: "test", Scope: "all", Started: time.Now()})
	if !errors.Is(err, load.ErrOutOfMemory) {
		t.Fatalf("commit: %v, want ErrOutOfMemory", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, MemoryEnv+" (now 8MB)") || strings.Contains(msg, "\n") || strings.Contains(msg, "SET threads") {
		t.Errorf("message %q: want one line naming %s and its value, without DuckDB's advice", msg, MemoryEnv)
	}
	if got := query(t, w, "SELECT count(*)::VARCHAR FROM fhirlake_runs"); len(got) != 1 || got[0] != "0" {
		t.Errorf("runs recorded after the failed commit: %v", got)
	}

	// A snapshot's reader (the lake's reads after the commit) says the same.
	r := &sliceReader{err: errors.New("Out of Memory Error: failed to pin block of size 256.0 KiB\n\nPossible solutions: ...")}
	if err := r.Err(); !errors.Is(err, load.ErrOutOfMemory) || strings.Contains(err.Error(), "\n") {
		t.Errorf("snapshot reader: %q, want ErrOutOfMemory in one line", err)
	}

	other := errors.New("Catalog Error: Table with name x does not exist")
	if got := outOfMemory(other); got != other {
		t.Errorf("outOfMemory changed another error: %v", got)
	}
	if outOfMemory(nil) != nil {
		t.Error("outOfMemory(nil) is not nil")
	}
}
