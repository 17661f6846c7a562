package load

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// MemoryLake is an in-memory Lake for tests of the code that drives a
// lake (the pipeline): it records each Publish and, as a real target
// copies rows, counts the rows of every table and source it is asked to
// mirror by reading them from the snapshot. It keeps whole sources, not
// partitions, and no bookkeeping tables.
type MemoryLake struct {
	mu        sync.Mutex
	owner     string                      // the ID of the warehouse it mirrors
	rows      map[string]map[string]int64 // table -> source -> rows
	publishes []MemoryPublish
}

// MemoryPublish is one Publish a MemoryLake saw.
type MemoryPublish struct {
	// RunID and Source are the changes' ("" for a whole rewrite).
	RunID, Source string
	// Tables are the data tables it copied, sorted.
	Tables []string
	// Whole is set for a rewrite of every table (changes == nil).
	Whole bool
}

var _ Lake = (*MemoryLake)(nil)

// NewMemoryLake returns an empty lake that mirrors no warehouse yet.
func NewMemoryLake() *MemoryLake {
	return &MemoryLake{rows: map[string]map[string]int64{}}
}

// Location is "memory".
func (l *MemoryLake) Location() string { return "memory" }

// Check refuses a warehouse other than the one the lake mirrors.
func (l *MemoryLake) Check(_ context.Context, warehousePath, warehouseID, _ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owner == "" || l.owner == warehouseID {
		return nil
	}
	return fmt.Errorf("%w: the memory lake mirrors warehouse %s, not %s", ErrLakeMismatch, l.owner, warehousePath)
}

// Publish copies the changed sources of the changed tables (every table
// and source when changes is nil) from snap, counting their rows.
func (l *MemoryLake) Publish(ctx context.Context, snap Snapshot, w Identity, tables []Table, changes *Changes) error {
	if err := l.Check(ctx, w.Path, w.ID, ""); err != nil {
		return err
	}
	p := MemoryPublish{Whole: changes == nil}
	if changes != nil {
		p.RunID, p.Source = changes.RunID, changes.Source
	}
	counts := map[string]map[string]int64{}
	for _, t := range tables {
		if changes != nil {
			if _, changed := changes.Tables[t.Name]; !changed {
				continue
			}
		}
		sources := []string{p.Source}
		if changes == nil {
			var err error
			if sources, err = snap.TableSources(ctx, t.Name); err != nil {
				return fmt.Errorf("memory lake: %s: %w", t.Name, err)
			}
		}
		counts[t.Name] = map[string]int64{}
		for _, src := range sources {
			n, err := countRecords(ctx, snap, t, src)
			if err != nil {
				return fmt.Errorf("memory lake: %s of %s: %w", t.Name, src, err)
			}
			counts[t.Name][src] = n
		}
		p.Tables = append(p.Tables, t.Name)
	}
	slices.Sort(p.Tables)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.owner = w.ID
	if p.Whole {
		l.rows = map[string]map[string]int64{}
	}
	for table, bySource := range counts {
		if l.rows[table] == nil {
			l.rows[table] = map[string]int64{}
		}
		maps.Copy(l.rows[table], bySource)
	}
	l.publishes = append(l.publishes, p)
	return nil
}

func countRecords(ctx context.Context, snap Snapshot, t Table, source string) (int64, error) {
	rr, err := snap.Records(ctx, t, source, nil)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	var n int64
	for rr.Next() {
		n += rr.RecordBatch().NumRows()
	}
	return n, rr.Err()
}

// Close does nothing: the lake lives as long as the test holds it.
func (l *MemoryLake) Close() error { return nil }

// Rows returns the rows the lake holds per table and source.
func (l *MemoryLake) Rows() map[string]map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[string]int64, len(l.rows))
	for t, bySource := range l.rows {
		out[t] = maps.Clone(bySource)
	}
	return out
}

// Publishes returns the publishes seen, oldest first.
func (l *MemoryLake) Publishes() []MemoryPublish {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.publishes)
}
