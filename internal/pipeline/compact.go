package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load"
)

// CompactOptions configure Compact.
type CompactOptions struct {
	// Warehouse is the warehouse file; it must exist.
	Warehouse string
	// Force rewrites the file though compaction is not due.
	Force bool
	// LockWait and OpenWarehouse are as Pipeline's.
	LockWait      time.Duration
	OpenWarehouse func(ctx context.Context, path string, readOnly bool) (load.Warehouse, error)
	Log           *slog.Logger
}

// Compact compacts the warehouse now, as a run does after its commit
// unless Pipeline.NoCompact: when compaction is due, or always with Force
// (see load.Warehouse.Compact). It holds the warehouse's lock, like a run.
func Compact(ctx context.Context, o CompactOptions) (load.Compaction, error) {
	if _, err := os.Stat(o.Warehouse); err != nil {
		return load.Compaction{}, fmt.Errorf("compact warehouse: %w", err)
	}
	lock, err := lockfile.Acquire(o.Warehouse, "fhirlake warehouse compact")
	if err != nil {
		return load.Compaction{}, err
	}
	defer lock.Release()
	p := Pipeline{Warehouse: o.Warehouse, LockWait: o.LockWait, OpenWarehouse: o.OpenWarehouse, Log: o.Log}.withDefaults()
	w, err := p.openWarehouse(ctx, false)
	if err != nil {
		return load.Compaction{}, err
	}
	c, err := w.Compact(ctx, o.Force)
	if cerr := w.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("compact warehouse: close: %w", cerr)
	}
	return c, err
}
