//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
)

// ApplySQL runs every *.sql file of fsys (CREATE OR REPLACE VIEW
// statements) in name order. A view whose tables are missing (say, a run
// that exported no claims) is skipped; the returned errors say which, and
// the caller decides whether to warn or fail.
func (w *Warehouse) ApplySQL(ctx context.Context, fsys fs.FS) []error {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return []error{fmt.Errorf("list sql views: %w", err)}
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", name, err))
			continue
		}
		if err := w.exec(ctx, string(body)); err != nil {
			errs = append(errs, fmt.Errorf("sql view %s: %w", name, err))
		}
	}
	return errs
}
