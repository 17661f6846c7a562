package main

// Terminal output: the log format, the log writer, and the progress bars
// that share stderr with the log lines.

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/pipeline"
)

// logFormatEnv sets --log-format (a flag given beats it, as everywhere).
const logFormatEnv = "FHIRLAKE_LOG_FORMAT"

// logFormat resolves --log-format (or FHIRLAKE_LOG_FORMAT) to "text" or
// "json"; auto, the default, is text.
func logFormat(c *cli.Context) (string, error) {
	switch f := c.String("log-format"); f {
	case "text", "json":
		return f, nil
	case "auto", "":
		return "text", nil
	default:
		return "", usagef("--log-format (or %s) %q: want text, json or auto", logFormatEnv, f)
	}
}

// isTerminal reports whether w is a terminal (through a logWriter too).
func isTerminal(w io.Writer) bool {
	if lw, ok := w.(*logWriter); ok {
		w = lw.out
	}
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// logWriter is where log lines go: stderr, or, while progress bars run,
// the bar container, which prints each line above the bars instead of
// through them.
type logWriter struct {
	out io.Writer // stderr as the app was given it

	mu    sync.Mutex // guards above and serialises writes
	above io.Writer  // the running bars, or nil
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.above != nil {
		if n, err := w.above.Write(b); err == nil {
			return n, nil
		}
	}
	return w.out.Write(b)
}

func (w *logWriter) setAbove(above io.Writer) {
	w.mu.Lock()
	w.above = above
	w.mu.Unlock()
}

// logOutput returns the writer for log lines: c.App.ErrWriter, wrapped in a
// logWriter (once) so that attachProgress can route every line written
// there above its bars.
func logOutput(c *cli.Context) *logWriter {
	if w, ok := c.App.ErrWriter.(*logWriter); ok {
		return w
	}
	w := &logWriter{out: c.App.ErrWriter}
	c.App.ErrWriter = w
	return w
}

// attachProgress shows progress bars on stderr for the work a command is
// about to do with ctx: the export (the server's X-Progress while it
// prepares), bytes downloaded per file and overall, rows staged, the
// commit. It returns the context to do that work with and stop, which
// removes the bars; stop may be called more than once and must be called
// before the command prints its results.
//
// With a pipeline it sets p.Progress; with p nil (export, which drives the
// client itself) only the returned context carries the display, to the
// client.
//
// It does nothing (ctx returned as is, p untouched, stop does nothing)
// unless stderr is a terminal and logs are text: no bars in files, pipes or
// JSON logs. While bars run, everything written to c.App.ErrWriter, log
// lines from logger included, is printed above the bars rather than
// through them; log levels are unchanged.
func attachProgress(ctx context.Context, c *cli.Context, p *pipeline.Pipeline) (context.Context, func()) {
	lw := logOutput(c)
	if f, err := logFormat(c); err != nil || f != "text" || !isTerminal(lw.out) {
		return ctx, func() {}
	}
	b := newBars(lw.out)
	lw.setAbove(b.p)
	if p != nil {
		p.Progress = b
	}
	var once sync.Once
	return extract.WithProgress(ctx, b), func() {
		once.Do(func() {
			b.stop()
			lw.setAbove(nil)
		})
	}
}

// bars is the mpb display of a run. Methods are called concurrently by
// downloads and transform workers. Decorators run on mpb's goroutines and
// read only atomics, never mu: a bar call made while holding mu waits for
// the bar's goroutine, which must not wait for mu in turn.
//
// The layout: a spinner while the server prepares the export (with its
// X-Progress text), an overall download bar (files done/started, bytes)
// with one bar per file in flight, a spinner counting the rows staged, and
// one for the commit. A back-fill export after the main one gets its own
// spinner and download bar.
type bars struct {
	p *mpb.Progress

	status   atomic.Pointer[string] // the export's last X-Progress
	retry    atomic.Pointer[retry]  // the last wait before a retry
	rows     atomic.Int64           // rows staged, all tables
	tables   atomic.Int64           // tables with rows
	loadText atomic.Pointer[string] // what the load is doing

	mu       sync.Mutex // guards the fields below
	stopped  bool       // no more bars: mpb panics on a bar added after Wait
	exported bool       // the main export is done; what follows is a back-fill
	wait     *mpb.Bar   // the export's spinner, while the server prepares it
	dl       *download  // the download under way
	seen     map[string]bool
	rowBar   *mpb.Bar
	loadBar  *mpb.Bar
	all      []*mpb.Bar // every bar, to end them on stop
}

var (
	_ pipeline.Progress     = (*bars)(nil)
	_ extract.RetryProgress = (*bars)(nil)
)

// retry is a wait before a request is tried again, shown on the bar of
// the stage until it is over.
type retry struct {
	what  string // "server busy (429), retrying kick-off"
	until time.Time
}

// note is the retry under way, "server busy (429), retrying kick-off in
// 20 s", or "" when none is.
func (b *bars) note() string {
	r := b.retry.Load()
	if r == nil {
		return ""
	}
	left := time.Until(r.until)
	if left <= 0 {
		return ""
	}
	return fmt.Sprintf("%s in %d s", r.what, int(left.Round(time.Second)/time.Second))
}

// download is the overall bar of one export's files; the counters are
// atomics for its decorator, the rest is guarded by bars.mu.
type download struct {
	bar           *mpb.Bar
	started, done atomic.Int64 // files
	total         int64        // sum of the sizes announced by files in flight or done
	doneBytes     int64        // bytes of the files done
	files         map[string]*fileBar
}

// fileBar is one file in flight.
type fileBar struct {
	bar        *mpb.Bar
	got, total int64 // total is -1 when unknown
}

func newBars(out io.Writer, opts ...mpb.ContainerOption) *bars {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(out), mpb.WithWidth(32), mpb.WithRefreshRate(150 * time.Millisecond)}, opts...)
	return &bars{p: mpb.New(opts...), seen: map[string]bool{}}
}

