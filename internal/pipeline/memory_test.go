package pipeline_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// TestRunOnMemoryWarehouse runs the pipeline on load.Memory, without
// DuckDB (this file builds without the duckdb_arrow tag): a full run, an
// incremental run that sends the watermark as _since, and a delete, each
// committed through the load contract alone, and each published to
// load.MemoryLake with the run's changes.
func TestRunOnMemoryWarehouse(t *testing.T) {
	sb, err := sandbox.New(sandbox.Config{Members: 8, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	mem := load.NewMemory()
	defer mem.Release()
	lake := load.NewMemoryLake()
	load.RegisterLake("memory-test", load.ChangesAll, func(context.Context, string, load.LakeOptions) (load.Lake, error) { return lake, nil })
	p := pipeline.Pipeline{
		Source: "memory-payer",
		Client: &extract.Client{
			BaseURL: sandbox.StandardBase(srv.URL),
			Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
				TokenURL: srv.URL + sandbox.TokenPath, ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret,
			}),
			Sleep: func(context.Context, time.Duration) error { return nil },
		},
		Views:     views,
		Warehouse: filepath.Join(t.TempDir(), "unused.duckdb"),
		OpenWarehouse: func(context.Context, string, bool) (load.Warehouse, error) {
			return mem, nil
		},
		Lake:       "memory",
		LakeFormat: "memory-test",
	}
	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := mem.TableRows(t.Context(), []string{"patient", "coverage"})
	if diff := cmp.Diff(map[string]int64{"patient": 8, "coverage": 8}, rows); diff != "" || sum.Status != pipeline.StatusCommitted {
		t.Errorf("first run %+v, rows (-want +got):\n%s", sum, diff)
	}
	sb.Clock().Advance(time.Hour)
	if err := sb.Delete("Patient", "pat-0001"); err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(time.Hour)
	sum, err = p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Since == nil || sum.Deleted != 1 {
		t.Errorf("incremental run: since %v, deleted %d", sum.Since, sum.Deleted)
	}
	if rows, _ := mem.TableRows(t.Context(), []string{"patient"}); rows["patient"] != 7 {
		t.Errorf("patients after the delete: %d", rows["patient"])
	}
	// The lake mirrors each commit: the first run's tables, then the
	// second run's change to patient alone.
	pubs := lake.Publishes()
	if len(pubs) != 2 || pubs[1].RunID != sum.RunID || pubs[1].Source != "memory-payer" || !slices.Contains(pubs[1].Tables, "patient") {
		t.Errorf("lake publishes: %+v", pubs)
	}
	if got := lake.Rows()["patient"]["memory-payer"]; got != 7 {
		t.Errorf("the lake holds %d patients, the warehouse 7", got)
	}
	if runs := mem.Runs(); len(runs) != 2 || runs[1].Source != "memory-payer" {
		t.Errorf("runs: %+v", runs)
	}
}
