//go:build duckdb_arrow

package iceberg_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

// TestPrefetchedDeletes: a run whose commit hands its changed resources to
// Prefetch (load.Run.Decided) has its publish use the position deletes
// written meanwhile, for each changed table and the version index, and
// the lake mirrors the warehouse. When another warehouse commits to the
// same tables between the prefetch and the publish, the prefetched
// deletes no longer hold: the publish finds the rows itself, and the
// files the prefetch wrote are deleted. A prefetch no publish takes is
// deleted by Close.
func TestPrefetchedDeletes(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	catalog := "sqlite:" + filepath.Join(root, "catalog.db")
	open := func(name string) (*duckdb.Warehouse, *iceberg.Lake) {
		w := warehouseAt(t, filepath.Join(root, name+".duckdb"))
		lk, err := iceberg.Open(ctx, filepath.Join(root, "lake"), load.LakeOptions{Warehouse: w.Path(), Catalog: catalog})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lk.Close() })
		return w, lk
	}
	wa, lka := open("a")
	wb, lkb := open("b")
	all := claims(30, 3)
	publish(t, lka, wa, commit(t, wa, "payer-a", "a1", nil, all...))
	publish(t, lkb, wb, commit(t, wb, "payer-b", "b1", nil, all...))
	prefetch := func(lk *iceberg.Lake, source string) func(map[string][]string) {
		return func(keys map[string][]string) { lk.Prefetch(ctx, source, keys, tables) }
	}
	check := func(when string) {
		t.Helper()
		icebergtest.CheckMirrorsWhere(t, wa, lka, "", "data_source = 'payer-a'", "claim", "claim_line")
		icebergtest.CheckMirrorsWhere(t, wa, lka, "", "source = 'payer-a'", "fhirlake_resources")
		icebergtest.CheckMirrorsWhere(t, wb, lkb, "", "data_source = 'payer-b'", "claim", "claim_line")
		icebergtest.CheckMirrorsWhere(t, wb, lkb, "", "source = 'payer-b'", "fhirlake_resources")
		if t.Failed() {
			t.Fatalf("the lake does not mirror the warehouses %s", when)
		}
	}

	// a2: two claims change and one goes; the publish uses the prefetch
	// of claim, claim_line and the version index.
	ch := commitWith(t, wa, "payer-a", "a2", prefetch(lka, "payer-a"), []string{"c05"},
		claim{"c00", "2021-03-01", 3}, claim{"c01", "2020-03-01", 1})
	publish(t, lka, wa, ch)
	if n := iceberg.PrefetchesUsed(lka); n != 3 {
		t.Errorf("a2 used %d prefetched tables, want 3", n)
	}
	check("after a2")

	// a3 prefetches, then b2 commits to the same tables: a3 must not use
	// deletes written against the snapshots before b2's.
	before := filesUnder(t, filepath.Join(root, "lake"))
	ch = commitWith(t, wa, "payer-a", "a3", prefetch(lka, "payer-a"), nil, claim{"c02", "2022-03-01", 2}, claim{"c03", "2020-03-01", 4})
	publish(t, lkb, wb, commit(t, wb, "payer-b", "b2", []string{"c07"}, claim{"c02", "2020-03-01", 1}))
	publish(t, lka, wa, ch)
	if n := iceberg.PrefetchesUsed(lka); n != 3 {
		t.Errorf("a3 used %d prefetched tables after b2 changed them, want none", n-3)
	}
	check("after a3")
	for _, name := range []string{"claim", "claim_line", load.IndexTable} {
		files, deletes := icebergtest.Files(t, lka, name)
		current := map[string]bool{}
		for _, f := range append(files, deletes...) {
			current[strings.TrimPrefix(f, "file://")] = true
		}
		for f := range filesUnder(t, filepath.Join(root, "lake", name)) {
			if !before[f] && !current[f] {
				t.Errorf("%s, written by a3 or b2, is not in %s's current snapshot", f, name)
			}
		}
	}

	// a4 prefetches and its publish never comes (the process stops):
	// Close deletes what the prefetch wrote.
	before = filesUnder(t, filepath.Join(root, "lake"))
	commitWith(t, wa, "payer-a", "a4", prefetch(lka, "payer-a"), nil, claim{"c04", "2022-03-01", 2})
	lka.Close()
	for f := range filesUnder(t, filepath.Join(root, "lake")) {
		if !before[f] {
			t.Errorf("%s, prefetched for a4, outlived the lake's Close", f)
		}
	}
}
