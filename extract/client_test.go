package extract

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, header string
		want         time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"fractional seconds", "1.5", 1500 * time.Millisecond},
		{"zero", "0", 0},
		{"negative", "-4", 0},
		{"http date", "Mon, 05 Jan 2026 12:00:30 GMT", 30 * time.Second},
		{"http date in the past", "Mon, 05 Jan 2026 11:00:00 GMT", 0},
		{"absurd", "99999999999", maxRetryAfter},
		{"garbage", "soon", 0},
		{"leading zeros and spaces", " 007 ", 7 * time.Second},
		{"just above the cap", "1000001", maxRetryAfter},
		{"more digits than int64", "999999999999999999999999999999", maxRetryAfter},
		{"fraction beyond nanoseconds", "0.0000000019", 1 * time.Nanosecond},
		{"NaN", "NaN", 0}, // ParseFloat took it, and the conversion made it negative
		{"Inf", "Inf", 0},
		{"exponent", "1e3", 0},
		{"hex float", "0x1p4", 0},
		{"plus sign", "+5", 0},
		{"underscores", "1_000", 0},
		{"trailing dot", "1.", 0},
		{"leading dot", ".5", 0},
		{"non-ASCII digit", "\u0663", 0},
		{"http date far in the future", "Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.header, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestClampPoll(t *testing.T) {
	c := &Client{PollFloor: 2 * time.Second, PollCeiling: time.Minute, PollDefault: 10 * time.Second}
	tests := []struct {
		in, lo time.Duration
	}{
		{0, 10 * time.Second},               // default
		{time.Millisecond, 2 * time.Second}, // floor
		{time.Hour, time.Minute},            // ceiling
		{30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		got := c.clampPoll(tt.in)
		if got < tt.lo || got > tt.lo+tt.lo/10 {
			t.Errorf("clampPoll(%v) = %v, want in [%v, %v]", tt.in, got, tt.lo, tt.lo+tt.lo/10)
		}
	}
}

func TestKickoffURL(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"system", Request{}, "https://p.example/fhir/$export"},
		{"patient", Request{Patient: true}, "https://p.example/fhir/Patient/$export"},
		{"group with filters", Request{Group: "g 1", Types: []string{"Patient", "Coverage"}, Since: since},
			"https://p.example/fhir/Group/g%201/$export?_since=2026-01-02T02%3A04%3A05Z&_type=Patient%2CCoverage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{BaseURL: "https://p.example/fhir/"}
			got, err := c.kickoffURL(tt.req)
			if err != nil || got != tt.want {
				t.Errorf("kickoffURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		done     bool
		wantErr  error
		wantType string
	}{
		{"standard", `{"transactionTime":"2026-01-05T00:00:00Z","requiresAccessToken":true,"output":[{"type":"Patient","url":"http://x/1","count":2}],"error":[]}`, true, nil, "Patient"},
		{"1up successful", `{"status":"Successful","transactionTime":"2026-01-05T00:00:00.000+00:00","output":[{"type":"Coverage","url":"http://x/2"}],"error":[],"batches":1}`, true, nil, "Coverage"},
		{"1up running", `{"status":"In Progress"}`, false, nil, ""},
		{"1up failed", `{"status":"Failed"}`, false, ErrExportFailed, ""},
		{"outcome", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"boom"}]}`, false, ErrExportFailed, ""},
		{"no transactionTime", `{"output":[]}`, false, ErrProtocol, ""},
		{"not json", `<html>`, false, ErrProtocol, ""},
		{"zero transactionTime", `{"transactionTime":"0001-01-01T00:00:00Z","output":[]}`, false, ErrProtocol, ""},
		{"error entry without url", `{"transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[{"type":"OperationOutcome"}]}`, false, ErrProtocol, ""},
		{"deleted entry without type", `{"transactionTime":"2026-01-05T00:00:00Z","output":[],"deleted":[{"url":"http://x/d"}]}`, false, ErrProtocol, ""},
		{"file url", `{"transactionTime":"2026-01-05T00:00:00Z","output":[{"type":"Patient","url":"file:///etc/passwd"}]}`, false, ErrProtocol, ""},
		{"relative url", `{"transactionTime":"2026-01-05T00:00:00Z","output":[{"type":"Patient","url":"/f/1"}]}`, false, ErrProtocol, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, done, err := completion([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if done != tt.done {
				t.Fatalf("done = %v, want %v", done, tt.done)
			}
			if done && m.Output[0].Type != tt.wantType {
				t.Errorf("output type = %q, want %q", m.Output[0].Type, tt.wantType)
			}
		})
	}
}

func TestStatusLocation(t *testing.T) {
	track := func(text string) string {
		return `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","details":{"text":"` + text + `"}}]}`
	}
	const kickoff = "https://api.example/fhir/$export"
	tests := []struct {
		name, location, body string
		want                 string // "" for an ErrProtocol error
	}{
		{"absolute", "https://api.example/status/7", "", "https://api.example/status/7"},
		{"relative", "/status/7", "", "https://api.example/status/7"},
		{"scheme-relative", "//other.example/status", "", "https://other.example/status"},
		{"1up track job", "", track("Asynchronous export running. Track job at https://gateway.example/v1/bison/bulk-data/r4/$export/job/42."),
			"https://gateway.example/v1/bison/bulk-data/r4/$export/job/42"},
		{"none", "", "", ""},
		{"ftp", "ftp://api.example/status", "", ""},
		{"file", "file:///etc/passwd", "", ""},
		{"javascript", "javascript:alert(1)", "", ""},
		{"mailto", "mailto:ops@api.example", "", ""},
		{"no host", "http://", "", ""},
		{"port without host", "https://:443/status", "", ""},
		{"unparseable", "%zz", "", ""},
		{"track job at ftp", "", track("Track job at ftp://gateway.example/job/42"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tt.location != "" {
				rec.Header().Set("Content-Location", tt.location)
			}
			rec.WriteHeader(http.StatusAccepted)
			rec.WriteString(tt.body)
			got, err := statusLocation(rec.Result(), kickoff)
			if tt.want == "" {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("statusLocation = %q, %v; want ErrProtocol", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("statusLocation = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestOutcomeSummary(t *testing.T) {
	outcome := func(diagnostics string) string {
		return `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"` + diagnostics + `"}]}`
	}
	tests := []struct {
		name, body, want string
	}{
		{"diagnostics", outcome("boom"), "error: boom"},
		{"details and code", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","details":{"text":"busy"}},{"severity":"warning","code":"incomplete"}]}`,
			"error: busy; warning: incomplete"},
		{"not an outcome", `{"resourceType":"Patient"}`, ""},
		{"not json", `<html>`, ""},
		// A server must not forge log lines or drive the terminal.
		{"control characters", outcome(`a\nb\r\tc\u001b[2J\u0007\u0085\u202ed`), "error: a b  c [2J   d"},
		{"invalid UTF-8", "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"diagnostics\":\"a\xffb\"}]}", "error: a\ufffdb"},
		// Cut at a rune boundary: 292 'é' after "error: " end at byte 591,
		// 300 falls inside the 147th.
		{"cut inside a rune", outcome(strings.Repeat("é", 292)), "error: " + strings.Repeat("é", 146) + "..."},
		{"cut", outcome(strings.Repeat("a", 400)), "error: " + strings.Repeat("a", 293) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcomeSummary([]byte(tt.body)); got != tt.want {
				t.Errorf("outcomeSummary = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNextLink(t *testing.T) {
	tests := []struct {
		name, body, want string
		err              bool
	}{
		{"no links", `{"output":[]}`, "", false},
		{"next", `{"link":[{"relation":"self","url":"https://x.example/s"},{"relation":"next","url":"https://x.example/s?page=2"}]}`, "https://x.example/s?page=2", false},
		{"relative next", `{"link":[{"relation":"next","url":"/s?page=2"}]}`, "", true},
		{"ftp next", `{"link":[{"relation":"next","url":"ftp://x.example/s"}]}`, "", true},
		{"link not an array", `{"link":{"relation":"next","url":"https://x.example/s"}}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := nextLink([]byte(tt.body))
			if tt.err != (err != nil) || tt.err && !errors.Is(err, ErrProtocol) || got != tt.want {
				t.Errorf("nextLink = %q, %v; want %q, error %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// fakeServer is a minimal Bulk Data server for protocol edge cases; the
// sandbox package covers the full lifecycle.
type fakeServer struct {
	mu       sync.Mutex
	polls    int
	sawAuth  map[string]bool // path -> Authorization header present
	files    map[string]string
	manifest func(base string) string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.sawAuth[r.Host+r.URL.Path] = r.Header.Get("Authorization") != ""
	f.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/$export"):
		w.Header().Set("Content-Location", "http://"+r.Host+"/status")
		w.WriteHeader(202)
	case r.URL.Path == "/status":
		f.mu.Lock()
		f.polls++
		n := f.polls
		f.mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(202)
			return
		}
		fmt.Fprint(w, f.manifest("http://"+r.Host))
	default:
		body, ok := f.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body)
	}
}

func TestExportHonoursRetryAfterAndVerifies(t *testing.T) {
	f := &fakeServer{sawAuth: map[string]bool{}, files: map[string]string{
		"/f/1": `{"resourceType":"Patient","id":"a"}` + "\n" + `{"resourceType":"Patient","id":"b"}` + "\n",
		"/f/2": `{"resourceType":"Coverage","id":"c"}`, // no trailing newline
	}}
	f.manifest = func(base string) string {
		return `{"transactionTime":"2026-01-05T00:00:00Z","requiresAccessToken":true,"output":[` +
			`{"type":"Patient","url":"` + base + `/f/1","count":2},{"type":"../../etc/Coverage","url":"` + base + `/f/2","count":1}],"error":[]}`
	}
	srv := httptest.NewServer(f)
	defer srv.Close()

	var slept []time.Duration
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken("t0k"), PollCeiling: time.Minute,
		Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }}
	dir := t.TempDir()
	res, err := c.Export(t.Context(), Request{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(slept) != 1 || slept[0] < 7*time.Second || slept[0] > 8*time.Second {
		t.Errorf("slept %v, want one wait of 7s plus jitter", slept)
	}
	var names []string
	var lines []int64
	for _, fl := range res.Files {
		names = append(names, fl.Name)
		lines = append(lines, fl.Lines)
	}
	if diff := cmp.Diff([]string{"Patient.001.ndjson", "_etc_Coverage.001.ndjson"}, names); diff != "" {
		t.Errorf("file names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{2, 1}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err != nil {
		t.Errorf("manifest not kept: %v", err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if !f.sawAuth[host+"/f/1"] || !f.sawAuth[host+"/status"] {
		t.Errorf("token not sent to status and files: %v", f.sawAuth)
	}
}

func TestDownloadCountMismatchFails(t *testing.T) {
	f := &fakeServer{sawAuth: map[string]bool{}, files: map[string]string{"/f/1": `{"resourceType":"Patient","id":"a"}` + "\n"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	three := int64(3)
	m := &Manifest{Output: []FileEntry{{Type: "Patient", URL: srv.URL + "/f/1", Count: &three}}}
	c := &Client{Retries: 2, Sleep: func(context.Context, time.Duration) error { return nil }}
	dir := t.TempDir()
	_, err := c.Download(t.Context(), m, dir)
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("err = %v, want ErrVerify", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a file that failed verification was left behind: %v", ents)
	}
}

// TestDownloadMismatchTwiceIsADefect: a body whose line count disagrees
// with the manifest is downloaded again once (a dropped connection looks
// so); the same disagreement on the fresh download is the server's
// defect: not transient, no third download. A short body followed by a
// whole one succeeds.
func TestDownloadMismatchTwiceIsADefect(t *testing.T) {
	line := `{"resourceType":"Patient","id":"a"}` + "\n"
	for _, tc := range []struct {
		name      string
		bodies    []string // per request; the last repeats
		wantErr   bool
		downloads int32
	}{
		{"always one line short", []string{line}, true, 2},
		{"short, then whole", []string{line, line + line}, false, 2},
		{"different each time", []string{"", line, line + line}, false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				fmt.Fprint(w, tc.bodies[min(i, len(tc.bodies)-1)])
			}))
			defer srv.Close()
			two := int64(2)
			m := &Manifest{Output: []FileEntry{{Type: "Patient", URL: srv.URL + "/f/1", Count: &two}}}
			c := &Client{Retries: 5, Sleep: func(context.Context, time.Duration) error { return nil }}
			_, err := c.Download(t.Context(), m, t.TempDir())
			if tc.wantErr {
				if !errors.Is(err, ErrVerify) || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "same on a fresh download") {
					t.Errorf("err = %v, want a verification failure that is not transient", err)
				}
			} else if err != nil {
				t.Errorf("err = %v", err)
			}
			if n.Load() != tc.downloads {
				t.Errorf("%d downloads, want %d", n.Load(), tc.downloads)
			}
		})
	}
}

// TestDownloadWriteFailureIsLocal: a downloaded file that cannot be
// written (a full disk, a file size limit) is a local error that says so,
// not a transient one: downloading again cannot help. The test runs
// itself in a child process whose file size limit is 64 KiB.
func TestDownloadWriteFailureIsLocal(t *testing.T) {
	if os.Getenv("FHIRLAKE_TEST_FSIZE") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDownloadWriteFailureIsLocal$", "-test.v")
		cmd.Env = append(os.Environ(), "FHIRLAKE_TEST_FSIZE=1")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails instead of killing us
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 64 << 10, Max: 64 << 10}); err != nil {
		t.Skipf("cannot limit the file size: %v", err)
	}
	body := strings.Repeat(`{"resourceType":"Patient","id":"a"}`+"\n", 10000) // 360 kB
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	m := &Manifest{Output: []FileEntry{{Type: "Patient", URL: srv.URL + "/f/1"}}}
	c := &Client{Retries: 5, Sleep: func(context.Context, time.Duration) error { return nil }}
	dir := t.TempDir()
	_, err := c.Download(t.Context(), m, dir)
	if err == nil || errors.Is(err, ErrTransient) || !errors.Is(err, syscall.EFBIG) || !strings.Contains(err.Error(), "cannot be written") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want a local write error naming the folder", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d downloads, want 1", n.Load())
	}
}

func TestTokenNotSentAcrossRedirectOrWhenNotRequired(t *testing.T) {
	storage := &fakeServer{sawAuth: map[string]bool{}, files: map[string]string{"/signed/1": `{"resourceType":"Patient","id":"a"}` + "\n"}}
	store := httptest.NewServer(storage)
	defer store.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, store.URL+"/signed/1?sig=secret", http.StatusTemporaryRedirect)
	}))
	defer api.Close()

	for _, requires := range []bool{true, false} {
		t.Run(fmt.Sprintf("requiresAccessToken=%v", requires), func(t *testing.T) {
			clear(storage.sawAuth)
			m := &Manifest{RequiresAccessToken: requires, Output: []FileEntry{{Type: "Patient", URL: api.URL + "/file/1"}}}
			c := &Client{Tokens: StaticToken("t0k")}
			if _, err := c.Download(t.Context(), m, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			host := strings.TrimPrefix(store.URL, "http://")
			if got, ok := storage.sawAuth[host+"/signed/1"]; !ok || got {
				t.Errorf("storage host saw Authorization = %v (reached %v), want false", got, ok)
			}
		})
	}
}

func TestRedactDropsQueryAndUserinfo(t *testing.T) {
	got := redact("https://user:pw@store.example/f/1?X-Amz-Signature=abc")
	if got != "https://store.example/f/1" {
		t.Errorf("redact = %q", got)
	}
}

func TestCheckLines(t *testing.T) {
	tests := []struct {
		name              string
		body              string
		lines, bad, first int64
	}{
		{"clean", `{"resourceType":"Patient","id":"a"}` + "\n" + `{"resourceType":"Patient","id":"b"}` + "\n", 2, 0, 0},
		{"no final newline, blank lines", "\n" + `{"resourceType":"Patient"}` + "\n\n" + `{"resourceType":"Patient"}`, 2, 0, 0},
		{"wrong type on line 2", `{"resourceType":"Patient"}` + "\n" + `{"resourceType":"Coverage"}` + "\n", 2, 1, 2},
		{"truncated last line", `{"resourceType":"Patient"}` + "\n" + `{"resourceType":"Pat`, 2, 1, 2},
		{"not an object", "[1,2]\n", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc := checkLines(strings.NewReader(tt.body), "Patient")
			if lc.err != nil || lc.lines != tt.lines || lc.invalid != tt.bad || lc.firstInvalid != tt.first {
				t.Errorf("checkLines = %+v, want lines %d invalid %d first %d", lc, tt.lines, tt.bad, tt.first)
			}
		})
	}
}

func TestLimiterAdapts(t *testing.T) {
	l := newLimiter(4)
	ctx := t.Context()
	for range 4 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	l.release(true) // 429: limit 4 -> 2
	if l.limit != 2 {
		t.Fatalf("limit after 429 = %d, want 2", l.limit)
	}
	l.release(false)
	l.release(false)
	l.release(false)
	// Two successes at limit 2 raise it to 3.
	if l.limit != 3 {
		t.Errorf("limit after successes = %d, want 3", l.limit)
	}
	cctx, cancel := context.WithCancel(ctx)
	for range 3 {
		l.acquire(ctx)
	}
	cancel()
	if err := l.acquire(cctx); err == nil {
		t.Error("acquire on a full limiter with a cancelled context succeeded")
	}
}

func TestChecksumFromExtension(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		ext  map[string]any
		want string
	}{
		{nil, ""},
		{map[string]any{"https://example.org/sha256": sum}, sum},
		{map[string]any{"checksum": "sha256:" + strings.ToUpper(sum)}, sum},
		{map[string]any{"checksum": "md5:abc"}, ""},
	}
	for _, tt := range tests {
		if got := (FileEntry{Extension: tt.ext}).checksum(); got != tt.want {
			t.Errorf("checksum(%v) = %q, want %q", tt.ext, got, tt.want)
		}
	}
}

func TestTransientOutcomeIsRetried(t *testing.T) {
	polls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls++
		if polls == 1 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}`)
			return
		}
		fmt.Fprint(w, `{"transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[]}`)
	}))
	defer srv.Close()
	c := &Client{Sleep: func(context.Context, time.Duration) error { return nil }}
	if _, err := c.Poll(t.Context(), srv.URL); err != nil || polls != 2 {
		t.Errorf("poll: %v after %d polls; want success on the second", err, polls)
	}
	polls = 0
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls++
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad"}]}`)
	}))
	defer srv2.Close()
	if _, err := c.Poll(t.Context(), srv2.URL); !errors.Is(err, ErrProtocol) || polls != 1 {
		t.Errorf("poll on a permanent 400: %v after %d polls; want ErrProtocol at once", err, polls)
	}
}

func TestGzipBodyIsDecompressed(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`{"resourceType":"Patient","id":"a"}` + "\n" + `{"resourceType":"Patient","id":"b"}` + "\n"))
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/gzip") // no Content-Encoding: net/http will not decode it
		w.Write(buf.Bytes())
	}))
	defer srv.Close()
	two := int64(2)
	m := &Manifest{Output: []FileEntry{{Type: "Patient", URL: srv.URL + "/f.ndjson.gz", Count: &two}}}
	dir := t.TempDir()
	files, err := (&Client{}).Download(t.Context(), m, dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, files[0].Name))
	if files[0].Lines != 2 || !strings.HasPrefix(string(got), `{"resourceType":"Patient"`) {
		t.Errorf("file %+v holds %q", files[0], got)
	}
}

