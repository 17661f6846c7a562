//go:build duckdb_arrow

package pipeline_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

// TestUnchangedReloadWritesNothing: loading the same files again finds
// every resource unchanged and leaves every table's lake files as they
// were, the version index's mirror included (only the run log and the
// lake's own record change).
func TestUnchangedReloadWritesNothing(t *testing.T) {
	for _, format := range []string{"hive", "iceberg"} {
		t.Run(format, func(t *testing.T) {
			dir := cmsDPC(t)
			views, err := transform.LoadViews(schemas.FS)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			p := pipeline.Pipeline{Source: "bcda", Views: views, SQL: fsql.FS,
				Warehouse: filepath.Join(root, "w.duckdb"), Lake: filepath.Join(root, "lake")}
			if format == "iceberg" {
				p.LakeFormat = "iceberg"
				p.LakeOptions = load.LakeOptions{Catalog: "sqlite:" + filepath.Join(root, "catalog.db")}
			}
			first, err := p.LoadDir(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			before := tableFiles(t, p.Lake)
			time.Sleep(10 * time.Millisecond) // a rewrite would get a later mtime
			again, err := p.LoadDir(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if again.Unchanged != first.Resources || again.SkippedOlder != 0 {
				t.Errorf("reload: %d unchanged, %d skipped older; want %d, 0", again.Unchanged, again.SkippedOlder, first.Resources)
			}
			if diff := cmp.Diff(before, tableFiles(t, p.Lake)); diff != "" {
				t.Errorf("an unchanged reload wrote lake files (-before +after):\n%s", diff)
			}
		})
	}
}

// tableFiles lists the lake's data files (the run log, lake.json and
// Iceberg metadata aside) with their sizes and times.
func tableFiles(t *testing.T, lake string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(lake, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(lake, path)
		if strings.Contains(rel, "/metadata/") || strings.HasSuffix(rel, ".json") ||
			(strings.Contains(rel, "fhirlake_") && !strings.Contains(rel, load.IndexTable)) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%d bytes, %s", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}
