//go:build duckdb_arrow

package main

import (
	"bytes"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/testserver"
	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
	"github.com/fhirlake/fhirlake/load/lake/iceberg/icebergtest"
)

// TestRunIntoIcebergOnS3: `fhirlake run` with an Iceberg lake on an S3
// server (versitygw) and a SQLite catalog, full and then incremental (with
// an update, a delete and a claim that moves years): after each run every
// table's current snapshot holds exactly the warehouse's rows, read back
// from the objects with DuckDB's read_parquet.
func TestRunIntoIcebergOnS3(t *testing.T) {
	s3 := testserver.S3(t)
	s3.Bucket(t, "lake")
	sb, err := sandbox.New(sandbox.Config{Members: 10, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	dir := t.TempDir()
	wh := filepath.Join(dir, "w.duckdb")
	catalog := "sqlite:" + filepath.Join(dir, "catalog.db")
	env := map[string]string{
		"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret,
		"AWS_ACCESS_KEY_ID":      s3.AccessKey,
		"AWS_SECRET_ACCESS_KEY":  s3.SecretKey,
	}
	args := []string{"--log-level", "warn", "run",
		"--fhir-url", sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant), "--token-url", srv.URL + sandbox.TokenPath,
		"--client-id", sandbox.DefaultClientID, "--source", "bison",
		"--warehouse", wh, "--lake", "s3://lake/fhirlake", "--lake-format", "iceberg",
		"--s3-endpoint", s3.Endpoint, "--s3-path-style", "--catalog", catalog}
	for i := range 2 {
		if i == 1 {
			sb.Clock().Advance(time.Hour)
			sb.Update("ExplanationOfBenefit", "eob-0001-02", func(r map[string]any) {
				r["billablePeriod"] = map[string]any{"start": "2019-03-01", "end": "2019-03-01"} // moves years
			})
			sb.Delete("ExplanationOfBenefit", "eob-0002-01")
			sb.Clock().Advance(time.Hour)
		}
		code, stdout, stderr := run(t, env, args...)
		if code != exitOK || !strings.Contains(stdout, "committed") {
			t.Fatalf("run %d: exit %d\n%s\n%s", i+1, code, stdout, stderr)
		}
		if strings.Contains(stderr, s3.SecretKey) || strings.Contains(stdout, s3.SecretKey) {
			t.Fatal("the S3 secret appears in the output")
		}
		icebergMirrors(t, wh, "s3://lake/fhirlake", load.LakeOptions{Catalog: catalog, S3Endpoint: s3.Endpoint, S3PathStyle: true}, s3.Dir, env,
			"patient", "coverage", "eob", "eob_item", "eob_item_adjudication", "observation", "fhirlake_runs", "person")
	}
	// Neither the objects nor the catalog hold the S3 secret (iceberg-go
	// could copy catalog properties into table metadata).
	for _, root := range []string{s3.Dir, dir} {
		filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err == nil && bytes.Contains(b, []byte(s3.SecretKey)) {
				t.Errorf("%s holds the S3 secret", path)
			}
			return nil
		})
	}
	// Expiry keeps every current snapshot, and nothing else.
	code, stdout, stderr := run(t, env, "lake", "expire", "--older-than", "0s", "--warehouse", wh, "--lake", "s3://lake/fhirlake",
		"--lake-format", "iceberg", "--s3-endpoint", s3.Endpoint, "--s3-path-style", "--catalog", catalog)
	if code != exitOK || !strings.Contains(stdout, "expired ") || strings.HasPrefix(stdout, "expired 0 ") {
		t.Fatalf("lake expire: exit %d\n%s\n%s", code, stdout, stderr)
	}
	icebergMirrors(t, wh, "s3://lake/fhirlake", load.LakeOptions{Catalog: catalog, S3Endpoint: s3.Endpoint, S3PathStyle: true}, s3.Dir, env,
		"patient", "eob", "eob_item")
	if code, _, stderr := run(t, nil, "lake", "expire", "--warehouse", wh, "--lake", filepath.Join(dir, "hive")); code != exitUsage || !strings.Contains(stderr, "only an Iceberg lake") {
		t.Errorf("expire on a parquet lake: exit %d, %s", code, stderr)
	}
	// The warehouse restored from the lake's current snapshots has the
	// same tables, rows and analytics views.
	rebuilt := filepath.Join(dir, "rebuilt.duckdb")
	code, stdout, stderr = run(t, env, "rebuild", "--from", "lake", "--warehouse", rebuilt, "--lake", "s3://lake/fhirlake",
		"--lake-format", "iceberg", "--s3-endpoint", s3.Endpoint, "--s3-path-style", "--catalog", catalog)
	if code != exitOK || !strings.Contains(stdout, "rebuild done") {
		t.Fatalf("rebuild --from lake: exit %d\n%s\n%s", code, stdout, stderr)
	}
	w, err := duckdb.Open(t.Context(), wh)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Exec(t.Context(), "ATTACH '"+rebuilt+"' AS rebuilt (READ_ONLY)"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"patient", "eob", "eob_item", "fhirlake_runs", "fhirlake_watermarks", "person", "claim_lines"} {
		for _, q := range []string{
			"SELECT count(*) FROM (SELECT * FROM main." + name + " EXCEPT ALL SELECT * FROM rebuilt." + name + ")",
			"SELECT count(*) FROM (SELECT * FROM rebuilt." + name + " EXCEPT ALL SELECT * FROM main." + name + ")",
		} {
			rows, err := w.Query(t.Context(), q)
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			var n int64
			for rows.Next() {
				rows.Scan(&n)
			}
			rows.Close()
			if n != 0 {
				t.Errorf("%s: %d rows differ after the rebuild", name, n)
			}
		}
	}
}

