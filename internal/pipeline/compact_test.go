//go:build duckdb_arrow

package pipeline_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/fhirlake/fhirlake/internal/bench"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// compactionCase is a pipeline into a new warehouse, a 40 MB export and a
// set of changes to a quarter of its resources.
func compactionCase(t *testing.T) (p pipeline.Pipeline, export, changes string) {
	t.Helper()
	root := t.TempDir()
	export, changes = filepath.Join(root, "export"), filepath.Join(root, "changes")
	if _, err := bench.GenerateExport(export, 40<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := bench.GenerateChanges(export, changes, 4); err != nil {
		t.Fatal(err)
	}
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Pipeline{Source: "payer", Views: views, Warehouse: filepath.Join(root, "w.duckdb")}, export, changes
}

// TestRunsCompactTheWarehouse: a run that replaces a quarter of the
// resources leaves a quarter of every table's stored rows deleted, so it
// compacts the warehouse after its commit and says so in its summary; the
// tables it names then store only their current rows, as many as before.
func TestRunsCompactTheWarehouse(t *testing.T) {
	p, export, changes := compactionCase(t)
	full, err := p.LoadDir(t.Context(), export)
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Compacted) != 0 {
		t.Errorf("a full load into a new warehouse compacted %v", full.Compacted)
	}
	sum, err := p.LoadDir(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resources == 0 || sum.Unchanged != 0 {
		t.Fatalf("the changes loaded %d resources, %d unchanged", sum.Resources, sum.Unchanged)
	}
	if !slices.Contains(sum.Compacted, "eob_item_adjudication") {
		t.Errorf("compacted %v, want eob_item_adjudication among them", sum.Compacted)
	}
	if _, ok := sum.Timings["compact"]; !ok {
		t.Errorf("no compact timing in %v", sum.Timings)
	}

	w, err := duckdb.OpenReadOnly(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, table := range sum.Compacted {
		var stored, live int64
		q := "SELECT (SELECT estimated_size FROM duckdb_tables() WHERE table_name = $1), (SELECT count(*) FROM " + table + ")"
		rows, err := w.Query(t.Context(), q, table)
		if err != nil {
			t.Fatal(err)
		}
		if !rows.Next() {
			t.Fatalf("%s: no row", q)
		}
		err = rows.Scan(&stored, &live)
		rows.Close()
		if err != nil {
			t.Fatal(err)
		}
		if stored != live {
			t.Errorf("%s stores %d rows after compaction, %d of them current", table, stored, live)
		}
		if want, ok := full.Rows[table]; ok && live != want {
			t.Errorf("%s holds %d rows, want %d as after the full load", table, live, want)
		}
	}
}

// TestNoCompactLeavesItToCompact: a run with NoCompact leaves a warehouse
// that is due for compaction as it is; Compact then compacts it, and
// again only with Force.
func TestNoCompactLeavesItToCompact(t *testing.T) {
	p, export, changes := compactionCase(t)
	p.NoCompact = true
	if _, err := p.LoadDir(t.Context(), export); err != nil {
		t.Fatal(err)
	}
	sum, err := p.LoadDir(t.Context(), changes)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sum.Timings["compact"]; ok || len(sum.Compacted) != 0 {
		t.Errorf("a run with NoCompact compacted %v (timings %v)", sum.Compacted, sum.Timings)
	}
	c, err := pipeline.Compact(t.Context(), pipeline.CompactOptions{Warehouse: p.Warehouse})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rewritten || !slices.ContainsFunc(c.Tables, func(t load.Compacted) bool { return t.Table == "eob_item_adjudication" }) || c.After >= c.Before {
		t.Errorf("Compact: %+v; want a smaller file, eob_item_adjudication among its tables", c)
	}
	if c, err := pipeline.Compact(t.Context(), pipeline.CompactOptions{Warehouse: p.Warehouse}); err != nil || c.Rewritten {
		t.Errorf("Compact again: %+v, %v; want nothing", c, err)
	}
	if c, err := pipeline.Compact(t.Context(), pipeline.CompactOptions{Warehouse: p.Warehouse, Force: true}); err != nil || !c.Rewritten {
		t.Errorf("Compact with Force: %+v, %v; want a rewrite", c, err)
	}
	if _, err := pipeline.Compact(t.Context(), pipeline.CompactOptions{Warehouse: filepath.Join(t.TempDir(), "missing.duckdb")}); err == nil {
		t.Error("Compact of a missing warehouse succeeded")
	}
}
