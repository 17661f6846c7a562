//go:build !duckdb_arrow

package duckdb

var _ = build_with_tags_duckdb_arrow__see_make_build
