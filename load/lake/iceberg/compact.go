package iceberg

import (
	"context"
	"fmt"
	"strconv"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
	"github.com/apache/iceberg-go/table/compaction"
)

// Merge-on-read commits leave position-delete files and small data files
// behind. When they pile up, the run that finds it so compacts the table
// with iceberg-go's bin-pack rewrite: the data files that have delete
// files, and the small ones, are rewritten per partition with the deletes
// applied, and the delete files that then apply to nothing are dropped,
// in one "replace" snapshot that changes no row.
const (
	// propBaseFiles, a table property, is the number of data files the
	// table's last whole write or compaction left.
	propBaseFiles = "fhirlake.base-files"
	// compactDeadShare: a table whose deleted positions reach this share
	// of its rows is due.
	compactDeadShare = 0.2
	// compactSmallFile: data files below this size are merged; larger
	// ones are rewritten only when they have deletes.
	compactSmallFile = 8 << 20
	// compactTarget is the size of the files a compaction writes.
	compactTarget = 256 << 20
)

// compactFileGrowth: a table is due too when its data and delete files
// reach this multiple of propBaseFiles (plus compactFileSlack). Variables
// for tests.
var (
	compactFileGrowth int64 = 20
	compactFileSlack  int64 = 16
)

// compactionDue reports whether tbl's delete files or small files have
// piled up enough to compact it.
func compactionDue(tbl *table.Table) bool {
	rows := summaryInt(tbl, "total-records")
	dead := summaryInt(tbl, "total-position-deletes") + summaryInt(tbl, "total-equality-deletes")
	if rows > 0 && float64(dead) >= compactDeadShare*float64(rows) {
		return true
	}
	base, err := strconv.ParseInt(tbl.Properties()[propBaseFiles], 10, 64)
	if err != nil {
		return false // not recorded yet: the next merge-on-read commit records it
	}
	files := summaryInt(tbl, "total-data-files") + summaryInt(tbl, "total-delete-files")
	return files >= compactFileGrowth*base+compactFileSlack
}

// compactIfDue compacts the table name when compactionDue. A compaction
// that loses a race with another writer is left for a later run: it
// changes no row, so nothing depends on it.
func (lk *Lake) compactIfDue(ctx context.Context, name string, summary iceberg.Properties) error {
	tbl, err := lk.Table(ctx, name)
	if err != nil {
		return fmt.Errorf("load table: %w", err)
	}
	if !compactionDue(tbl) {
		return nil
	}
	if err := compact(ctx, tbl, summary); err != nil && !conflict(err) {
		return err
	}
	return nil
}

// compact rewrites tbl's data files that have delete files, and its
// small ones, per partition.
func compact(ctx context.Context, tbl *table.Table, summary iceberg.Properties) error {
	cfg := compaction.DefaultConfig()
	cfg.TargetFileSizeBytes = compactTarget
	cfg.MinFileSizeBytes = compactSmallFile
	cfg.MaxFileSizeBytes = 2 * compactTarget
	cfg.MinInputFiles = 1
	cfg.DeleteFileThreshold = 1
	plan, err := compaction.Analyze(ctx, tbl, cfg)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	var groups []table.CompactionTaskGroup
	rewritten := map[string]struct{}{}
	for _, g := range plan.Groups {
		if len(g.Tasks) == 1 && g.DeleteFileCount == 0 {
			continue // one small file alone in its partition: nothing to gain
		}
		groups = append(groups, table.CompactionTaskGroup{PartitionKey: g.PartitionKey, Tasks: g.Tasks, TotalSizeBytes: g.TotalSizeBytes})
		for _, t := range g.Tasks {
			rewritten[t.File.FilePath()] = struct{}{}
		}
	}
	fs, err := tbl.FS(ctx)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	// Delete files whose data files a merge-on-read delete dropped whole
	// apply to nothing: they go too.
	dead, err := compaction.CollectDeadPositionDeletes(ctx, fs, tbl.CurrentSnapshot(), rewritten)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if len(groups) == 0 && len(dead) == 0 {
		return nil
	}
	txn := tbl.NewTransaction()
	if len(groups) > 0 {
		if _, err := txn.RewriteDataFiles(ctx, groups, table.RewriteDataFilesOptions{SnapshotProps: summary, ExtraDeleteFilesToRemove: dead}); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
	} else if err := txn.ReplaceFiles(ctx, nil, nil, dead, summary); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if err := recordBaseFiles(txn); err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if _, err := txn.Commit(ctx); err != nil {
		return fmt.Errorf("compact: commit: %w", err)
	}
	return nil
}