// icebergMirrors compares each table's current Iceberg snapshot with the
// warehouse's table (icebergtest.CheckMirrors).
func icebergMirrors(t *testing.T, wh, location string, opts load.LakeOptions, s3root string, env map[string]string, tables ...string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	ctx := t.Context()
	opts.Warehouse = wh
	lk, err := iceberg.Open(ctx, location, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	w, err := duckdb.OpenReadOnly(ctx, wh)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	icebergtest.CheckMirrors(t, w, lk, s3root, tables...)
}

// TestMovedIcebergLake: a warehouse folder moved with its Iceberg lake and
// catalog is refused before anything is exported, with exit code 2 and a
// message that names both places and the way on (no "rerun"); `rebuild
// --from warehouse --relocate` shows what it would re-register, then does,
// and the next run mirrors the warehouse in the moved lake.
func TestMovedIcebergLake(t *testing.T) {
	fhirURL, tokenURL := startSandbox(t)
	root := t.TempDir()
	env := map[string]string{"FHIRLAKE_CLIENT_SECRET": sandbox.DefaultClientSecret}
	args := func(dir string) []string {
		return []string{"--log-level", "warn", "run", "--fhir-url", fhirURL, "--token-url", tokenURL,
			"--client-id", sandbox.DefaultClientID, "--source", "bison",
			"--warehouse", filepath.Join(dir, "w.duckdb"), "--lake", filepath.Join(dir, "lake"), "--lake-format", "iceberg"}
	}
	before, after := filepath.Join(root, "before"), filepath.Join(root, "after")
	if code, stdout, stderr := run(t, env, args(before)...); code != exitOK {
		t.Fatalf("first run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if err := os.Rename(before, after); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, env, args(after)...)
	if code != exitUsage || strings.Contains(stderr, "rerun") {
		t.Fatalf("run after the move: exit %d, want %d without a rerun hint\n%s", code, exitUsage, stderr)
	}
	for _, want := range []string{"file://" + filepath.Join(before, "lake"), "file://" + filepath.Join(after, "lake"), "rebuild --from warehouse --relocate"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("run after the move: the message does not name %s\n%s", want, stderr)
		}
	}
	rebuild := []string{"rebuild", "--from", "warehouse", "--warehouse", filepath.Join(after, "w.duckdb"),
		"--lake", filepath.Join(after, "lake"), "--lake-format", "iceberg", "--relocate"}
	code, stdout, stderr := run(t, nil, append(rebuild, "--dry-run")...)
	if code != exitOK || !strings.Contains(stdout, "registered under file://"+filepath.Join(before, "lake")) || !strings.Contains(stdout, "dry run: nothing changed") {
		t.Fatalf("rebuild --relocate --dry-run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, _ := run(t, env, args(after)...); code != exitUsage {
		t.Errorf("a run after the dry run: exit %d, want %d (nothing relocated)", code, exitUsage)
	}
	if code, stdout, stderr := run(t, nil, rebuild...); code != exitOK || !strings.Contains(stdout, "rebuild done") {
		t.Fatalf("rebuild --relocate: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := run(t, env, args(after)...); code != exitOK {
		t.Fatalf("run after the relocation: exit %d\n%s\n%s", code, stdout, stderr)
	}
	icebergMirrors(t, filepath.Join(after, "w.duckdb"), filepath.Join(after, "lake"), load.LakeOptions{}, "", nil,
		"patient", "eob", "eob_item_adjudication", "fhirlake_runs", "person")
	if _, err := os.Stat(before); !os.IsNotExist(err) {
		t.Errorf("the old folder came back: %v", err)
	}
	if code, _, stderr := run(t, nil, "rebuild", "--from", "lake", "--relocate", "--warehouse", filepath.Join(after, "w2.duckdb"),
		"--lake", filepath.Join(after, "lake"), "--lake-format", "iceberg"); code != exitUsage || !strings.Contains(stderr, "--relocate goes with --from warehouse") {
		t.Errorf("--relocate with --from lake: exit %d\n%s", code, stderr)
	}
}
