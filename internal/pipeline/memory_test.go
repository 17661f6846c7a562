package pipeline_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
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
// committed through the load contract alone.
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
	if runs := mem.Runs(); len(runs) != 2 || runs[1].Source != "memory-payer" {
		t.Errorf("runs: %+v", runs)
	}
}