// label pads a bar's name to the longest so that the bars line up.
func label(s string) decor.Decorator { return decor.Name(s, decor.WCSyncSpaceR) }

// add makes a bar; callers hold mu. Bars start with total 0, which keeps
// mpb from completing them by itself when the count reaches a total set
// later: they end only through SetTotal(-1, true) or Abort.
func (b *bars) add(filler mpb.BarFillerBuilder, opts ...mpb.BarOption) *mpb.Bar {
	bar := b.p.New(0, filler, opts...)
	b.all = append(b.all, bar)
	return bar
}

// spinner is the bar of a stage whose size is not known: its text, and the
// time it has taken, which stops when the stage is done.
func (b *bars) spinner(name string, text func() string) *mpb.Bar {
	return b.add(mpb.SpinnerStyle().PositionLeft(), mpb.BarWidth(1),
		mpb.PrependDecorators(label(name)),
		mpb.AppendDecorators(decor.Any(func(s decor.Statistics) string { return doneText(s, text()) }, decor.WCSyncSpaceR),
			decor.Elapsed(decor.ET_STYLE_MMSS, decor.WCSyncSpace)))
}

// doneText says that the stage of a completed bar is done.
func doneText(s decor.Statistics, text string) string {
	if !s.Completed {
		return text
	}
	if text == "" {
		return "done"
	}
	return "done: " + text
}

// phase names a bar of the main export or of the back-fill.
func (b *bars) phase(name string) string {
	if b.exported {
		return "back-fill " + name
	}
	return name
}

// Waiting shows the export's status while the server prepares it.
func (b *bars) Waiting(status string) {
	s := printable(status, 48)
	if s == "" {
		s = "in progress"
	}
	b.status.Store(&s)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startWait()
}

// startWait makes the export's spinner unless there is one; callers hold
// mu.
func (b *bars) startWait() {
	if b.stopped || b.wait != nil {
		return
	}
	b.wait = b.spinner(b.phase("export"), b.exportText)
}

// exportText is what the export's spinner says: a retry under way, else
// the server's status (in progress before it sent one); nothing more once
// the export is ready.
func (b *bars) exportText() string {
	if n := b.note(); n != "" {
		return n
	}
	s := "in progress"
	if p := b.status.Load(); p != nil {
		s = *p
	}
	if s == exportReady {
		return ""
	}
	return "server: " + s
}

// exportReady is the export's status when the server has made its files.
const exportReady = "ready"

// Retrying shows the wait on the bar of the stage: the download's while
// files download, else the export's spinner, made now if the export has
// none yet (a kick-off the server turned away).
func (b *bars) Retrying(op, reason string, wait time.Duration) {
	b.retry.Store(&retry{what: reason + ", retrying " + printable(op, 40), until: time.Now().Add(wait)})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dl == nil {
		b.startWait()
	}
}

// endWait ends the export's spinner; callers hold mu.
func (b *bars) endWait() {
	if b.wait != nil {
		s := exportReady
		b.status.Store(&s)
		b.wait.SetTotal(-1, true)
		b.wait = nil
	}
}