// TestStatusErrorsThatNeverFixThemselves: an export status answer whose
// OperationOutcome says the export cannot succeed is not retried, whatever
// its HTTP status, and shows the server's diagnostics; a status error
// without an OperationOutcome keeps the server's reason text.
func TestStatusErrorsThatNeverFixThemselves(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		reason string // a reason phrase of the server's own
		kind   error
		want   string
	}{
		{"too costly, as a 500", 500, "application/fhir+json", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-costly","diagnostics":"the group holds more than 10000 members"}]}`, "", ErrExportFailed, "the group holds more than 10000 members"},
		{"not supported", 400, "application/fhir+json", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-supported","diagnostics":"_typeFilter is not supported"}]}`, "", ErrExportFailed, "_typeFilter is not supported"},
		{"processing, as a 503", 503, "application/json", `{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"processing","diagnostics":"job failed: out of storage"}]}`, "", ErrExportFailed, "job failed: out of storage"},
		{"too long", 500, "application/fhir+json", `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-long","diagnostics":"export ran over 24 hours"}]}`, "", ErrExportFailed, "export ran over 24 hours"},
		{"413 with its own reason", 413, "text/html", "<html>nope</html>", "Too many files", ErrProtocol, "Too many files"},
		{"plain-text reason", 422, "text/plain; charset=utf-8", "export limited to 50 files per type\n", "", ErrProtocol, "export limited to 50 files per type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			polls := 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				polls++
				w.Header().Set("Content-Type", tc.ctype)
				if tc.reason != "" {
					// net/http writes the standard phrase: hijack to send our own.
					conn, buf, _ := w.(http.Hijacker).Hijack()
					fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", tc.status, tc.reason, tc.ctype, len(tc.body), tc.body)
					buf.Flush()
					conn.Close()
					return
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			srv.Start()
			defer srv.Close()
			c := &Client{Sleep: func(context.Context, time.Duration) error { return nil }}
			_, err := c.Poll(t.Context(), srv.URL)
			if !errors.Is(err, tc.kind) || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("poll: %v, want %v naming %q", err, tc.kind, tc.want)
			}
			if polls != 1 {
				t.Errorf("%d polls, want 1", polls)
			}
		})
	}
}

