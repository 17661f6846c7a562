//go:build duckdb_arrow

package hive_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/hive"
)

// watched is a warehouse snapshot that counts the Parquet copies running
// at once and fails the copies of one table.
type watched struct {
	load.Snapshot
	fail string // the table whose copies fail; "" for none

	mu        sync.Mutex
	running   int
	most      int
	completed []string // the tables of the copies that succeeded
}

var errInjected = errors.New("injected copy failure")

func (s *watched) WriteParquet(ctx context.Context, t load.Table, source string, vals []string, dst string) (int64, error) {
	s.mu.Lock()
	s.running++
	s.most = max(s.most, s.running)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	time.Sleep(20 * time.Millisecond) // long enough for another table's copy to start
	if t.Name == s.fail {
		return 0, errInjected
	}
	n, err := s.Snapshot.WriteParquet(ctx, t, source, vals, dst)
	if err == nil {
		s.mu.Lock()
		s.completed = append(s.completed, t.Name)
		s.mu.Unlock()
	}
	return n, err
}

// TestPublishWritesTablesAtOnce: Publish writes two data tables at a time,
// each whole; a table whose copy fails fails the Publish, naming it, and
// leaves the lake's record of what it mirrors as it was, so that the next
// Publish rewrites everything.
func TestPublishWritesTablesAtOnce(t *testing.T) {
	dir := t.TempDir()
	w, err := duckdb.Open(t.Context(), filepath.Join(dir, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var tables []load.Table
	for i := range 6 {
		name := fmt.Sprintf("t%d", i)
		q := fmt.Sprintf(`CREATE TABLE %s AS SELECT 'a' AS data_source, range::VARCHAR AS id,
			DATE '2021-01-01' + (range %% 3)::INTEGER * 366 AS day FROM range(%d)`, name, 1000*(i+1))
		if err := w.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		tb := load.Table{Name: name, Resource: "Basic", Key: "id"}
		if i%2 == 1 {
			tb.Partition = &load.Partition{Column: "day", Name: "day_year"}
		}
		tables = append(tables, tb)
	}
	lake := filepath.Join(dir, "lake")
	id := load.Identity{Path: w.Path(), ID: w.ID()}
	rows := func(table string) int64 {
		t.Helper()
		var n int64
		rs, err := w.Query(t.Context(), "SELECT count(*) FROM read_parquet(?)", filepath.Join(lake, table, "**", "*.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			if err := rs.Scan(&n); err != nil {
				t.Fatal(err)
			}
		}
		return n
	}

	snap := &watched{Snapshot: w}
	if err := hive.Open(lake).Publish(t.Context(), snap, id, tables, nil); err != nil {
		t.Fatal(err)
	}
	if snap.most != 2 {
		t.Errorf("at most %d tables written at once, want 2", snap.most)
	}
	for i, tb := range tables {
		if got, want := rows(tb.Name), int64(1000*(i+1)); got != want {
			t.Errorf("%s: %d rows in the lake, want %d", tb.Name, got, want)
		}
	}
	meta, err := os.ReadFile(filepath.Join(lake, hive.MetaDir, hive.LakeMetaFile))
	if err != nil {
		t.Fatal(err)
	}

	if err := w.Exec(t.Context(), "INSERT INTO t3 SELECT 'a', 'new' || range, DATE '2024-06-01' FROM range(10)"); err != nil {
		t.Fatal(err)
	}
	failing := &watched{Snapshot: w, fail: "t3"}
	err = hive.Open(lake).Publish(t.Context(), failing, id, tables, nil)
	if !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "lake t3") {
		t.Fatalf("Publish with t3's copy failing: %v; want the injected failure, naming t3", err)
	}
	// t4 and t5 start after t3 (two at a time, in order), when it has
	// failed or is about to.
	if slices.Contains(failing.completed, "t4") || slices.Contains(failing.completed, "t5") {
		t.Errorf("tables were still written after t3 failed: %v", failing.completed)
	}
	after, err := os.ReadFile(filepath.Join(lake, hive.MetaDir, hive.LakeMetaFile))
	if err != nil || string(after) != string(meta) {
		t.Errorf("a failed Publish rewrote %s (error %v)", hive.LakeMetaFile, err)
	}
	if got := rows("t3"); got != 4000 {
		t.Errorf("t3: %d rows in the lake after its failed copy, want the 4000 of the last Publish", got)
	}
	if err := hive.Open(lake).Publish(t.Context(), w, id, tables, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows("t3"); got != 4010 {
		t.Errorf("t3: %d rows in the lake after the next Publish, want 4010", got)
	}
}
