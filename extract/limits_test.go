package extract

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// zeroMember is one gzip member of 16 MiB of zeros: about 16 KiB. A gzip
// stream may hold many members one after another (gzip a b > c), and
// gzip.Reader reads them all, so a gigabyte bomb is this member 64 times.
var zeroMember = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(make([]byte, 16<<20))
	zw.Close()
	return buf.Bytes()
})

// writeBomb writes a gzip stream of size bytes of zeros (a multiple of
// 16 MiB) to w, and stops at the first failed write: when the client hangs
// up.
func writeBomb(w io.Writer, size int64) {
	for range size / (16 << 20) {
		if _, err := w.Write(zeroMember()); err != nil {
			return
		}
	}
}

// peakTemp records the largest temporary file in dir each time a download
// reports progress.
type peakTemp struct {
	NopProgress
	dir  string
	peak atomic.Int64
}

func (p *peakTemp) FileProgress(string, int64) {
	tmps, _ := filepath.Glob(filepath.Join(p.dir, ".*.tmp"))
	for _, tmp := range tmps {
		if fi, err := os.Stat(tmp); err == nil && fi.Size() > p.peak.Load() {
			p.peak.Store(fi.Size())
		}
	}
}

// TestDownloadLimits: a 1 GiB gzip bomb (1 MiB on the wire) stops at the
// file size limit, or at the decompression ratio, before more than the
// limit reaches the disk; the temporary file is removed; the error names
// the file by its local name and the setting that raises the limit, and is
// not retried (ErrTooLarge, never ErrTransient). Before, the bomb was
// written out whole.
func TestDownloadLimits(t *testing.T) {
	const bomb = 1 << 30
	ndjson := strings.Repeat(`{"resourceType":"Patient","id":"a"}`+"\n", 1000)
	var gzNDJSON bytes.Buffer
	zw := gzip.NewWriter(&gzNDJSON)
	zw.Write([]byte(ndjson))
	zw.Close()
	tests := []struct {
		name     string
		maxSize  int64
		ratio    float64
		serve    func(w http.ResponseWriter)
		lines    int64    // when it succeeds
		errParts []string // when it fails
		peak     int64    // most bytes on disk at any time
	}{
		{"file size", 10e6, 1e9,
			func(w http.ResponseWriter) { writeBomb(w, bomb) },
			0, []string{"download Patient.001.ndjson: ", "larger than 10MB", "--max-file-size", "max_file_size"}, 10e6},
		{"ratio, file compressed", 0, 0,
			func(w http.ResponseWriter) { writeBomb(w, bomb) },
			0, []string{"download Patient.001.ndjson: ", "expands more than 200 times", "--max-decompression-ratio", "max_decompression_ratio"}, 16 << 20},
		{"ratio, Content-Encoding gzip", 0, 0,
			func(w http.ResponseWriter) { w.Header().Set("Content-Encoding", "gzip"); writeBomb(w, bomb) },
			0, []string{"download Patient.001.ndjson: ", "expands more than 200 times"}, 16 << 20},
		{"ratio, both", 0, 50,
			func(w http.ResponseWriter) {
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				writeBomb(zw, bomb)
				zw.Close()
			},
			0, []string{"expands more than 50 times"}, 16 << 20},
		{"size limit, plain body", 1000, 0,
			func(w http.ResponseWriter) { io.WriteString(w, ndjson) },
			0, []string{"larger than 1kB"}, 1000},
		{"exactly the size limit", int64(len(ndjson)), 0,
			func(w http.ResponseWriter) { io.WriteString(w, ndjson) },
			1000, nil, 0},
		{"Content-Encoding gzip within the limits", int64(len(ndjson)), 0,
			func(w http.ResponseWriter) { w.Header().Set("Content-Encoding", "gzip"); w.Write(gzNDJSON.Bytes()) },
			1000, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gets.Add(1)
				w.Header().Set("Content-Type", "application/fhir+ndjson")
				tt.serve(w)
			}))
			defer srv.Close()
			m := &Manifest{Output: []FileEntry{{Type: "Patient", URL: srv.URL + "/f/1?sig=s3cr3t-signature"}}}
			dir := t.TempDir()
			c := &Client{MaxFileSize: tt.maxSize, MaxDecompressionRatio: tt.ratio,
				Sleep: func(context.Context, time.Duration) error { return nil }}
			p := &peakTemp{dir: dir}
			start := time.Now()
			files, err := c.Download(WithProgress(t.Context(), p), m, dir)
			if tt.errParts == nil {
				if err != nil || len(files) != 1 || files[0].Lines != tt.lines {
					t.Fatalf("Download = %+v, %v; want %d lines", files, err, tt.lines)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want ErrTooLarge and not ErrTransient", err)
			}
			for _, part := range tt.errParts {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error %q names the server URL", err)
			}
			if n := gets.Load(); n != 1 {
				t.Errorf("file requested %d times, want once: the limit fails the same way every time", n)
			}
			if peak := p.peak.Load(); peak > tt.peak {
				t.Errorf("%d bytes on disk at the peak, more than %d", peak, tt.peak)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("left behind: %v", ents)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v to stop", d)
			}
		})
	}
}

// TestLimitReaderNeverPassesMore: what limitReader passes on is what
// reaches the disk; it never passes more than the size limit, and never
// more than one read beyond the ratio.
func TestLimitReaderNeverPassesMore(t *testing.T) {
	bomb := func() []byte {
		var b bytes.Buffer
		writeBomb(&b, 1<<30)
		return b.Bytes()
	}()
	tests := []struct {
		name     string
		maxSize  int64
		maxRatio float64
		body     func() io.Reader // the wire
		gunzip   bool
		wantErr  bool
		atMost   int64
	}{
		{"size of a bomb", 10e6, 1e9, func() io.Reader { return bytes.NewReader(bomb) }, true, true, 10e6},
		{"ratio of a bomb", 1 << 40, 200, func() io.Reader { return bytes.NewReader(bomb) }, true, true, 200*(64<<10) + 32<<10},
		{"plain, one byte over", 99, 200, func() io.Reader { return strings.NewReader(strings.Repeat("x", 100)) }, false, true, 99},
		{"plain, exactly", 100, 200, func() io.Reader { return strings.NewReader(strings.Repeat("x", 100)) }, false, false, 100},
		{"small files are not held to the ratio", 1 << 40, 1, func() io.Reader {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(make([]byte, 1<<20))
			zw.Close()
			return &b
		}, true, false, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := &byteCounter{r: tt.body()}
			var body io.Reader = wire
			if tt.gunzip {
				var err error
				if body, err = maybeGunzip(wire); err != nil {
					t.Fatal(err)
				}
			}
			n, err := io.Copy(io.Discard, &limitReader{r: body, wire: wire, maxSize: tt.maxSize, maxRatio: tt.maxRatio})
			if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge: %v", err, tt.wantErr)
			}
			if n > tt.atMost {
				t.Errorf("passed on %d bytes, more than %d", n, tt.atMost)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 999: "999B", 1000: "1kB", 1024: "1KiB", 10e6: "10MB", 64 << 30: "64GiB", 1 << 40: "1TiB",
		1536 << 20: "1536MiB", 3*1024*1024 + 1: "3.0MiB", 1e12: "1TB",
	} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