// TestMaxWaitIsWaitedOut: a Retry-After that reaches past --max-wait
// sleeps until the deadline and polls once more (the job may be done by
// then) instead of giving up at once; a job still running then fails as
// transient.
func TestMaxWaitIsWaitedOut(t *testing.T) {
	for _, doneAtLast := range []bool{true, false} {
		polls := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			polls++
			if polls == 2 && doneAtLast {
				fmt.Fprint(w, `{"transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[]}`)
				return
			}
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusAccepted)
		}))
		now := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
		var slept []time.Duration
		c := &Client{MaxWait: 10 * time.Minute, PollCeiling: 2 * time.Hour, Now: func() time.Time { return now },
			Sleep: func(_ context.Context, d time.Duration) error { slept = append(slept, d); now = now.Add(d); return nil }}
		_, err := c.Poll(t.Context(), srv.URL)
		srv.Close()
		if doneAtLast && err != nil || !doneAtLast && !errors.Is(err, ErrTransient) {
			t.Errorf("done at last %v: %v", doneAtLast, err)
		}
		if polls != 2 || len(slept) != 1 || slept[0] != 10*time.Minute {
			t.Errorf("done at last %v: %d polls after sleeping %v; want 2 polls, one sleep of 10m", doneAtLast, polls, slept)
		}
	}
}