// FileStarted adds a bar for the file, or restarts its bar on a retry.
func (b *bars) FileStarted(name string, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.endWait()
	if b.dl == nil {
		d := &download{files: map[string]*fileBar{}}
		d.bar = b.add(mpb.BarStyle(),
			mpb.PrependDecorators(label(b.phase("download")), decor.Any(func(decor.Statistics) string {
				return fmt.Sprintf("%d/%d files", d.done.Load(), d.started.Load())
			}, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpaceR),
				decor.Elapsed(decor.ET_STYLE_MMSS, decor.WCSyncSpace),
				decor.Any(func(s decor.Statistics) string { return doneText(s, b.note()) })))
		b.dl = d
	}
	d := b.dl
	if f, ok := d.files[name]; ok { // a retry: forget the failed attempt
		d.bar.IncrInt64(-f.got)
		d.total -= max(f.total, 0)
		f.got, f.total = 0, total
		f.bar.SetCurrent(0)
		f.bar.SetTotal(max(total, 0), false)
	} else {
		d.started.Add(1)
		bar := b.add(mpb.BarStyle(), mpb.BarRemoveOnComplete(),
			mpb.PrependDecorators(label("  "+name)),
			mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f", decor.WCSyncSpaceR)))
		bar.SetTotal(max(total, 0), false)
		d.files[name] = &fileBar{bar: bar, total: total}
	}
	d.total += max(total, 0)
	d.setTotal()
}

// setTotal keeps the overall total at least the bytes that arrived, for
// files of unknown size; callers hold bars.mu.
func (d *download) setTotal() {
	got := d.doneBytes
	for _, f := range d.files {
		got += f.got
	}
	d.bar.SetTotal(max(d.total, got), false)
}

// FileProgress moves the file's bar and the overall one.
func (b *bars) FileProgress(name string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped || b.dl == nil {
		return
	}
	f, ok := b.dl.files[name]
	if !ok {
		return
	}
	f.got += n
	f.bar.IncrInt64(n)
	b.dl.bar.IncrInt64(n)
	if f.total < 0 {
		b.dl.setTotal()
	}
}

// FileDone removes the file's bar; a failed file's bytes leave the overall
// count.
func (b *bars) FileDone(name string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped || b.dl == nil {
		return
	}
	d := b.dl
	f, ok := d.files[name]
	if !ok {
		return
	}
	delete(d.files, name)
	if err != nil {
		d.bar.IncrInt64(-f.got)
		d.total -= max(f.total, 0)
		f.bar.Abort(true)
		return
	}
	d.done.Add(1)
	d.doneBytes += f.got
	f.bar.SetTotal(-1, true)
}

// Rows counts staged rows.
func (b *bars) Rows(table string, n int64) {
	b.rows.Add(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	if !b.seen[table] {
		b.seen[table] = true
		b.tables.Add(1)
	}
	if b.rowBar == nil {
		b.rowBar = b.spinner("transform", func() string {
			return fmt.Sprintf("%d rows staged in %d tables", b.rows.Load(), b.tables.Load())
		})
	}
}

// Stage ends the bars of the stage that completed.
func (b *bars) Stage(stage string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	switch stage {
	case pipeline.StageExported:
		b.endWait()
		if b.dl != nil {
			b.dl.bar.SetTotal(-1, true)
			b.dl = nil
		}
		b.exported = true
	case pipeline.StageTransformed:
		b.endWait()
		if b.dl != nil { // the back-fill's
			b.dl.bar.SetTotal(-1, true)
			b.dl = nil
		}
		if b.rowBar != nil {
			b.rowBar.SetTotal(-1, true)
		}
		s := "committing"
		b.loadText.Store(&s)
		b.loadBar = b.spinner("load", func() string { return *b.loadText.Load() })
	case pipeline.StageCommitted:
		s := fmt.Sprintf("%d rows committed", b.rows.Load())
		b.loadText.Store(&s)
		if b.loadBar != nil {
			b.loadBar.SetTotal(-1, true)
		}
	}
}

// stop ends every bar still running where it stands, and waits for the
// last frame to be drawn.
func (b *bars) stop() {
	b.mu.Lock()
	b.stopped = true
	all := b.all
	b.mu.Unlock()
	for _, bar := range all {
		bar.Abort(false)
	}
	b.p.Wait()
}

// printable cuts a server's text to n runes and drops control characters,
// so that it can neither break the layout nor drive the terminal.
func printable(s string, n int) string {
	var sb strings.Builder
	for _, r := range strings.TrimSpace(s) {
		if n == 0 {
			sb.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		sb.WriteRune(r)
		n--
	}
	return sb.String()
}
