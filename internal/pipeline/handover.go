package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fhirlake/fhirlake/load"
)

// DefaultLeaseTTL is how long a source's lease outlives its last renewal
// (Pipeline.LeaseTTL).
const DefaultLeaseTTL = 2 * time.Minute

// holdSource leases the run's source in a lake that holds the sources'
// state (load.SourceLake: the Iceberg lake), so that no other warehouse
// runs it at the same time, for as long as the run lasts. The returned
// context ends when the lease is lost (it could not be renewed before it
// expired), with load.ErrLeaseLost as its cause; release gives the source
// up. Other lakes need no lease: a warehouse's lock file is enough.
//
// The holder is the warehouse on this machine: a run of the same
// warehouse takes over the lease of one that was killed (the lock file
// already guarantees that no other run of it is alive), while another
// machine waits for the lease to expire.
func (p Pipeline) holdSource(ctx context.Context, log *slog.Logger, command, runID string) (context.Context, func(), error) {
	noop := func() {}
	if p.Lake == "" {
		return ctx, noop, nil
	}
	lake, err := p.openLake(ctx)
	if err != nil {
		return ctx, noop, err
	}
	sl, ok := lake.(load.SourceLake)
	if !ok {
		lake.Close()
		return ctx, noop, nil
	}
	host, _ := os.Hostname()
	abs, err := filepath.Abs(p.Warehouse)
	if err != nil {
		abs = p.Warehouse
	}
	info := fmt.Sprintf("%s (run %s, pid %d on host %s, warehouse %s)", command, runID, os.Getpid(), host, abs)
	lease, err := sl.Lease(ctx, p.Source, host+":"+abs, info, p.LeaseTTL)
	if err != nil {
		lake.Close()
		return ctx, noop, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-lease.Lost():
			log.Error("the source's lease expired before it could be renewed: stopping the run")
			cancel(fmt.Errorf("%w: source %s, in the lake %s (the catalog was unreachable for %s)", load.ErrLeaseLost, p.Source, lake.Location(), p.LeaseTTL))
		case <-stop:
		}
	}()
	return ctx, func() {
		close(stop)
		if err := lease.Release(context.WithoutCancel(ctx)); err != nil {
			log.Warn("could not release the source's lease; it expires by itself", "error", err.Error())
		}
		cancel(nil)
		lake.Close()
	}, nil
}

// restoreStale brings the warehouse w (nil when there is none yet) up to
// the state the lake holds of the run's source when another warehouse
// published the source last: a worker on a fresh machine, or one that
// ran the source before another did, continues where the last run of
// the source stopped (watermarks, version index, rows). It returns the
// warehouse, opened (created) when it was nil and a restore was needed.
func (p Pipeline) restoreStale(ctx context.Context, log *slog.Logger, lake load.Lake, w load.Warehouse) (load.Warehouse, error) {
	sl, ok := lake.(load.SourceLake)
	if !ok {
		return w, nil
	}
	id := ""
	if w != nil {
		id = w.ID()
	}
	stale, err := sl.Stale(ctx, id, p.Source)
	if err != nil || !stale {
		return w, err
	}
	if w == nil {
		if err := os.MkdirAll(filepath.Dir(p.Warehouse), 0o700); err != nil {
			return nil, fmt.Errorf("warehouse directory: %w", err)
		}
		if w, err = p.openWarehouse(ctx, false); err != nil {
			return nil, err
		}
	}
	r, ok := w.(load.SourceRestorer)
	if !ok {
		return w, fmt.Errorf("%w: another warehouse published source %s to the lake %s last, and this warehouse cannot restore it from the lake", load.ErrLakeMismatch, p.Source, lake.Location())
	}
	log.Info("restoring the source from the lake: another warehouse ran it last", "lake", lake.Location())
	t0 := p.Now()
	tables, err := Tables(p.Views)
	if err != nil {
		return w, err
	}
	st, err := r.RestoreSource(ctx, p.Source, sl, tables)
	if err != nil {
		return w, err
	}
	log.Info("source restored from the lake", "tables", st.Tables, "rows", st.Rows, "seconds", p.Now().Sub(t0).Seconds())
	return w, nil
}

// leaseLost is the lease's loss when that is why the run's context ended,
// else err.
func leaseLost(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, load.ErrLeaseLost) {
		return cause
	}
	return err
}
