// Package load is the contract between the pipeline and the stores it
// lands data in: the tables and runs (Table, Run, Stats, Changes, Reject,
// Tombstone), the warehouse of record (Warehouse, with Loader for one run
// and Snapshot for what lakes read), and the lake targets (Lake). It holds
// no storage code: load/duckdb is the warehouse (registered with
// RegisterWarehouse, opened with Open), load/lake/hive and
// load/lake/iceberg are the lakes (RegisterLake, OpenLake), and Memory is
// an in-memory warehouse for tests. It never touches the network.
package load
