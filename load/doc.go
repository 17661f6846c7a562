// Package load lands Arrow record batches in the warehouse: typed DuckDB
// tables, replaced by resource id, with the bookkeeping of every run, and a
// Parquet lake that mirrors the committed tables. It never touches the
// network.
//
// A run goes through three steps. Begin stages the run's batches into
// temporary tables as they arrive (memory stays bounded by the batch size:
// DuckDB spills to disk). Commit then replaces, in one transaction, every
// row of each resource that the run carried and records the run, so a crash
// at any point before the commit leaves the previous state untouched.
// Finally WriteLake exports the committed tables to Parquet files, each
// replaced atomically.
package load
