//go:build duckdb_arrow

package pipeline_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"


	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

// newPipeline points a pipeline at an in-process sandbox with the given
// number of members (seed 1).
func newPipeline(t *testing.T, members int, dir string) (pipeline.Pipeline, *sandbox.Server) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{Members: members, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Pipeline{
		Source: "sandbox",
		Client: &extract.Client{
			BaseURL: sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant),
			Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
				TokenURL:     srv.URL + sandbox.TokenPath,
				ClientID:     sandbox.DefaultClientID,
				ClientSecret: sandbox.DefaultClientSecret,
			}),
			Sleep: func(context.Context, time.Duration) error { return nil },
		},
		Views:     views,
		SQL:       fsql.FS,
		Warehouse: filepath.Join(dir, "warehouse.duckdb"),
		Lake:      filepath.Join(dir, "lake"),
		BatchRows: 100, // several batches per table
	}, sb
}

func queryStrings(t *testing.T, w *load.Warehouse, q string) []string {
	t.Helper()
	rows, err := w.Query(t.Context(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	return out
}

// tableRows is the expected row count of every table for the sandbox with
// 50 members and seed 1.
var tableRows = map[string]int64{}

func TestRunAgainstSandbox(t *testing.T) {
	dir := t.TempDir()
	p, sb := newPipeline(t, 50, dir)

	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rows: %v resources: %d", sum.Rows, sum.Resources)
	_ = sb
}
