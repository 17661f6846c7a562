//go:build duckdb_arrow

package duckdb

import (
	"context"

	"github.com/fhirlake/fhirlake/load"
	"github.com/fhirlake/fhirlake/load/lake/hive"
)

// The lake tests of this package run the Hive lake over a DuckDB
// warehouse: the two halves of what used to be one package.

const (
	LakeFile     = hive.LakeFile
	MetaDir      = hive.MetaDir
	LakeMetaFile = hive.LakeMetaFile
)

var (
	CheckLake    = hive.CheckLake
	SweepLake    = hive.SweepLake
	ReadLakeMeta = hive.ReadLakeMeta
)

// WriteLake publishes the warehouse to the Hive lake in dir.
func (w *Warehouse) WriteLake(ctx context.Context, dir string, tables []load.Table, changes *load.Changes) error {
	return hive.Open(dir).Publish(ctx, w, load.Identity{Path: w.path, ID: w.id}, tables, changes)
}

// describe lists "name TYPE" for each column of a query's result.
func (w *Warehouse) describe(ctx context.Context, q string) ([]string, error) {
	return w.queryStrings(ctx, "SELECT column_name || ' ' || column_type FROM (DESCRIBE "+q+")")
}
