// Package sql holds the analytics views created over the warehouse tables
// after every load, one CREATE OR REPLACE VIEW statement per .sql file,
// applied in file-name order.
package sql

import "embed"

// FS holds the view files.
//
//go:embed *.sql
var FS embed.FS
