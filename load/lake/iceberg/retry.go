package iceberg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/iceberg-go/metrics"
	"github.com/apache/iceberg-go/table"
)

// Several warehouses may commit to one table at the same time (each its
// own sources). A commit that loses the race fails with a conflict, and
// the whole step (publishTable, publishBookkeeping) is redone on the
// fresh table, up to conflictAttempts times: it reads its rows from the
// warehouse again and commits them against the new current snapshot.
// Sources never overlap, so the redo cannot undo another writer's rows.
// The retries are counted (Lake.CommitRetries).
const conflictAttempts = 8

// conflict reports whether err is a commit that lost a race with another
// writer, which a retry on the fresh table can win.
func conflict(err error) bool {
	return errors.Is(err, table.ErrCommitFailed) || err != nil && strings.Contains(err.Error(), "requirement failed")
}

// retryConflicts runs step until it does not fail with a conflict, at
// most conflictAttempts times, waiting a short random while between.
func (lk *Lake) retryConflicts(ctx context.Context, step func() error) error {
	for attempt := 1; ; attempt++ {
		err := step()
		if !conflict(err) || attempt == conflictAttempts {
			if err != nil && conflict(err) {
				return fmt.Errorf("%w (gave up after %d attempts: other writers kept committing to the table)", err, attempt)
			}
			return err
		}
		lk.retries.Load().n.Add(1)
		wait := time.Duration(25*attempt+rand.IntN(50*attempt)) * time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// CommitRetries is how many commits of this lake lost a race with another
// writer and were redone.
func (lk *Lake) CommitRetries() int64 { return lk.retries.Load().n.Load() }

// commitCounter is a lake's retry count and its metrics reporter: it
// counts the commit attempts iceberg-go reports beyond the first (none
// while its retries are off), and keeps iceberg-go's default reporter,
// which logs every scan and commit at INFO, quiet.
type commitCounter struct{ n atomic.Int64 }

func (c *commitCounter) Report(_ context.Context, r metrics.MetricsReport) {
	if cr, ok := r.(metrics.CommitReport); ok && cr.Metrics.Attempts != nil && cr.Metrics.Attempts.Value > 1 {
		c.n.Add(cr.Metrics.Attempts.Value - 1)
	}
}

func (c *commitCounter) Close() error { return nil }

// The catalog builds its reporter from its properties: propReporterID
// names the lake whose counter it is.
const (
	reporterName   = "fhirlake"
	propReporterID = "fhirlake.reporter-id"
)

var counters sync.Map // reporter id → *commitCounter

func init() {
	metrics.Register(reporterName, func(props map[string]string) (metrics.Reporter, error) {
		if c, ok := counters.Load(props[propReporterID]); ok {
			return c.(*commitCounter), nil
		}
		return metrics.NopReporter{}, nil
	})
}
