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

// SetCompactionForTest makes a table due for compaction when its files
// reach growth times its base files plus slack, until restore.
func SetCompactionForTest(growth, slack int64) (restore func()) {
	g, sl := compactFileGrowth, compactFileSlack
	compactFileGrowth, compactFileSlack = growth, slack
	return func() { compactFileGrowth, compactFileSlack = g, sl }
}

// SetMetadataVersionsForTest makes every commit from now on keep n earlier
// metadata files of a table, or, with n 0, every one (as tables made
// before metadataVersions did), until restore.
func SetMetadataVersionsForTest(n int) (restore func()) {
	del, max := tableProps[table.MetadataDeleteAfterCommitEnabledKey], tableProps[table.MetadataPreviousVersionsMaxKey]
	if n == 0 {
		delete(tableProps, table.MetadataDeleteAfterCommitEnabledKey)
		delete(tableProps, table.MetadataPreviousVersionsMaxKey)
	} else {
		tableProps[table.MetadataPreviousVersionsMaxKey] = strconv.Itoa(n)
	}
	return func() {
		tableProps[table.MetadataDeleteAfterCommitEnabledKey], tableProps[table.MetadataPreviousVersionsMaxKey] = del, max
	}
}
