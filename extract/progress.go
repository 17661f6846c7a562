package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Progress observes an export as it happens, for a progress display. Every
// method must return quickly and be safe for concurrent use: downloads call
// it from several goroutines at once. Nothing passed to it is secret or
// resource content; names are the local file names of the export.
//
// A Client reports to the Progress carried by the context of each call
// (WithProgress); without one nothing is reported.
type Progress interface {
	// Waiting is called after each status poll that finds the export still
	// running, with the server's X-Progress text ("" when it sends none).
	Waiting(status string)
	// FileStarted is called when the body of a file starts to arrive, with
	// its length in bytes from Content-Length, or -1 when unknown. A retried
	// attempt calls FileStarted again: the count restarts from zero.
	FileStarted(name string, total int64)
	// FileProgress reports n more bytes of name received: the bytes on the
	// wire, before any gzip decoding, so that they add up to the total
	// given to FileStarted.
	FileProgress(name string, n int64)
	// FileDone is called once per file that FileStarted announced, when it
	// is downloaded and verified (err nil) or its download gave up. Files an
	// earlier attempt already verified are neither started nor done.
	FileDone(name string, err error)
}

// NopProgress is a Progress that ignores everything; embed it to implement
// only some of the methods.
type NopProgress struct{}

var _ Progress = NopProgress{}

// RetryProgress is a Progress that also hears of each wait before a
// request is tried again: the server was busy (429), failed (5xx) or could
// not be reached. A display shows it so that a long wait does not look
// like a hang; a Progress without it misses nothing else.
type RetryProgress interface {
	// Retrying is called before the wait, with what is retried ("kick-off",
	// "export status", "download NAME"), why in a few words ("server busy
	// (429)"), and how long the wait is.
	Retrying(op, reason string, wait time.Duration)
}

// notifyRetry tells the Progress of ctx, if it listens, that op waits
// before it is tried again after err.
func notifyRetry(ctx context.Context, op string, err error, wait time.Duration) {
	rp, ok := progressFrom(ctx).(RetryProgress)
	if !ok {
		return
	}
	reason := "server unreachable"
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		reason = "server busy (429)"
	case errors.As(err, &se) && se.Status >= 500:
		reason = fmt.Sprintf("server error (%d)", se.Status)
	case errors.As(err, &se):
		reason = fmt.Sprintf("server answered %d", se.Status)
	}
	rp.Retrying(op, reason, wait)
}

// Waiting does nothing.
func (NopProgress) Waiting(string) {}

// FileStarted does nothing.
func (NopProgress) FileStarted(string, int64) {}

// FileProgress does nothing.
func (NopProgress) FileProgress(string, int64) {}

// FileDone does nothing.
func (NopProgress) FileDone(string, error) {}

// A Client is configured once and may serve several runs; what belongs to
// one call (its logger, its progress display) travels in the context.
type (
	loggerKey   struct{}
	progressKey struct{}
)

// WithLogger returns a context whose Client calls log to l instead of
// Client.Log. The pipeline uses it to give every line of a run its run id
// and source; a nil l leaves ctx as it is.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	if l == nil {
		return ctx
	}
	return context.WithValue(ctx, loggerKey{}, l)
}

// WithProgress returns a context whose Client calls report to p. A nil p
// leaves ctx as it is.
func WithProgress(ctx context.Context, p Progress) context.Context {
	if p == nil {
		return ctx
	}
	return context.WithValue(ctx, progressKey{}, p)
}

// progressFrom returns the Progress of ctx, or NopProgress.
func progressFrom(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok {
		return p
	}
	return NopProgress{}
}

// log returns the logger of ctx (WithLogger), else Client.Log, else one
// that discards.
func (c *Client) log(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	if c.Log != nil {
		return c.Log
	}
	return slog.New(slog.DiscardHandler)
}

// countingReader reports every read of a file body to a Progress.
type countingReader struct {
	r    io.Reader
	name string
	p    Progress
}

func (cr countingReader) Read(b []byte) (int, error) {
	n, err := cr.r.Read(b)
	if n > 0 {
		cr.p.FileProgress(cr.name, int64(n))
	}
	return n, err
}

// fileProgress reports the attempts at one file to a Progress and
// remembers whether the file was announced, so that FileDone follows only
// a FileStarted. Attempts run one after another, never concurrently.
type fileProgress struct {
	p       Progress
	name    string
	started bool
}

// start announces an attempt whose body is total bytes long (-1 when
// unknown) and returns body wrapped to count what is read from it.
func (fp *fileProgress) start(total int64, body io.Reader) io.Reader {
	fp.started = true
	fp.p.FileStarted(fp.name, total)
	return countingReader{r: body, name: fp.name, p: fp.p}
}

func (fp *fileProgress) done(err error) {
	if fp.started {
		fp.p.FileDone(fp.name, err)
	}
}