// TestRateLimitPerHost: every request to a host waits for the client's
// rate limit, downloads and polls alike; another host has its own. The
// bound is checked from below only: a slow machine cannot make it fail.
func TestRateLimitPerHost(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fmt.Fprint(w, `{"resourceType":"Patient","id":"a"}`+"\n")
	}))
	defer srv.Close()
	var entries []FileEntry
	for range 6 {
		entries = append(entries, FileEntry{Type: "Patient", URL: srv.URL + "/f"})
	}
	c := &Client{RateLimit: 10, RateBurst: 1, Concurrency: 6}
	start := time.Now()
	if _, err := c.Download(t.Context(), &Manifest{Output: entries}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 450*time.Millisecond {
		t.Errorf("6 requests at 10 per second, one at a time, took %s: the limit was not applied", took)
	}
	// Unlimited (negative) and the default (generous) do not wait.
	for _, r := range []float64{-1, 0} {
		c := &Client{RateLimit: r, Concurrency: 6}
		if c.limiter("x") != nil && r < 0 {
			t.Errorf("rate %v: a limiter", r)
		}
		if l := c.limiter("x"); r == 0 && (l == nil || float64(l.Limit()) != DefaultRateLimit) {
			t.Errorf("rate 0: limiter %v, want the default", l)
		}
	}
	c = &Client{RateLimit: 5}
	a := c.limiter("a")
	if a == c.limiter("b") || a != c.limiter("a") {
		t.Error("limiters are not per host")
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUnknownHostIsAConfigurationError: a kick-off whose host does not
// resolve is tried once more, then fails as ErrUnknownHost (not
// transient: Airflow would retry it for ever), naming the host. A status
// poll that meets the same DNS answer later is retried as an outage.
func TestUnknownHostIsAConfigurationError(t *testing.T) {
	calls := 0
	dns := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		return nil, &net.DNSError{Err: "no such host", Name: r.URL.Hostname(), IsNotFound: true}
	})
	c := &Client{BaseURL: "https://payer.invalid/fhir", HTTP: &http.Client{Transport: dns}, Retries: 5,
		Sleep: func(context.Context, time.Duration) error { return nil }}
	_, err := c.Kickoff(t.Context(), Request{})
	if !errors.Is(err, ErrUnknownHost) || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), `host "payer.invalid" not found`) {
		t.Errorf("kick-off: %v, want ErrUnknownHost naming the host and not transient", err)
	}
	if calls != 2 {
		t.Errorf("kick-off tried %d times, want 2", calls)
	}
	// A fake clock that the stubbed sleeps move on, so that --max-wait
	// ends the polling.
	clock := time.Unix(0, 0)
	c.Now = func() time.Time { return clock }
	c.Sleep = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
	c.MaxWait = time.Hour
	calls = 0
	_, err = c.Poll(t.Context(), "https://payer.invalid/fhir/status/1")
	if !errors.Is(err, ErrTransient) || errors.Is(err, ErrUnknownHost) {
		t.Errorf("status: %v, want a transient failure", err)
	}
	if calls < 3 {
		t.Errorf("status tried %d times, want it retried as an outage", calls)
	}
	if host, ok := unknownHost(errors.New(`Post "https://t.invalid/token": dial tcp: lookup t.invalid on 10.0.0.53:53: no such host`)); !ok || host != "t.invalid" {
		t.Errorf("unknownHost of oauth2's text: %q %v", host, ok)
	}
}

// TestRefusedTypesSayWhatToChange: a kick-off refused with 400 names the
// type the server's answer names, and the flag to change; with no type
// named, it lists the types asked for.
func TestRefusedTypesSayWhatToChange(t *testing.T) {
	for _, tc := range []struct{ diagnostics, want string }{
		{"Resource type Claim is not supported for export", "the server names Claim, which it may not export: remove it from --types (types in the config)"},
		{"Bad request", "if the server does not export one of the types asked for (Patient,Claim), remove it from --types"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":%q}]}`, tc.diagnostics)
		}))
		c := &Client{BaseURL: srv.URL + "/fhir", Sleep: func(context.Context, time.Duration) error { return nil }}
		_, err := c.Kickoff(t.Context(), Request{Types: []string{"Patient", "Claim"}})
		srv.Close()
		var se *StatusError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &se) || se.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want a 400 StatusError saying %q", tc.diagnostics, err, tc.want)
		}
	}
}
