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
}

// Result is a finished export on disk.
type Result struct {
	StatusURL string
	Manifest  *Manifest
	Dir       string
	Files     []File
}

// ManifestFile is the name under which Export keeps the manifest beside the
// files it describes.
const ManifestFile = "manifest.json"

// Export runs the whole lifecycle: kick-off, poll, download into dir (which
// is created), and the manifest saved as dir/manifest.json.
func (c *Client) Export(ctx context.Context, r Request, dir string) (*Result, error) {
	status, err := c.Kickoff(ctx, r)
	if err != nil {
		return nil, err
	}
	m, err := c.Poll(ctx, status)
	if err != nil {
		return nil, err
	}
	files, err := c.Download(ctx, m, dir)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, ManifestFile), m.Raw); err != nil {
		return nil, fmt.Errorf("save manifest: %w", err)
	}
	return &Result{StatusURL: status, Manifest: m, Dir: dir, Files: files}, nil
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

// Download fetches every file of m into dir with Concurrency workers,
// verifying each against its manifest entry. It returns the files in
// manifest order.
func (c *Client) Download(ctx context.Context, m *Manifest, dir string) ([]File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create output dir: %w", err)
	}
	jobs := plan(m)
	files := make([]File, len(jobs))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, orDefault(c.Concurrency, 4)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f, err := c.downloadOne(ctx, jobs[i], m.RequiresAccessToken, dir)
				if err != nil {
					cancel(err)
					return
				}
				files[i] = f
			}
		}()
	}
feed:
	for i := range jobs {
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

// downloadOne fetches one file with retries.
func (c *Client) downloadOne(ctx context.Context, j job, auth bool, dir string) (File, error) {
	var f File
	start := c.now()
	err := c.retrying(ctx, "download "+j.name, func() (time.Duration, error) {
		var ra time.Duration
		var err error
		f, ra, err = c.fetchFile(ctx, j, auth, dir)
		return ra, err
	})
	if err != nil {
		return File{}, fmt.Errorf("download %s: %w", j.name, err)
	}
	c.log().Info("file downloaded", "file", f.Name, "type", f.Type, "lines", f.Lines, "bytes", f.Bytes,
		"seconds", strconv.FormatFloat(c.now().Sub(start).Seconds(), 'f', 2, 64))
	return f, nil
}

// fetchFile makes one attempt at one file.
func (c *Client) fetchFile(ctx context.Context, j job, auth bool, dir string) (File, time.Duration, error) {
	h := http.Header{"Accept": {"application/fhir+ndjson"}}
	resp, err := c.send(ctx, http.MethodGet, j.entry.URL, h, auth)
	if err != nil {
		return File{}, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		ra := retryAfter(resp.Header.Get("Retry-After"), c.now())
		return File{}, ra, statusError("download", resp, nil)
	}
	defer resp.Body.Close()

	body, err := maybeGunzip(resp.Body)
	if err != nil {
		return File{}, 0, fmt.Errorf("%w: %w", ErrTransient, err)
	}
	out, err := atomicfile.Create(filepath.Join(dir, j.name))
	if err != nil {
		return File{}, 0, err
	}
	defer out.Abort()
	sum := sha256.New()
	lc := &lineCounter{}
	n, err := io.Copy(io.MultiWriter(out, sum, lc), body)
	if err != nil {
		if ctx.Err() != nil {
			return File{}, 0, ctx.Err()
		}
		return File{}, 0, fmt.Errorf("read body: %w: %w", ErrTransient, err)
	}
	lines := lc.finish()
	if j.entry.Count != nil && *j.entry.Count != lines {
		// A short body is usually a dropped connection: worth another try.
		return File{}, 0, fmt.Errorf("%w: manifest count %d, got %d lines: %w", ErrVerify, *j.entry.Count, lines, ErrTransient)
	}
	if err := out.Commit(); err != nil {
		return File{}, 0, err
	}
	return File{
		Kind: j.kind, Type: j.entry.Type, Name: j.name,
		Lines: lines, Bytes: n, SHA256: hex.EncodeToString(sum.Sum(nil)),
	}, 0, nil
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

// lineCounter counts non-empty NDJSON lines in a stream.
type lineCounter struct {
	lines   int64
	pending bool // bytes seen since the last newline
}

func (l *lineCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(bytes.TrimSpace(p)) > 0 {
				l.pending = true
			}
			break
		}
		if l.pending || len(bytes.TrimSpace(p[:i])) > 0 {
			l.lines++
		}
		l.pending = false
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineCounter) finish() int64 {
	if l.pending {
		l.lines++
		l.pending = false
	}
	return l.lines
}
