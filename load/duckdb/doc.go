// Package duckdb is the warehouse of record in a DuckDB file: typed
// tables keyed by source and resource, replaced by resource at each
// commit, with the bookkeeping of every run (runs, watermarks, the
// resource index, deletes, rejects, the person crosswalk). It implements
// load.Warehouse and load.Snapshot, registers itself as load's warehouse
// driver, and restores itself from a lake or a lake from itself
// (PlanRebuild).
//
// A run goes through three steps. Begin stages the run's batches in
// Arrow files on disk as they arrive (memory stays bounded by the batch
// size; see stage.go). Commit then replaces, in one transaction, every
// row of each resource that the run carried and records the run, so a crash
// at any point before the commit leaves the previous state untouched.
// Finally a lake target (load.Lake) mirrors the committed tables.
//
// It needs cgo and the build tag duckdb_arrow (DuckDB's Arrow interface):
// `make build`, or `go build -tags duckdb_arrow ./...`. Without the tag the
// package stops the build with one message that says so.
package duckdb
