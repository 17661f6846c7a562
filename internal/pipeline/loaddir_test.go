//go:build duckdb_arrow

package pipeline_test

import (
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
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
	w, err := duckdb.Open(t.Context(), wh)
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
	w, err := duckdb.Open(t.Context(), p.Warehouse)
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

// manifestDir writes an export of three Patients as another client leaves
// it: files named by their URL, a manifest with counts. mutate may change
// the files before the load.
func manifestDir(t *testing.T, files map[string]string, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if strings.HasSuffix(name, ".gz") {
			out, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			zw := gzip.NewWriter(out)
			zw.Write([]byte(body))
			zw.Close()
			out.Close()
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const threePatients = `{"resourceType":"Patient","id":"p1"}
{"resourceType":"Patient","id":"p2"}
{"resourceType":"Patient","id":"p3"}
`

// TestLoadDirVerifiesCounts: a file shorter than its manifest's count (or
// missing) fails the load, naming the file and both counts, and commits
// nothing, no watermark included.
func TestLoadDirVerifiesCounts(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	manifest := `{"transactionTime":"2026-01-01T00:00:00Z","requiresAccessToken":true,
		"output":[{"type":"Patient","url":"https://payer.example/files/pat.ndjson","count":3}],"error":[]}`
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string // in the error; "" for success
	}{
		{"whole", map[string]string{"pat.ndjson": threePatients}, ""},
		{"whole, gzipped", map[string]string{"pat.ndjson.gz": threePatients}, ""},
		{"blank lines do not count", map[string]string{"pat.ndjson": "\n" + threePatients + "\n\n"}, ""},
		{"short", map[string]string{"pat.ndjson": threePatients[:strings.LastIndex(threePatients[:len(threePatients)-1], "\n")+1]},
			"load pat.ndjson: the manifest declares 3 resources, the file holds 2"},
		{"missing", map[string]string{"other.ndjson": threePatients}, "the manifest lists pat.ndjson (Patient, kind output), which is not in the directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wh := filepath.Join(t.TempDir(), "w.duckdb")
			p := pipeline.Pipeline{Source: "files", Views: views, Warehouse: wh}
			sum, err := p.LoadDir(t.Context(), manifestDir(t, c.files, manifest))
			if c.want == "" {
				if err != nil || sum.Resources != 3 {
					t.Fatalf("load: %v, %+v", err, sum)
				}
				return
			}
			if !errors.Is(err, pipeline.ErrFileCount) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("load: %v, want %q", err, c.want)
			}
			if _, err := os.Stat(wh); err == nil {
				w, err := duckdb.Open(t.Context(), wh)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if _, ok, _ := w.Watermark(t.Context(), "files", "files", []string{"Patient"}); ok {
					t.Error("a failed load moved the watermark")
				}
			}
		})
	}
}

// TestLoadDirDamagedAndMistypedFiles: without a manifest count, a
// truncated .ndjson.gz keeps its good lines and the other files load; a
// line of another type than its file's manifest entry is a reject.
func TestLoadDirDamagedAndMistypedFiles(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	dir := manifestDir(t, map[string]string{
		"pat.ndjson": threePatients + `{"resourceType":"Coverage","id":"c9"}` + "\n",
		"more.ndjson.gz": `{"resourceType":"Patient","id":"p4"}
{"resourceType":"Patient","id":"p5"}
`,
		"empty.ndjson.gz": "",
	}, `{"transactionTime":"2026-01-01T00:00:00Z","requiresAccessToken":true,
		"output":[{"type":"Patient","url":"https://payer.example/files/pat.ndjson"}],"error":[]}`)
	// Cut the second gzip stream inside its last line, and make the third
	// an empty file.
	b, _ := os.ReadFile(filepath.Join(dir, "more.ndjson.gz"))
	os.WriteFile(filepath.Join(dir, "more.ndjson.gz"), b[:len(b)-12], 0o600)
	os.WriteFile(filepath.Join(dir, "empty.ndjson.gz"), nil, 0o600)
	wh := filepath.Join(t.TempDir(), "w.duckdb")
	p := pipeline.Pipeline{Source: "files", Views: views, Warehouse: wh}
	sum, err := p.LoadDir(t.Context(), dir)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	w, err := duckdb.Open(t.Context(), wh)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows, err := w.Query(t.Context(), "SELECT file || ':' || line || ' ' || reason FROM fhirlake_rejects ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		got = append(got, s)
	}
	rows.Close()
	if len(got) < 3 || !strings.HasPrefix(got[0], "empty.ndjson.gz:1 empty file") ||
		!strings.Contains(strings.Join(got, "\n"), "more.ndjson.gz:") || !strings.Contains(strings.Join(got, "\n"), "damaged gzip stream") ||
		!strings.Contains(strings.Join(got, "\n"), "pat.ndjson:4 resourceType Coverage in a file the manifest lists as Patient") {
		t.Errorf("rejects:\n%s", strings.Join(got, "\n"))
	}
	if sum.Resources < 4 { // p1-p3 and at least p4 before the cut
		t.Errorf("%d resources loaded, want the good lines of every file", sum.Resources)
	}
}

// TestLoadDirOpensTheWarehouseOnce: a load of files on disk checks and
// loads the warehouse it opened once, not one copy for the checks and
// another for the load.
func TestLoadDirOpensTheWarehouseOnce(t *testing.T) {
	views, err := transform.LoadViews(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Patient.001.ndjson"), []byte(threePatients), 0o644); err != nil {
		t.Fatal(err)
	}
	opens := 0
	p := pipeline.Pipeline{Source: "files", Views: views, Warehouse: filepath.Join(t.TempDir(), "w.duckdb"), Lake: t.TempDir(),
		OpenWarehouse: func(ctx context.Context, path string, readOnly bool) (load.Warehouse, error) {
			opens++
			if readOnly {
				return load.OpenReadOnly(ctx, path)
			}
			return load.Open(ctx, path)
		}}
	for i, want := range []int64{3, 0} { // the second load finds them unchanged
		opens = 0
		sum, err := p.LoadDir(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if opens != 1 || sum.Resources-sum.Unchanged != want {
			t.Errorf("load %d: the warehouse opened %d times, %d resources of which %d unchanged; want once and %d changed", i+1, opens, sum.Resources, sum.Unchanged, want)
		}
	}
}
