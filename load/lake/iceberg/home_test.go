//go:build duckdb_arrow

package iceberg_test

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

// allFiles lists every file under dir with its size and modification
// time: what must not change.
func allFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = info.ModTime().String() + " " + info.Name()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCopiedLakeIsRefusedUntilRelocated: a lake folder copied with its
// catalog still has the catalog name the original folder. Every use of
// the copy is refused with ErrLakeMoved, naming both places, and the
// original is left as it was (before, a publish to the copy added
// snapshots to the original). Relocate drops the stale entries, after
// which a whole publish makes the copy mirror the warehouse, and the
// original still has not changed.
func TestCopiedLakeIsRefusedUntilRelocated(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	w := warehouseAt(t, filepath.Join(root, "w.duckdb"))
	opts := load.LakeOptions{Warehouse: w.Path(), Catalog: "sqlite:" + filepath.Join(root, "catalog.db")}
	orig, copied := filepath.Join(root, "lake"), filepath.Join(root, "copy")
	lk, err := iceberg.Open(ctx, orig, opts)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(6, 3)...))
	lk.Close()
	if err := os.CopyFS(copied, os.DirFS(orig)); err != nil {
		t.Fatal(err)
	}
	// The copy's files are as old as a lake's that was copied a day after
	// it was written.
	dayAgo := time.Now().Add(-24 * time.Hour)
	stale := filesUnder(t, copied)
	for f := range stale {
		if err := os.Chtimes(f, dayAgo, dayAgo); err != nil {
			t.Fatal(err)
		}
	}
	before := allFiles(t, orig)

	lk, err = iceberg.Open(ctx, copied, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	ch := commit(t, w, "payer-a", "r2", nil, claim{"c01", "2024-03-01", 3})
	uses := map[string]func() error{
		"check":    func() error { return lk.Check(ctx, w.Path(), w.ID(), "payer-a") },
		"publish":  func() error { return lk.Publish(ctx, w, load.Identity{Path: w.Path(), ID: w.ID()}, tables, ch) },
		"contents": func() error { _, err := lk.Contents(ctx); return err },
		"read":     func() error { _, err := lk.ReadTable(ctx, "claim"); return err },
		"expire":   func() error { _, err := lk.Expire(ctx, 0); return err },
	}
	for name, use := range uses {
		err := use()
		if !errors.Is(err, load.ErrLakeMoved) {
			t.Fatalf("%s of the copy: %v, want ErrLakeMoved", name, err)
		}
		for _, want := range []string{"file://" + orig, "file://" + copied, "--relocate"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s of the copy: %q does not name %s", name, err, want)
			}
		}
	}
	if after := allFiles(t, orig); !maps.Equal(before, after) {
		t.Fatalf("using the copy changed the original lake: %d files before, %d after", len(before), len(after))
	}

	names, roots, err := lk.Elsewhere(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantNames := []string{"claim", "claim_line"}
	if !slices.Equal(roots, []string{"file://" + orig}) || len(names) < len(wantNames) {
		t.Fatalf("elsewhere: %v under %v", names, roots)
	}
	moved, err := lk.Relocate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(moved, names) {
		t.Errorf("relocated %v, want %v", moved, names)
	}
	publish(t, lk, w, nil)
	icebergtest.CheckMirrors(t, w, lk, "", wantNames...)
	tbl, err := lk.Table(ctx, "claim")
	if err != nil {
		t.Fatal(err)
	}
	if loc := tbl.MetadataLocation(); !strings.HasPrefix(loc, "file://"+copied+"/") {
		t.Errorf("claim's metadata after the relocation: %s, want it under the copy", loc)
	}
	if after := allFiles(t, orig); !maps.Equal(before, after) {
		t.Errorf("relocating the copy changed the original lake: %d files before, %d after", len(before), len(after))
	}
	if again, err := lk.Relocate(ctx); err != nil || len(again) != 0 {
		t.Errorf("a second relocation: %v, %v; want nothing to do", again, err)
	}
	// The copied data files, which no snapshot of the relocated tables
	// references, are orphans that expiry removes.
	if _, err := lk.Expire(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	left := filesUnder(t, copied)
	for f := range stale {
		if left[f] {
			t.Errorf("expiry left the copied file %s", f)
		}
	}
	if len(left) == 0 {
		t.Error("expiry removed every data file of the relocated lake")
	}
	icebergtest.CheckMirrors(t, w, lk, "", wantNames...)
}

// TestLakeReachedThroughALink: a lake created through a symbolic link and
// opened by its real path (or the other way round) is the same folder: it
// is used, not refused as moved.
func TestLakeReachedThroughALink(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	w := warehouseAt(t, filepath.Join(root, "w.duckdb"))
	dir, link := filepath.Join(root, "real"), filepath.Join(root, "link")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	opts := load.LakeOptions{Warehouse: w.Path()}
	lk, err := iceberg.Open(ctx, link, opts)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r1", nil, claims(4, 2)...))
	lk.Close()
	lk, err = iceberg.Open(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	if err := lk.Check(ctx, w.Path(), w.ID(), "payer-a"); err != nil {
		t.Fatalf("check through the real path: %v", err)
	}
	publish(t, lk, w, commit(t, w, "payer-a", "r2", nil, claim{"c01", "2024-03-01", 3}))
	icebergtest.CheckMirrors(t, w, lk, "", "claim", "claim_line")
	if names, _, err := lk.Elsewhere(ctx); err != nil || len(names) != 0 {
		t.Errorf("elsewhere: %v, %v; want none", names, err)
	}
}
