package iceberg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fhirlake/fhirlake/load"
)

// A run leases its source in the catalog's database: one row per
// namespace and source in fhirlake_leases, taken with one atomic upsert
// that succeeds only when the row is free, expired or already the
// holder's, renewed every quarter of its lifetime, and deleted at the
// end. Leases live beside the catalog because every worker already
// reaches it and both PostgreSQL and SQLite give the conditional upsert
// atomically; an Iceberg table or a namespace property has no
// compare-and-set of one row. Expiry is measured by the database's clock,
// so the workers' clocks need not agree.
const leaseDDL = `CREATE TABLE IF NOT EXISTS fhirlake_leases (
	namespace  VARCHAR(255)  NOT NULL,
	source     VARCHAR(255)  NOT NULL,
	holder     VARCHAR(1024) NOT NULL,
	info       VARCHAR(1024) NOT NULL,
	expires_ms BIGINT        NOT NULL,
	PRIMARY KEY (namespace, source)
)`

// Lease takes source for holder until Release. info describes the run
// for the message another run gets (host, process, warehouse; no
// secrets).
func (lk *Lake) Lease(ctx context.Context, source, holder, info string, ttl time.Duration) (load.Lease, error) {
	if ttl < time.Second {
		return nil, fmt.Errorf("lease of source %s: a lifetime of %s is too short (at least 1s)", source, ttl)
	}
	if err := lk.createLeases(ctx); err != nil {
		return nil, err
	}
	res, err := lk.db.ExecContext(ctx, lk.rebind(`INSERT INTO fhirlake_leases (namespace, source, holder, info, expires_ms)
		VALUES (?, ?, ?, ?, `+lk.nowMS()+` + ?)
		ON CONFLICT (namespace, source) DO UPDATE SET holder = excluded.holder, info = excluded.info, expires_ms = excluded.expires_ms
		WHERE fhirlake_leases.holder = excluded.holder OR fhirlake_leases.expires_ms < `+lk.nowMS()),
		lk.ns[0], source, holder, info, ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("lease of source %s: %w", source, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		var other string
		var left int64
		err := lk.db.QueryRowContext(ctx, lk.rebind(`SELECT info, expires_ms - `+lk.nowMS()+` FROM fhirlake_leases WHERE namespace = ? AND source = ?`),
			lk.ns[0], source).Scan(&other, &left)
		if err != nil {
			return nil, fmt.Errorf("%w: source %s (the holder cannot be read: %w)", load.ErrLeased, source, err)
		}
		return nil, fmt.Errorf("%w: source %s is being run by %s; its lease expires in %s unless renewed",
			load.ErrLeased, source, other, (time.Duration(max(left, 0)) * time.Millisecond).Round(time.Second))
	}
	l := &lease{lk: lk, source: source, holder: holder, ttl: ttl,
		expires: time.Now().Add(ttl), lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go l.renew()
	return l, nil
}

// createLeases creates the lease table. Workers that start at once on a
// new PostgreSQL database race to create it, and CREATE TABLE IF NOT
// EXISTS does not guard the catalog rows it makes: a loser gets a
// duplicate key (23505), table (42P07) or row type (42710), and finds the
// table made when it tries again.
func (lk *Lake) createLeases(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		_, err := lk.db.ExecContext(ctx, leaseDDL)
		var pgErr *pgconn.PgError
		if err == nil || attempt == 5 || !errors.As(err, &pgErr) || (pgErr.Code != "23505" && pgErr.Code != "42P07" && pgErr.Code != "42710") {
			if err != nil {
				return fmt.Errorf("iceberg catalog: create the lease table: %w", err)
			}
			return nil
		}
		time.Sleep(time.Duration(attempt*50) * time.Millisecond)
	}
}

// nowMS is the database's clock in Unix milliseconds.
func (lk *Lake) nowMS() string {
	if lk.dialect == sqlcat.Postgres {
		return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
	}
	return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (lk *Lake) rebind(q string) string {
	if lk.dialect != sqlcat.Postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lease is a held lease, renewed by a goroutine until Release.
type lease struct {
	lk             *Lake
	source, holder string
	ttl            time.Duration

	mu      sync.Mutex
	expires time.Time // by our clock, a lower bound of the database's expiry
	lost    chan struct{}
	stop    chan struct{} // closed by Release
	done    chan struct{} // closed when renew returns
	once    sync.Once
}

// Lost is closed when the lease expired before it could be renewed.
func (l *lease) Lost() <-chan struct{} { return l.lost }

// renew extends the lease every quarter of its lifetime. A renewal that
// fails for a moment (a network blip) is tried again at the next tick; a
// lease that was taken over, or that reaches its expiry unrenewed, is
// lost.
func (l *lease) renew() {
	defer close(l.done)
	tick := time.NewTicker(l.ttl / 4)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		started := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/4)
		res, err := l.lk.db.ExecContext(ctx, l.lk.rebind(`UPDATE fhirlake_leases SET expires_ms = `+l.lk.nowMS()+` + ?
			WHERE namespace = ? AND source = ? AND holder = ?`), l.ttl.Milliseconds(), l.lk.ns[0], l.source, l.holder)
		cancel()
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		switch {
		case err == nil && n == 1:
			l.mu.Lock()
			l.expires = started.Add(l.ttl)
			l.mu.Unlock()
		case err == nil, time.Now().After(l.expiry()):
			// Taken over, or expired: another run may hold the source.
			close(l.lost)
			return
		}
	}
}

func (l *lease) expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

// Release stops renewing and frees the source (if the lease is still
// this holder's).
func (l *lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		_, err = l.lk.db.ExecContext(ctx, l.lk.rebind(`DELETE FROM fhirlake_leases WHERE namespace = ? AND source = ? AND holder = ?`),
			l.lk.ns[0], l.source, l.holder)
		if err != nil {
			err = fmt.Errorf("release the lease of source %s: %w", l.source, err)
		}
	})
	return err
}
