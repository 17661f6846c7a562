//go:build duckdb_arrow

// Package icebergtest checks, for tests, that an Iceberg lake holds what
// its warehouse holds, reading the lake's files the way an engine would
// and not through iceberg-go's reader.
package icebergtest

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirlake/fhirlake/load/duckdb"
	"github.com/fhirlake/fhirlake/load/lake/iceberg"
)

// CheckMirrors compares, order aside, each named table of the warehouse
// with its current snapshot in the lake: the data files the snapshot
// lists, read by DuckDB's read_parquet, less the rows its position-delete
// files name. s3root is the folder of the S3 server's buckets ("" for a
// lake on a local folder).
func CheckMirrors(t testing.TB, w *duckdb.Warehouse, lk *iceberg.Lake, s3root string, names ...string) {
	t.Helper()
	CheckMirrorsWhere(t, w, lk, s3root, "", names...)
}

// CheckMirrorsWhere is CheckMirrors of the rows, on both sides, where a
// SQL condition holds ("": every row), for a lake other warehouses write
// too.
func CheckMirrorsWhere(t testing.TB, w *duckdb.Warehouse, lk *iceberg.Lake, s3root, where string, names ...string) {
	t.Helper()
	for _, name := range names {
		files, deletes := Files(t, lk, name)
		mine := name
		if where != "" {
			mine = "(SELECT * FROM " + name + " WHERE " + where + ")"
		}
		if len(files) == 0 {
			if n := Query(t, w, "SELECT count(*)::VARCHAR FROM "+mine); n[0] != "0" {
				t.Errorf("%s: no data files, %s rows in the warehouse", name, n[0])
			}
			continue
		}
		src := "SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet(" + fileList(t, s3root, files) +
			", hive_partitioning = false, union_by_name = true, filename = true, file_row_number = true)"
		if len(deletes) > 0 {
			// A delete file names data files by URL: map them as LocalPath does.
			local := "CASE WHEN file_path LIKE 'file://%' THEN substr(file_path, 8) ELSE replace(file_path, 's3://', '" + s3root + "/') END"
			src += " WHERE (filename, file_row_number) NOT IN (SELECT " + local + ", pos FROM read_parquet(" + fileList(t, s3root, deletes) + "))"
		}
		if where != "" {
			src = "SELECT * FROM (" + src + ") WHERE " + where
		}
		src = "(" + src + ")"
		for _, q := range []string{
			"SELECT * FROM " + mine + " EXCEPT ALL SELECT * FROM " + src,
			"SELECT * FROM " + src + " EXCEPT ALL SELECT * FROM " + mine,
		} {
			if got := Query(t, w, "SELECT count(*)::VARCHAR FROM ("+q+")"); got[0] != "0" {
				t.Errorf("%s: %s rows differ between the warehouse and the lake: %s", name, got[0], q)
			}
		}
	}
}

// Files lists the data files of the table's current snapshot and the
// position-delete files that apply to them. fhirlake writes no other kind
// of delete file: an equality delete or a deletion vector fails the test.
func Files(t testing.TB, lk *iceberg.Lake, name string) (files, deletes []string) {
	t.Helper()
	tbl, err := lk.Table(t.Context(), name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if tbl.CurrentSnapshot() == nil {
		return nil, nil
	}
	tasks, err := tbl.Scan().PlanFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, task := range tasks {
		if len(task.EqualityDeleteFiles)+len(task.DeletionVectorFiles) > 0 {
			t.Errorf("%s: equality deletes or deletion vectors", name)
		}
		files = append(files, task.File.FilePath())
		for _, d := range task.DeleteFiles {
			if !seen[d.FilePath()] {
				seen[d.FilePath()] = true
				deletes = append(deletes, d.FilePath())
			}
		}
	}
	return files, deletes
}

// LocalPath maps a file's URL to the file that holds it: file:// as is,
// s3:// through the S3 server's folder (s3root).
func LocalPath(t testing.TB, s3root, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme == "s3" {
		return filepath.Join(s3root, u.Host, u.Path)
	}
	return u.Path
}

// fileList is a DuckDB list of the local paths of files.
func fileList(t testing.TB, s3root string, files []string) string {
	quoted := make([]string, len(files))
	for i, f := range files {
		quoted[i] = "'" + LocalPath(t, s3root, f) + "'"
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// Query runs q on w and returns its one column as strings ("" for null).
func Query(t testing.TB, w *duckdb.Warehouse, q string) []string {
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
