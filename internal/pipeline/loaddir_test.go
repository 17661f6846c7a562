//go:build duckdb_arrow

package pipeline_test

import (
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/schemas"
	fsql "github.com/fhirlake/fhirlake/sql"
	"github.com/fhirlake/fhirlake/transform"
)

// cmsDPC copies the CMS DPC fixture into a temp dir: the EOB file gzipped,
// the others under names that say nothing of their type, and a manifest.
func cmsDPC(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "..", "shared", "fixtures", "cms-dpc")
	files, _ := filepath.Glob(filepath.Join(src, "*.ndjson"))
	if len(files) == 0 {
		t.Skipf("CMS DPC fixture not found at %s", src)
	}
	dir := t.TempDir()
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f, "explanationofbenefit") {
			out, _ := os.Create(filepath.Join(dir, "claims.ndjson.gz"))
			zw := gzip.NewWriter(out)
			zw.Write(data)
			zw.Close()
			out.Close()
			continue
		}
		os.WriteFile(filepath.Join(dir, "part-"+string(rune('a'+i))+".ndjson"), data, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"transactionTime":"2021-08-17T00:00:00Z","requiresAccessToken":true,"output":[],"error":[]}`), 0o644)
	return dir
}

// tombstoneDelivery is a later incremental delivery holding only a
// deleted[] file, named as the manifest's URL says.
func tombstoneDelivery(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "gone.ndjson"), []byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"ExplanationOfBenefit/carrier--10177349616"}}]}`+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"transactionTime":"2021-09-01T00:00:00Z","requiresAccessToken":true,"output":[],"error":[],
		"deleted":[{"type":"Bundle","url":"https://bcda.example/data/42/gone.ndjson"}]}`), 0o644)
	return dir
}

func TestLoadDirHonoursManifest(t *testing.T) {
	dir := cmsDPC(t)
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	p := pipeline.Pipeline{Source: "bcda", Views: views, SQL: fsql.FS, Warehouse: wh}
	for range 2 { // a second load of the same files changes nothing
		sum, err := p.LoadDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Resources != 48 || sum.TransactionTime.Format("2006-01-02") != "2021-08-17" {
			t.Errorf("summary: %d resources, transaction time %v", sum.Resources, sum.TransactionTime)
		}
	}
	sum, err := p.LoadDir(t.Context(), tombstoneDelivery(t))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Deleted != 1 {
		t.Errorf("tombstone delivery applied %d deletes, want 1", sum.Deleted)
	}
	w, err := load.Open(t.Context(), wh)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.TableRows(t.Context(), []string{"patient", "coverage", "eob", "eob_item"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"patient": 1, "coverage": 4, "eob": 42, "eob_item": 150}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if wm, ok, _ := w.Watermark(t.Context(), "bcda", "files", []string{"Patient", "ExplanationOfBenefit"}); !ok || wm.Format("2006-01-02") != "2021-09-01" {
		t.Errorf("watermark = %v, %v; want the manifest's transactionTime", wm, ok)
	}
}

func TestSecondWriterIsTurnedAway(t *testing.T) {
	dir := cmsDPC(t)
	views, _ := transform.LoadViews(schemas.FS)
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	held, err := lockfile.Acquire(wh, "fhirlake run --source other")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	p := pipeline.Pipeline{Views: views, Warehouse: wh}
	_, err = p.LoadDir(t.Context(), dir)
	if !errors.Is(err, lockfile.ErrBusy) || !strings.Contains(err.Error(), "fhirlake run --source other") {
		t.Errorf("err = %v, want a busy error naming the holder", err)
	}
	if _, err := os.Stat(wh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the turned-away writer touched the warehouse: %v", err)
	}
}

func TestDuplicatesInOneExportKeepTheNewest(t *testing.T) {
	dir := t.TempDir()
	v1 := `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2025-01-01T00:00:00Z","versionId":"1"},"gender":"female","identifier":[{"value":"a"},{"value":"b"}]}`
	v2 := `{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2025-03-01T00:00:00Z","versionId":"2"},"gender":"male","identifier":[{"value":"a"}]}`
	other := `{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2025-01-01T00:00:00Z"},"gender":"other"}`
	// v2 comes first; the older v1 later, in another file; p2 twice, identical.
	os.WriteFile(filepath.Join(dir, "a.ndjson"), []byte(v2+"\n"+other+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.ndjson"), []byte("\n"+other+"\n"+v1+"\n"), 0o644)
	views, _ := transform.LoadViews(schemas.FS)
	p := pipeline.Pipeline{Views: views, Warehouse: filepath.Join(t.TempDir(), "w.duckdb")}
	sum, err := p.LoadDir(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rows["patient"] != 2 || sum.Rows["patient_identifier"] != 1 {
		t.Errorf("summary rows %v: re-staged duplicates must count once", sum.Rows)
	}
	w, err := load.Open(t.Context(), p.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := []string{"p1 male", "p2 other"}
	if diff := cmp.Diff(want, queryStrings(t, w, "SELECT id || ' ' || gender FROM patient ORDER BY id")); diff != "" {
		t.Errorf("patients (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"p1 a"}, queryStrings(t, w, "SELECT patient_id || ' ' || value FROM patient_identifier ORDER BY 1")); diff != "" {
		t.Errorf("identifiers of the newest version only (-want +got):\n%s", diff)
	}
}
