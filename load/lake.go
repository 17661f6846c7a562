//go:build duckdb_arrow

package load

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// LakeFile is the name of the Parquet file that holds an unpartitioned
// table under DIR/<table>/.
const LakeFile = "data.parquet"

// WriteLake exports each table, as committed, to DIR/<table>/data.parquet
// (zstd). Every file is written under a temporary name and renamed over the
// old one, so a reader sees the old file or the new one, never a torn or a
// doubled table.
func (w *Warehouse) WriteLake(ctx context.Context, dir string, tables []Table) error {
	for _, t := range tables {
		tdir := filepath.Join(dir, t.Name)
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
		f, err := atomicfile.Create(filepath.Join(tdir, LakeFile))
		if err != nil {
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
		tmp := f.Name()
		q := fmt.Sprintf("COPY (SELECT * FROM %s ORDER BY %s) TO %s (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)",
			ident(t.Name), ident(t.Key), sqlString(tmp))
		if err := w.exec(ctx, q); err != nil {
			f.Abort()
			return fmt.Errorf("lake %s: write parquet: %w", t.Name, err)
		}
		// DuckDB wrote through its own handle; reopen ours so Commit syncs
		// the bytes it wrote before the rename.
		f.Close()
		rf, err := os.OpenFile(tmp, os.O_RDWR, 0)
		if err != nil {
			os.Remove(tmp)
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
		f.File = rf
		if err := f.Commit(); err != nil {
			return fmt.Errorf("lake %s: %w", t.Name, err)
		}
	}
	return nil
}
