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
	"sync"
	"time"

	"github.com/valyala/fastjson"

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
}

// Result is a finished export on disk.
type Result struct {
	StatusURL string
	Manifest  *Manifest
	Dir       string
	Files     []File
	// Errors summarises the OperationOutcomes of the manifest's error files.
	Errors ErrorSummary
}

// job is one file to download.
type job struct {
	kind  Kind
	entry FileEntry
	name  string
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

// Download fetches every file of m into dir, without job state.
func (c *Client) Download(ctx context.Context, m *Manifest, dir string) ([]File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	return c.download(ctx, m, dir, nil)
}

// download fetches the files of m with up to Concurrency workers, skipping
// those st records as verified and still intact on disk. It returns the
// files in manifest order.
func (c *Client) download(ctx context.Context, m *Manifest, dir string, st *jobStore) ([]File, error) {
	jobs := plan(m)
	files := make([]File, len(jobs))
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
		return nil, err
	}
	return files, nil
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
	err := c.retrying(ctx, "download "+j.name, func() (time.Duration, error) {
		if err := lim.acquire(ctx); err != nil {
			return 0, err
		}
		var ra time.Duration
		var err error
		f, ra, err = c.fetchFile(ctx, j, auth, dir, fp)
		var se *StatusError
		lim.release(errors.As(err, &se) && se.Status == http.StatusTooManyRequests)
		return ra, err
	})
	fp.done(err)
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

// expectedType is the resourceType every line of a file must have.
func (j job) expectedType() string {
	switch j.kind {
	case KindError:
		return "OperationOutcome"
	case KindDeleted:
		return "Bundle"
	default:
		return j.entry.Type
	}
}

// fetchFile makes one attempt at one file: stream it to a temporary file
// while hashing it and checking every line, verify against the manifest,
// then rename it into place. The bytes of the body are reported to fp as
// they arrive.
func (c *Client) fetchFile(ctx context.Context, j job, auth bool, dir string, fp *fileProgress) (File, time.Duration, error) {
	h := http.Header{"Accept": {"application/fhir+ndjson"}}
	resp, err := c.send(ctx, http.MethodGet, j.entry.URL, h, nil, auth)
	if err != nil {
		return File{}, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		ra := retryAfter(resp.Header.Get("Retry-After"), c.now())
		var kind error
		if resp.StatusCode == http.StatusNotFound {
			kind = ErrProtocol // a file the manifest names but the server lacks
		}
		return File{}, ra, statusError("download", resp, kind)
	}
	defer resp.Body.Close()

	body, err := maybeGunzip(fp.start(resp.ContentLength, resp.Body))
	if err != nil {
		return File{}, 0, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	out, err := atomicfile.Create(filepath.Join(dir, j.name))
	if err != nil {
		return File{}, 0, err
	}
	defer out.Abort()
	sum := sha256.New()
	pr, pw := io.Pipe()
	checked := make(chan lineCheck, 1)
	go func() { checked <- checkLines(pr, j.expectedType()) }()
	n, err := io.Copy(io.MultiWriter(out, sum, pw), body)
	pw.CloseWithError(err)
	lc := <-checked
	if err != nil {
		if ctx.Err() != nil {
			return File{}, 0, ctx.Err()
		}
		return File{}, 0, fmt.Errorf("read body: %w: %w", ErrTransient, err)
	}
	if lc.err != nil {
		return File{}, 0, fmt.Errorf("check lines: %w", lc.err)
	}
	if j.entry.Count != nil && *j.entry.Count != lc.lines {
		// A short body is usually a dropped connection: worth another try.
		return File{}, 0, fmt.Errorf("%w: manifest count %d, got %d lines: %w", ErrVerify, *j.entry.Count, lc.lines, ErrTransient)
	}
	got := hex.EncodeToString(sum.Sum(nil))
	if want := j.entry.checksum(); want != "" && want != got {
		return File{}, 0, fmt.Errorf("%w: SHA-256 differs from the manifest's: %w", ErrVerify, ErrTransient)
	}
	if err := out.Commit(); err != nil {
		return File{}, 0, err
	}
	return File{
		Kind: j.kind, Type: j.entry.Type, Name: j.name,
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
// object with the expected resourceType. It reads r to the end.
func checkLines(r io.Reader, wantType string) lineCheck {
	var lc lineCheck
	sc := lineScanner(r)
	var p fastjson.Parser
	var n int64
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		lc.lines++
		v, err := p.ParseBytes(line)
		if err != nil || v.Type() != fastjson.TypeObject || string(v.GetStringBytes("resourceType")) != wantType {
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
