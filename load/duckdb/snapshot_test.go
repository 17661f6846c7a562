//go:build duckdb_arrow

package duckdb

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/fhirlake/fhirlake/load"
)

// TestSnapshotReadersAtOnce: record streams of the snapshot read at the
// same time, from several goroutines, each get every row (a lake
// publishes several tables at once), and release their connections.
func TestSnapshotReadersAtOnce(t *testing.T) {
	w, err := Open(t.Context(), filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const rows = 300_000
	if err := w.Exec(t.Context(), `CREATE TABLE big AS SELECT 'a' AS data_source, range::VARCHAR AS id, range * 2 AS v FROM range(300000)`); err != nil {
		t.Fatal(err)
	}
	big := load.Table{Name: "big", Resource: "Basic", Key: "id"}
	const readers = 4
	got := make([]int64, readers)
	errs := make([]error, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rr load.RecordReader
			if i%2 == 0 {
				rr, errs[i] = w.Records(t.Context(), big, "a", nil)
			} else {
				rr, errs[i] = w.TableRecords(t.Context(), "big")
			}
			if errs[i] != nil {
				return
			}
			defer rr.Release()
			for rr.Next() {
				got[i] += rr.RecordBatch().NumRows()
			}
			errs[i] = rr.Err()
		}()
	}
	wg.Wait()
	for i := range readers {
		if errs[i] != nil || got[i] != rows {
			t.Errorf("reader %d: %d rows, error %v; want %d", i, got[i], errs[i], rows)
		}
	}
	if n := w.db.Stats().InUse; n != 1 {
		t.Errorf("%d connections in use after the readers were released, want the warehouse's own", n)
	}
}
