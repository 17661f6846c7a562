package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load"
)

// SyncOptions configure Sync.
type SyncOptions struct {
	// Warehouse is the DuckDB file to refresh (created when missing).
	Warehouse string
	// Lake opens the lake to copy from.
	Lake func(ctx context.Context) (load.Lake, error)
	// Sources limits the sync to these sources (default: every one).
	Sources []string
	// SQL holds the analytics views (*.sql) to create; nil for none.
	SQL fs.FS
	// Tables are the views' tables: the tables a copy creates store their
	// coded columns dictionary-encoded, as a load's do. Nil leaves the
	// encoding to DuckDB.
	Tables []load.Table
	// Wait bounds how long to wait for a source that a run holds.
	Wait time.Duration
	// Person is the rule of the person crosswalk, relinked across every
	// source of the file after a copy.
	Person load.PersonRule
	// Log receives progress; nil discards.
	Log *slog.Logger
}

// SyncResult says what Sync did, per source.
type SyncResult struct {
	Restored []string // copied from the lake
	Current  []string // already up to date
	Rows     int64    // rows copied
	// PersonConflicts counts the patients whose identifiers conflict
	// after the relink (when a source was copied).
	PersonConflicts int64
}

// Sync refreshes a warehouse file from a lake that holds the sources'
// state (an Iceberg lake several workers write): each source whose runs
// in the file differ from the lake's is replaced, in one transaction, by
// the lake's rows of it in every table; a source already up to date is
// left alone, so a nightly sync copies what changed since the last one,
// by source. Each source is copied under its lease, so that no run
// publishes it half-way through the copy; a source that a run holds is
// waited for up to Wait, then is ErrLeased.
func Sync(ctx context.Context, o SyncOptions) (SyncResult, error) {
	var res SyncResult
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lake, err := o.Lake(ctx)
	if err != nil {
		return res, err
	}
	defer lake.Close()
	sl, ok := lake.(load.SourceLake)
	if !ok {
		return res, fmt.Errorf("warehouse sync: the lake %s does not hold the sources' state (only an Iceberg lake does): use rebuild --from lake", lake.Location())
	}
	published, err := sl.Published(ctx)
	if err != nil {
		return res, err
	}
	sources := slices.Sorted(maps.Keys(published))
	if len(o.Sources) > 0 {
		for _, s := range o.Sources {
			if _, ok := published[s]; !ok {
				return res, fmt.Errorf("warehouse sync: the lake %s holds no source %s (it holds %v)", lake.Location(), s, sources)
			}
		}
		sources = o.Sources
	}
	if err := os.MkdirAll(filepath.Dir(o.Warehouse), 0o700); err != nil {
		return res, fmt.Errorf("warehouse directory: %w", err)
	}
	lock, err := lockfile.Acquire(o.Warehouse, "fhirlake warehouse sync")
	if err != nil {
		return res, err
	}
	defer lock.Release()
	w, err := load.Open(ctx, o.Warehouse)
	if err != nil {
		return res, err
	}
	defer w.Close()
	r, ok := w.(load.SourceRestorer)
	if !ok {
		return res, fmt.Errorf("warehouse sync: %s cannot restore a source from a lake", o.Warehouse)
	}
	host, _ := os.Hostname()
	abs, err := filepath.Abs(o.Warehouse)
	if err != nil {
		abs = o.Warehouse
	}
	for _, s := range sources {
		runs, err := w.SourceRunIDs(ctx, s)
		if err != nil {
			return res, err
		}
		if p := published[s]; p.LastRun != "" && len(runs) == p.Runs && slices.Contains(runs, p.LastRun) {
			res.Current = append(res.Current, s)
			continue
		}
		lease, err := waitLease(ctx, sl, s, "sync:"+host+":"+abs,
			fmt.Sprintf("fhirlake warehouse sync (pid %d on host %s, into %s)", os.Getpid(), host, abs), o.Wait)
		if err != nil {
			return res, err
		}
		st, err := r.RestoreSource(ctx, s, sl, o.Tables)
		lease.Release(context.WithoutCancel(ctx))
		if err != nil {
			return res, err
		}
		log.Info("source copied from the lake", "source", s, "tables", st.Tables, "rows", st.Rows)
		res.Restored = append(res.Restored, s)
		res.Rows += st.Rows
	}
	// Each warehouse linked the patients of its own sources only: the
	// file holds every source, so it links them all.
	if rl, ok := w.(interface {
		Relink(context.Context, load.PersonRule) (int64, error)
	}); ok && len(res.Restored) > 0 {
		if res.PersonConflicts, err = rl.Relink(ctx, o.Person); err != nil {
			return res, err
		}
	}
	for _, warn := range applySQL(ctx, w, o.SQL) {
		log.Warn("analytics view not created", "error", warn.Error())
	}
	return res, nil
}

// waitLease takes source's lease, waiting up to wait while a run holds
// it.
func waitLease(ctx context.Context, sl load.SourceLake, source, holder, info string, wait time.Duration) (load.Lease, error) {
	deadline := time.Now().Add(wait)
	for {
		lease, err := sl.Lease(ctx, source, holder, info, DefaultLeaseTTL)
		if err == nil || !errors.Is(err, load.ErrLeased) || time.Now().After(deadline) {
			return lease, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// applySQL creates the analytics views of fsys, if any.
func applySQL(ctx context.Context, w load.Warehouse, fsys fs.FS) []error {
	if fsys == nil {
		return nil
	}
	return w.ApplySQL(ctx, fsys)
}
