package iceberg

import (
	"strconv"

	"github.com/apache/iceberg-go/table"
)

// SetChunkingForTest makes tables created from now on write row groups of
// rows rows, and position deletes read groups row groups at a time,
// until restore.
func SetChunkingForTest(rows, groups int) (restore func()) {
	limit, per := tableProps[table.ParquetRowGroupLimitKey], rowGroupsPerChunk
	tableProps[table.ParquetRowGroupLimitKey], rowGroupsPerChunk = strconv.Itoa(rows), groups
	return func() { tableProps[table.ParquetRowGroupLimitKey], rowGroupsPerChunk = limit, per }
}

// SetMaxFilterIDsForTest sets maxFilterIDs until restore.
func SetMaxFilterIDsForTest(n int) (restore func()) {
	was := maxFilterIDs
	maxFilterIDs = n
	return func() { maxFilterIDs = was }
}

// PrefetchesUsed counts the tables whose publish used the deletes
// Prefetch wrote.
func PrefetchesUsed(lk *Lake) int64 { return lk.prefetchUses.Load() }
