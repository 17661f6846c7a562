package extract

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// Kind says what a downloaded file holds.
type Kind string

// The kinds of manifest files.
const (
	KindOutput  Kind = "output"  // resources
	KindError   Kind = "error"   // OperationOutcomes about the export
	KindDeleted Kind = "deleted" // Bundles of DELETE entries (tombstones)
)

// File is a downloaded, verified manifest file.
type File struct {
	Kind   Kind   `json:"kind"`
	Type   string `json:"type"`
	Name   string `json:"name"` // base name in the output directory
	Lines  int64  `json:"lines"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// Invalid counts lines that are not JSON objects of the expected
	// resourceType; FirstInvalid is the 1-based line number of the first.
	// They are kept (transform rejects them with file and line), not
	// dropped here.
	Invalid      int64 `json:"invalid,omitempty"`
	FirstInvalid int64 `json:"firstInvalid,omitempty"`
	// Organized marks an output file of many types (organizeOutputBy):
	// Type is "", and its blocks' header Parameters resources are removed
	// after the download.
	Organized bool `json:"organized,omitempty"`
	// Filtered says that fhirlake rewrote the file after its download
	// (the request's _typeFilter applied, the headers of organized output
	// removed): Lines, Bytes and SHA256 describe the file as rewritten.
	Filtered bool `json:"filtered,omitempty"`
}

// Result is a finished export on disk.
type Result struct {
	StatusURL string
	Manifest  *Manifest
	Dir       string
	Files     []File
	// Errors summarises the OperationOutcomes of the manifest's error files.
	Errors ErrorSummary
	// Refused lists the kick-off parameters the server refused and what
	// fhirlake did instead; FilteredOut counts the resources fhirlake's
	// own _typeFilter dropped.
	Refused     []Refusal
	FilteredOut int64
}

// job is one file to download.
type job struct {
	kind  Kind
	entry FileEntry
	name  string
	// organized marks an output file of many types (organizeOutputBy).
	organized bool
}

// plan names every manifest file. Names come from the resource type (made
// safe: nothing from the server can steer a write outside dir) and a
// per-type sequence number, so they are the same on every attempt.
func plan(m *Manifest) []job {
	var jobs []job
	seq := map[string]int{}
	add := func(kind Kind, entries []FileEntry) {
		for _, e := range entries {
			t := safeName(e.Type)
			if kind == KindOutput && m.OutputOrganizedBy != "" {
				// Files of many types, organized by one.
				t = "organized"
			}
			prefix := t
			if kind != KindOutput {
				prefix = string(kind) + "." + t
			}
			seq[prefix]++
			jobs = append(jobs, job{kind: kind, entry: e, name: fmt.Sprintf("%s.%03d.ndjson", prefix, seq[prefix])})
		}
	}
	add(KindOutput, m.Output)
	add(KindError, m.Error)
	add(KindDeleted, m.Deleted)
	if m.OutputOrganizedBy != "" {
		for i := range jobs {
			if jobs[i].kind == KindOutput {
				jobs[i].organized = true
			}
		}
	}
	return jobs
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" {
		s = "unknown"
	}
	return s
}

// Download fetches every file of m into dir, without job state. An error
// file (manifest error[]) the server answers 404 or 410 for is left out
// with a warning: it holds diagnostics, not data.
func (c *Client) Download(ctx context.Context, m *Manifest, dir string) ([]File, error) {
	if err := c.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	files, _, err := c.download(ctx, m, dir, nil)
	return files, err
}

// errDiagnosticsGone marks an error file that answered 404 or 410.
var errDiagnosticsGone = errors.New("error file gone")

// download fetches the files of m with up to Concurrency workers, skipping
// those st records as verified and still intact on disk. It returns the
// files in manifest order, without the error files that answered 404 or
// 410, and the number of those.
func (c *Client) download(ctx context.Context, m *Manifest, dir string, st *jobStore) ([]File, int64, error) {
	jobs := plan(m)
	files := make([]File, len(jobs))
	gone := make([]bool, len(jobs))
	var todo []int
	for i, j := range jobs {
		if f, ok := c.alreadyDone(st, dir, j); ok {
			files[i] = f
			continue
		}
		todo = append(todo, i)
	}
	if skipped := len(jobs) - len(todo); skipped > 0 {
		c.log(ctx).Info("skipping files already downloaded and verified", "files", skipped)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := max(1, orDefault(c.Concurrency, 4))
	lim := newLimiter(workers)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(1, len(todo))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f, err := c.downloadOne(ctx, jobs[i], m.RequiresAccessToken, dir, lim)
				if errors.Is(err, errDiagnosticsGone) {
					gone[i] = true
					continue
				}
				if err == nil && st != nil {
					err = st.update(func(j *Job) {
						if j.Files == nil {
							j.Files = map[string]File{}
						}
						j.Files[f.Name] = f
					})
				}
				if err != nil {
					cancel(err)
					return
				}
				files[i] = f
			}
		}()
	}
feed:
	for _, i := range todo {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	var missing int64
	kept := files[:0]
	for i, f := range files {
		if gone[i] {
			missing++
			continue
		}
		kept = append(kept, f)
	}
	return kept, missing, nil
}

// alreadyDone reports whether a file was verified by an earlier attempt and
// is still on disk with the same checksum.
func (c *Client) alreadyDone(st *jobStore, dir string, j job) (File, bool) {
	if st == nil {
		return File{}, false
	}
	st.mu.Lock()
	f, ok := st.job.Files[j.name]
	st.mu.Unlock()
	if !ok {
		return File{}, false
	}
	sum, err := fileSHA256(filepath.Join(dir, j.name))
	return f, err == nil && sum == f.SHA256
}

func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// downloadOne fetches one file with retries, holding a slot of lim while a
// request is in flight.
func (c *Client) downloadOne(ctx context.Context, j job, auth bool, dir string, lim *limiter) (File, error) {
	var f File
	start := c.now()
	fp := &fileProgress{p: progressFrom(ctx), name: j.name}
	var last string // the last body's disagreement with the manifest
	err := c.retrying(ctx, "download "+j.name, func() (time.Duration, error) {
		if err := lim.acquire(ctx); err != nil {
			return 0, err
		}
		var ra time.Duration
		var err error
		f, ra, err = c.fetchFile(ctx, j, auth, dir, fp)
		var se *StatusError
		lim.release(errors.As(err, &se) && se.Status == http.StatusTooManyRequests)
		var mm *mismatch
		if errors.As(err, &mm) {
			mm.defect = mm.what == last
			last = mm.what
		}
		return ra, err
	})
	fp.done(err)
	var se *StatusError
	if j.kind == KindError && errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusGone) {
		c.log(ctx).Warn("error file of the manifest is gone on the server; its issues are unknown",
			"file", j.name, "status", se.Status)
		return File{}, errDiagnosticsGone
	}
	if err != nil {
		if errors.Is(err, ErrExportExpired) {
			return File{}, fmt.Errorf("download %s: files expired (410): rerun to start a new export: %w", j.name, err)
		}
		return File{}, fmt.Errorf("download %s: %w", j.name, err)
	}
	if f.Invalid > 0 {
		c.log(ctx).Warn("file has lines that are not resources of its type; transform will reject them",
			"file", f.Name, "invalid", f.Invalid, "first_line", f.FirstInvalid)
	}
	c.log(ctx).Info("file downloaded", "file", f.Name, "type", f.Type, "lines", f.Lines, "bytes", f.Bytes,
		"seconds", strconv.FormatFloat(c.now().Sub(start).Seconds(), 'f', 2, 64))
	return f, nil
}

// localWriter marks the errors of writing the downloaded file, which are
// our disk's and not the server's.
type localWriter struct{ w io.Writer }

func (l localWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		err = localError{err}
	}
	return n, err
}

type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }

// mismatch is a whole body that disagrees with its manifest entry: a
// dropped connection the first time (ErrTransient), a server defect when
// a fresh download disagrees in the same way again.
type mismatch struct {
	what   string
	defect bool
}

func (m *mismatch) Error() string {
	if m.defect {
		return ErrVerify.Error() + ": " + m.what + ", the same on a fresh download: the server sends the file so (a server defect; report it to its operator)"
	}
	return ErrVerify.Error() + ": " + m.what + ": " + ErrTransient.Error()
}

func (m *mismatch) Is(target error) bool {
	return target == ErrVerify || !m.defect && target == ErrTransient
}

// fileType is the resource type of the file's lines, "" for many.
func (j job) fileType() string {
	if j.organized {
		return ""
	}
	return j.entry.Type
}

// expectedType is the resourceType every line of a file must have.
func (j job) expectedType() string {
	switch j.kind {
	case KindError:
		return "OperationOutcome"
	case KindDeleted:
		return "Bundle"
	default:
		if j.organized {
			return "" // any type
		}
		return j.entry.Type
	}
}

// fetchFile makes one attempt at one file: stream it to a temporary file
// while hashing it and checking every line, verify against the manifest,
// then rename it into place. The bytes of the body are reported to fp as
// they arrive. The body is cut off as soon as it exceeds MaxFileSize or
// MaxDecompressionRatio (ErrTooLarge).
func (c *Client) fetchFile(ctx context.Context, j job, auth bool, dir string, fp *fileProgress) (File, time.Duration, error) {
	// Ask for gzip ourselves: net/http then leaves the body encoded, so
	// that the bytes counted are the bytes on the wire and a gzip bomb
	// shows its ratio.
	h := http.Header{"Accept": {"application/fhir+ndjson"}, "Accept-Encoding": {"gzip"}}
	resp, err := c.send(ctx, http.MethodGet, j.entry.URL, h, nil, auth)
	if err != nil {
		return File{}, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		ra := retryAfter(resp.Header.Get("Retry-After"), c.now())
		var kind error
		if resp.StatusCode == http.StatusNotFound && j.kind != KindError {
			kind = ErrProtocol // a file the manifest names but the server lacks
		}
		return File{}, ra, statusError("download", resp, kind)
	}
	defer resp.Body.Close()

	wire := &byteCounter{r: fp.start(resp.ContentLength, resp.Body)}
	body, err := decodeBody(wire, resp.Header.Get("Content-Encoding"))
	if err != nil {
		return File{}, 0, err
	}
	body = &limitReader{r: body, wire: wire, maxSize: orDefault(c.MaxFileSize, DefaultMaxFileSize),
		maxRatio: orDefault(c.MaxDecompressionRatio, DefaultMaxDecompressionRatio)}
	out, err := atomicfile.Create(filepath.Join(dir, j.name))
	if err != nil {
		return File{}, 0, err
	}
	defer out.Abort()
	if err := out.Chmod(c.fileMode()); err != nil {
		return File{}, 0, fmt.Errorf("set mode of %s: %w", j.name, err)
	}
	sum := sha256.New()
	pr, pw := io.Pipe()
	checked := make(chan lineCheck, 1)
	go func() { checked <- checkLines(pr, j.expectedType()) }()
	n, err := io.Copy(io.MultiWriter(localWriter{out}, sum, pw), body)
	pw.CloseWithError(err)
	lc := <-checked
	if err != nil {
		var le localError
		switch {
		case ctx.Err() != nil:
			return File{}, 0, ctx.Err()
		case errors.Is(err, ErrTooLarge):
			return File{}, 0, err
		case errors.As(err, &le):
			// Our disk, not the server: retrying the download cannot help.
			what := "cannot be written"
			if errors.Is(le.err, syscall.ENOSPC) || errors.Is(le.err, syscall.EDQUOT) {
				what = "cannot be written: the disk is full"
			}
			return File{}, 0, fmt.Errorf("%s %s (in %s): free space or fix the work directory, then rerun: the files already verified are kept for the resume: %w",
				j.name, what, dir, le)
		}
		return File{}, 0, fmt.Errorf("read body: %w: %w", ErrTransient, err)
	}
	if lc.err != nil {
		return File{}, 0, fmt.Errorf("check lines: %w", lc.err)
	}
	// Error files are diagnostics, not data: some servers count the
	// resources that failed rather than the OperationOutcomes they wrote,
	// so their count is not checked.
	if j.kind != KindError && j.entry.Count != nil && *j.entry.Count != lc.lines {
		// A short body is usually a dropped connection: worth another try
		// (downloadOne gives up when a whole body disagrees the same way
		// twice).
		return File{}, 0, &mismatch{what: fmt.Sprintf("manifest count %d, got %d lines", *j.entry.Count, lc.lines)}
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if want := j.entry.checksum(); want != "" && want != got {
		return File{}, 0, &mismatch{what: "SHA-256 " + got + " differs from the manifest's " + want}
	}
	if err := out.Commit(); err != nil {
		return File{}, 0, err
	}
	return File{
		Kind: j.kind, Type: j.fileType(), Name: j.name, Organized: j.organized,
		Lines: lc.lines, Bytes: n, SHA256: got,
		Invalid: lc.invalid, FirstInvalid: lc.firstInvalid,
	}, 0, nil
}

// lineCheck is what checkLines found.
type lineCheck struct {
	lines, invalid, firstInvalid int64
	err                          error
}

// maxLine bounds one NDJSON line; FHIR resources with large attachments
// can be big, but a line beyond this is not a resource we can load.
const maxLine = 256 << 20

// lineScanner returns a scanner of NDJSON lines up to maxLine bytes. Its
// buffer starts small and grows with the longest line, so that reading a
// small file costs little.
func lineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return sc
}

// checkLines counts the non-empty lines of r and checks that each is a JSON
// object with the expected resourceType. It reads r to the end. Its memory
// is the line buffer and the scanner's stack, whatever the lines hold.
func checkLines(r io.Reader, wantType string) lineCheck {
	var lc lineCheck
	sc := lineScanner(r)
	var js jsonScanner
	var n int64
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		lc.lines++
		ok, typ, hasType := js.scan(line)
		if !ok || !hasType || wantType != "" && string(typ) != wantType {
			lc.invalid++
			if lc.firstInvalid == 0 {
				lc.firstInvalid = n
			}
		}
	}
	if err := sc.Err(); err != nil {
		lc.err = err
		io.Copy(io.Discard, r) // let the writer finish
	}
	return lc
}

// maybeGunzip transparently decompresses a gzip body (recognised by its
// magic bytes, whatever the headers say).
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return gzip.NewReader(br)
	}
	return br, nil
}

// decodeBody undoes the Content-Encoding of a file body (gzip or none),
// then any gzip compression of the file itself (maybeGunzip).
func decodeBody(r io.Reader, encoding string) (io.Reader, error) {
	switch e := strings.ToLower(strings.TrimSpace(encoding)); e {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("read gzip body: %w: %w", ErrTransient, err)
		}
		r = zr
	default:
		return nil, fmt.Errorf("file sent with Content-Encoding %q, which was not asked for: %w", clean(e, 40), ErrProtocol)
	}
	body, err := maybeGunzip(r)
	if err != nil {
		return nil, fmt.Errorf("read body: %w: %w", ErrTransient, err)
	}
	return body, nil
}

// Download limits: see Client.MaxFileSize and Client.MaxDecompressionRatio.
const (
	// DefaultMaxFileSize is the default largest file, after decompression:
	// 64 GiB.
	DefaultMaxFileSize int64 = 64 << 30
	// DefaultMaxDecompressionRatio is the default largest ratio of
	// decompressed bytes to bytes on the wire. FHIR NDJSON compresses 10 to
	// 25 times; a gzip bomb of zeros, about 1000 times.
	DefaultMaxDecompressionRatio float64 = 200
	// ratioFloor is what a body may expand to before the ratio is
	// checked, so that small files are never held to it.
	ratioFloor = 1 << 20
)

// byteCounter counts the bytes read through it.
type byteCounter struct {
	r io.Reader
	n int64
}

func (b *byteCounter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// limitReader passes on a decoded body until it grows past maxSize bytes,
// or past maxRatio times the bytes read from the wire; then it fails with
// ErrTooLarge. It never passes on more than maxSize bytes, and never more
// than one read beyond the ratio, so a gzip bomb stops before it fills a
// disk.
type limitReader struct {
	r        io.Reader
	wire     *byteCounter
	maxSize  int64
	maxRatio float64
	n        int64
	err      error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if room := l.maxSize - l.n + 1; int64(len(p)) > room {
		p = p[:room] // one byte past the limit tells a file of exactly maxSize from a larger one
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	switch {
	case l.n > l.maxSize:
		n -= int(l.n - l.maxSize)
		l.n = l.maxSize
		l.err = fmt.Errorf("larger than %s after decompression, the limit on one file: raise --max-file-size (max_file_size in the config) if the file is genuine: %w",
			formatSize(l.maxSize), ErrTooLarge)
		return n, l.err
	case l.n > ratioFloor && float64(l.n) > l.maxRatio*float64(l.wire.n):
		l.err = fmt.Errorf("expands more than %s times (%s from %s downloaded so far), the limit: raise --max-decompression-ratio (max_decompression_ratio in the config) if the file is genuine: %w",
			strconv.FormatFloat(l.maxRatio, 'g', -1, 64), formatSize(l.n), formatSize(l.wire.n), ErrTooLarge)
		return n, l.err
	}
	return n, err
}

// formatSize writes a byte count the way the size flags read it: 64GiB,
// 500MB, 1.5MiB; 1023B.
func formatSize(n int64) string {
	units := []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}}
	best := -1 // the unit that divides n exactly with the smallest quotient
	for i, u := range units {
		if n >= u.size && n%u.size == 0 && (best < 0 || n/u.size < n/units[best].size) {
			best = i
		}
	}
	if best >= 0 {
		return strconv.FormatInt(n/units[best].size, 10) + units[best].name
	}
	for _, u := range units[:4] {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// limiter bounds concurrent downloads and adapts to the server: a 429 halves
// the limit (never below one); each run of successes as long as the limit
// raises it by one again, up to the configured maximum.
type limiter struct {
	mu      sync.Mutex // guards the fields below
	cond    *sync.Cond
	limit   int
	max     int
	active  int
	streak  int
	lowered int // times the limit was lowered, for tests and logs
}

func newLimiter(n int) *limiter {
	l := &limiter{limit: n, max: n}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *limiter) acquire(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
	defer stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.active >= l.limit {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.cond.Wait()
	}
	l.active++
	return nil
}

func (l *limiter) release(throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.active--
	if throttled {
		l.limit = max(1, l.limit/2)
		l.streak = 0
		l.lowered++
	} else if l.limit < l.max {
		l.streak++
		if l.streak >= l.limit {
			l.limit++
			l.streak = 0
		}
	}
	l.cond.Broadcast()
}
