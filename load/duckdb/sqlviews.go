//go:build duckdb_arrow

package duckdb

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
)

// ApplySQL runs every *.sql file of fsys (CREATE OR REPLACE VIEW
// statements) in name order, then again those that failed, for as long as
// a pass creates something: a view may read a view whose file sorts after
// its own. A view whose tables are missing (say, a run that exported no
// claims) is skipped; the returned errors, from the last pass, say which,
// and the caller decides whether to warn or fail.
func (w *Warehouse) ApplySQL(ctx context.Context, fsys fs.FS) []error {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return []error{fmt.Errorf("list sql views: %w", err)}
	}
	sort.Strings(names)
	for {
		var failed []string
		var errs []error
		for _, name := range names {
			body, err := fs.ReadFile(fsys, name)
			if err == nil {
				err = w.exec(ctx, string(body))
			}
			if err != nil {
				failed = append(failed, name)
				errs = append(errs, fmt.Errorf("sql view %s: %w", name, err))
			}
		}
		if len(failed) == 0 || len(failed) == len(names) || ctx.Err() != nil {
			return errs
		}
		names = failed
	}
}
