//go:build duckdb_arrow

package pipeline_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
)

// TestSyncWaitsForRunningSource: a sync copies a source under its lease.
// While a run holds the source, the sync waits for it up to its bound and
// then fails with ErrLeased, copying nothing of that source; once the run
// lets go, the sync copies it.
func TestSyncWaitsForRunningSource(t *testing.T) {
	dir := t.TempDir()
	p, _ := newPipeline(t, 5, dir)
	p.LakeFormat = iceberg.Format
	p.LakeOptions = load.LakeOptions{Catalog: "sqlite:" + filepath.Join(dir, "catalog.db")}
	if _, err := p.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	openLake := func(ctx context.Context) (load.Lake, error) {
		return iceberg.Open(ctx, p.Lake, load.LakeOptions{Catalog: p.LakeOptions.Catalog})
	}
	lk, err := iceberg.Open(t.Context(), p.Lake, load.LakeOptions{Catalog: p.LakeOptions.Catalog})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	lease, err := lk.Lease(t.Context(), p.Source, "elsewhere:/w.duckdb", "a run elsewhere", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "analyst.duckdb")
	o := pipeline.SyncOptions{Warehouse: target, Lake: openLake, Wait: time.Second}
	if _, err := pipeline.Sync(t.Context(), o); !errors.Is(err, load.ErrLeased) || !strings.Contains(err.Error(), "a run elsewhere") {
		t.Fatalf("sync while a run holds the source: %v", err)
	}
	go func() {
		time.Sleep(time.Second)
		lease.Release(context.Background())
	}()
	o.Wait = time.Minute
	res, err := pipeline.Sync(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Restored) != 1 || res.Rows == 0 {
		t.Fatalf("sync: %+v", res)
	}
	w, err := duckdb.OpenReadOnly(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := queryStrings(t, w, "SELECT count(*)::VARCHAR FROM patient"); got[0] != "5" {
		t.Errorf("patients in the synced file: %v", got)
	}
}
