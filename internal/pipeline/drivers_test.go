//go:build duckdb_arrow

package pipeline_test

// The pipeline's tests run on the DuckDB warehouse and both lakes: they
// register themselves with load.
import (
	_ "github.com/fhirlake/fhirlake/load/duckdb"
	_ "github.com/fhirlake/fhirlake/load/lake/hive"
	_ "github.com/fhirlake/fhirlake/load/lake/iceberg"
)
