package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// Client drives Bulk Data exports against one FHIR server. Configure it by
// setting fields before the first call; zero values get the defaults listed
// on each field. A Client is safe for concurrent use once configured.
type Client struct {
	// BaseURL is the FHIR base, e.g. https://payer.example/v1/bison/bulk-data/r4.
	BaseURL string
	// HTTP carries every request; nil means a client with sane timeouts.
	HTTP *http.Client
	// Tokens supplies bearer tokens; nil means the server needs none.
	Tokens TokenSource
	// PollFloor and PollCeiling clamp the server's Retry-After (defaults 1s
	// and 5m); PollDefault is used when the server sends none (default 5s).
	PollFloor, PollCeiling, PollDefault time.Duration
	// MaxWait bounds the whole wait for an export (default 24h).
	MaxWait time.Duration
	// Concurrency is the number of parallel downloads (default 4).
	Concurrency int
	// RateLimit bounds the requests per second to each host, for every
	// request of the client together (kick-off, polls, manifest pages,
	// downloads, deletes): some servers cap a client's requests (CMS BCDA
	// allows 3,000 per 5 minutes per address). 0 means DefaultRateLimit;
	// a negative value means none. RateBurst is how many requests may go
	// at once before the rate applies (default: the rate, at least 1).
	RateLimit float64
	RateBurst int
	// Retries is how many times a transient failure of one request is
	// retried (default 5).
	Retries int
	// MaxFileSize bounds one downloaded file, in bytes once decompressed
	// (default DefaultMaxFileSize, 64 GiB). A larger file stops its
	// download at the limit and fails the export with ErrTooLarge.
	MaxFileSize int64
	// MaxDecompressionRatio bounds how many times a gzip-compressed file
	// (Content-Encoding or the file itself) may expand: bytes after
	// decompression per byte on the wire (default
	// DefaultMaxDecompressionRatio, 200). A body that expands more, once
	// past its first MiB, stops at once and fails with ErrTooLarge.
	MaxDecompressionRatio float64
	// GroupReadable makes the directories and files the client creates
	// readable by their group (0750 and 0640) instead of by their owner
	// only (0700 and 0600), whatever the umask. They hold PHI.
	GroupReadable bool
	// Log receives progress lines; nil discards them. Lines carry job and
	// file names and counts, never tokens or resource content. A logger in
	// the context of a call (WithLogger) takes precedence, so that a run can
	// add its run id and source to every line.
	Log *slog.Logger
	// Sleep waits for d or until ctx is done; nil means a real timer. Tests
	// replace it so that they never sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the client's clock; nil means time.Now.
	Now func() time.Time

	httpOnce sync.Once
	hc       *http.Client

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter // by host
}

// DefaultRateLimit is the requests per second to one host when
// Client.RateLimit is 0: generous, a bound against a runaway loop more
// than a courtesy.
const DefaultRateLimit = 100

// limiter is the rate limiter of host, nil for none.
func (c *Client) limiter(host string) *rate.Limiter {
	r := c.RateLimit
	if r == 0 {
		r = DefaultRateLimit
	}
	if r < 0 {
		return nil
	}
	c.limMu.Lock()
	defer c.limMu.Unlock()
	if c.limiters == nil {
		c.limiters = map[string]*rate.Limiter{}
	}
	l := c.limiters[host]
	if l == nil {
		burst := c.RateBurst
		if burst <= 0 {
			burst = max(1, int(math.Ceil(r)))
		}
		l = rate.NewLimiter(rate.Limit(r), burst)
		c.limiters[host] = l
	}
	return l
}

// httpClient returns the configured client wrapped so that a redirect to
// another origin never carries the bearer token.
func (c *Client) httpClient() *http.Client {
	c.httpOnce.Do(func() {
		base := c.HTTP
		if base == nil {
			base = &http.Client{}
		}
		hc := *base
		hc.CheckRedirect = stripAuthOnRedirect(base.CheckRedirect)
		c.hc = &hc
	})
	return c.hc
}

// stripAuthOnRedirect removes the Authorization header when a redirect
// leaves the origin (scheme, host and port) of the first request. net/http
// already drops it for another host name, but keeps it for another port of
// the same host; pre-signed storage URLs must see no token at all.
func stripAuthOnRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return fmt.Errorf("stopped after 10 redirects: %w", ErrProtocol)
		}
		first := via[0].URL
		if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// fileMode is the mode of the files the client writes.
func (c *Client) fileMode() os.FileMode {
	if c.GroupReadable {
		return 0o640
	}
	return 0o600
}

// dirMode is the mode of the directories the client creates.
func (c *Client) dirMode() os.FileMode {
	if c.GroupReadable {
		return 0o750
	}
	return 0o700
}

// mkdirAll creates dir and any missing parents with dirMode, whatever the
// umask. Directories that exist already keep their mode: dir may be a
// folder of the user's.
func (c *Client) mkdirAll(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, c.dirMode()); err != nil {
		return err
	}
	for _, d := range missing {
		if err := os.Chmod(d, c.dirMode()); err != nil {
			return err
		}
	}
	return nil
}

// writeFile atomically replaces path with data, with fileMode.
func (c *Client) writeFile(path string, data []byte) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := f.Chmod(c.fileMode()); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// send performs one request. When auth is true it attaches a bearer token
// to this request only: the header is set on the request, not by a
// transport, so net/http drops it on a redirect to another host and a
// pre-signed storage URL never sees it. A 401 invalidates the cached token
// and retries once with a fresh one.
func (c *Client) send(ctx context.Context, method, rawURL string, header http.Header, body []byte, auth bool) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if auth && c.Tokens != nil {
			tok, err := c.Tokens.Token(ctx)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if lim := c.limiter(req.URL.Host); lim != nil {
			if err := lim.Wait(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, fmt.Errorf("%s %s: wait for the request rate limit: %w", method, redact(rawURL), err)
			}
		}
		resp, err := c.httpClient().Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s %s: %w: %w", method, redact(rawURL), ErrTransient, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && auth && attempt == 0 {
			if inv, ok := c.Tokens.(Invalidator); ok {
				drain(resp)
				inv.Invalidate()
				continue
			}
		}
		return resp, nil
	}
}

// retrying calls fn until it succeeds, fails with a non-transient error, or
// the retry budget is spent. Waits grow exponentially with jitter, or follow
// the server's Retry-After when fn reports one.
func (c *Client) retrying(ctx context.Context, op string, fn func() (retryAfter time.Duration, err error)) error {
	retries := orDefault(c.Retries, 5)
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		ra, err := fn()
		if err == nil || !errors.Is(err, ErrTransient) || attempt >= retries {
			return err
		}
		if host, ok := unknownHost(err); ok && attempt >= 1 && firstContact[op] {
			// The name did not resolve twice in a row before the server
			// was ever reached: a wrong URL, not an outage.
			return fmt.Errorf("%s: host %q not found (DNS): check the URL (--fhir-url, --token-url, or the config): %w", op, host, ErrUnknownHost)
		}
		wait := backoff + rand.N(backoff/2+1)
		if ra > 0 {
			wait = c.clampPoll(ra)
		}
		c.log(ctx).Warn("retrying after transient failure", "op", op, "attempt", attempt+1, "wait", wait.String(), "error", err.Error())
		notifyRetry(ctx, op, err, wait)
		if err := c.sleep(ctx, wait); err != nil {
			return err
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// firstContact are the operations that reach a server for the first
// time in a run; a DNS failure there is a configuration matter after one
// retry (ErrUnknownHost). Later, a name that stops resolving is an outage
// and is retried like one.
var firstContact = map[string]bool{"kick-off": true, "member-match": true, "bulk-member-match": true}

// unknownHost reports whether err is a DNS answer that the host does not
// exist, and the host. (oauth2 flattens its transport errors to text.)
func unknownHost(err error) (string, bool) {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return dns.Name, true
	}
	msg := err.Error()
	if i := strings.Index(msg, ": no such host"); i >= 0 {
		host := msg[:i]
		if j := strings.LastIndex(host, "lookup "); j >= 0 {
			host, _, _ = strings.Cut(host[j+len("lookup "):], " ")
			return host, true
		}
		return "", true
	}
	return "", false
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// redact strips the query string from a URL before it goes into a log line
// or an error: pre-signed storage URLs carry credentials there.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	u.RawQuery = ""
	u.User = nil
	return u.String()
}

// statusError reads an error response into a StatusError.
func statusError(op string, resp *http.Response, kind error) error {
	defer drain(resp)
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if kind == nil {
		kind = classify(resp.StatusCode)
	}
	switch {
	case kind == ErrUnauthorized:
	case transientOutcome(body):
		// Whatever the status, the server says "try again".
		kind = ErrTransient
	case fatalOutcome(body):
		// Whatever the status, the server says this export cannot
		// succeed: asking again gets the same answer.
		kind = ErrExportFailed
	}
	if kind == nil {
		kind = ErrProtocol
	}
	summary := outcomeSummary(body)
	if summary == "" && op != "download" {
		// A file's error body may come from storage that has nothing to
		// do with FHIR: only the Bulk Data endpoints' text is kept.
		summary = reasonText(resp, body)
	}
	return &StatusError{Op: op, Status: resp.StatusCode, Summary: summary, kind: kind}
}

// fatalOutcome reports whether body is an OperationOutcome with an issue
// that says the request cannot succeed as it stands: the server cannot
// process it, does not support it, or finds it too costly or too long.
func fatalOutcome(body []byte) bool {
	var oo operationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return false
	}
	for _, is := range oo.Issue {
		switch is.Code {
		case "processing", "not-supported", "too-costly", "too-long":
			return true
		}
	}
	return false
}

// reasonText is what a server says about an error outside an
// OperationOutcome: its own reason phrase when it is not the standard one
// ("413 Too many files"), else a plain-text body, cleaned and cut; "" for
// anything else (HTML pages, JSON of other shapes).
func reasonText(resp *http.Response, body []byte) string {
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	if reason != "" && !strings.EqualFold(reason, http.StatusText(resp.StatusCode)) {
		return clean(reason, maxSummary)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") {
		return clean(strings.TrimSpace(string(body)), maxSummary)
	}
	return ""
}

// operationOutcome is the part of a FHIR OperationOutcome we read.
type operationOutcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string `json:"severity"`
		Code        string `json:"code"`
		Diagnostics string `json:"diagnostics"`
		Details     struct {
			Text string `json:"text"`
		} `json:"details"`
	} `json:"issue"`
}

// maxSummary is the most bytes of server text outcomeSummary keeps, before
// its "..." mark.
const maxSummary = 300

// outcomeSummary returns the diagnostics of an OperationOutcome body, made
// safe for an error message or a log line by clean and cut to maxSummary
// bytes, or "" when the body is not one.
func outcomeSummary(body []byte) string {
	var oo operationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	return oo.summary()
}

// summary is outcomeSummary of a decoded OperationOutcome.
func (oo *operationOutcome) summary() string {
	var sb strings.Builder
	for i, is := range oo.Issue {
		if sb.Len() > maxSummary {
			break // clean cuts it anyway; a server may send many issues
		}
		text := is.Diagnostics
		if text == "" {
			text = is.Details.Text
		}
		if text == "" {
			text = is.Code
		}
		if i > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(is.Severity)
		sb.WriteString(": ")
		sb.WriteString(text)
	}
	return clean(sb.String(), maxSummary)
}

// clean makes server text fit for an error message, a log line or a
// terminal: every rune that is not printable (control characters such as
// newlines and escapes, format characters such as bidirectional overrides,
// space other than U+0020) becomes a space, invalid UTF-8 becomes U+FFFD,
// and text longer than max bytes is cut at a rune boundary and marked
// with "...".
func clean(s string, max int) string {
	var sb strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) {
			r = ' '
		}
		if sb.Len()+utf8.RuneLen(r) > max {
			sb.WriteString("...")
			break
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// transientOutcome reports whether an OperationOutcome body says the
// failure is temporary (issue codes transient, throttled, timeout,
// lock-error), as some servers do on 4xx and 5xx answers alike.
func transientOutcome(body []byte) bool {
	var oo operationOutcome
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return false
	}
	for _, is := range oo.Issue {
		switch is.Code {
		case "transient", "throttled", "timeout", "lock-error":
			return true
		}
	}
	return false
}

// trackJobRE finds the status URL in 1upHealth's kick-off answer, an
// OperationOutcome whose text reads "... Track job at <url>".
var trackJobRE = regexp.MustCompile(`(?i)track job at\s+(\S+)`)

// statusLocation finds the status URL of an accepted kick-off: the
// Content-Location header, or else the "Track job at" text of the body.
// Relative URLs are resolved against the kick-off URL. Anything but an
// absolute http or https URL with a host is an ErrProtocol error: polling
// it could only fail, and the failure would look like a network error
// worth retrying.
func statusLocation(resp *http.Response, kickoff string) (string, error) {
	loc := resp.Header.Get("Content-Location")
	if loc == "" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var oo operationOutcome
		if json.Unmarshal(body, &oo) == nil {
			for _, is := range oo.Issue {
				for _, text := range []string{is.Diagnostics, is.Details.Text} {
					if m := trackJobRE.FindStringSubmatch(text); m != nil {
						loc = strings.TrimRight(m[1], ".,;\"'")
					}
				}
			}
		}
	}
	if loc == "" {
		return "", fmt.Errorf("kick-off accepted without Content-Location or a job URL in the body: %w", ErrProtocol)
	}
	base, err := url.Parse(kickoff)
	if err != nil {
		return "", fmt.Errorf("parse kick-off URL: %w", err)
	}
	ref, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("status URL: %w: %w", ErrProtocol, urlError(err))
	}
	status := base.ResolveReference(ref).String()
	if err := checkHTTPURL(status); err != nil {
		return "", fmt.Errorf("status URL: %w", err)
	}
	return status, nil
}

// checkHTTPURL checks that raw, a URL from the server we are about to
// request, is an absolute http or https URL with a host. The error wraps
// ErrProtocol (never ErrTransient: the server sends the same URL again)
// and names only the URL's scheme and host: its path and query may carry
// ids or credentials.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, urlError(err))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		what := "a relative URL"
		switch {
		case u.Scheme != "" && u.Host != "":
			what = "a " + clean(u.Scheme, 20) + ": URL on host " + clean(u.Host, 100)
		case u.Scheme != "":
			what = "a " + clean(u.Scheme, 20) + ": URL"
		}
		return fmt.Errorf("%s, which fhirlake cannot fetch (it fetches absolute http and https URLs): %w", what, ErrProtocol)
	}
	return nil
}

// urlError drops the URL that url.Parse puts in its error: it may carry a
// pre-signed query string or be as long as a header.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// maxRetryAfter caps a server's Retry-After, whatever it says: a number of
// seconds or a date beyond it waits this long (about 11.6 days), which the
// poll ceiling and --max-wait cut further.
const maxRetryAfter = 1e6 * time.Second

// retryAfter parses a Retry-After header, as delta-seconds (RFC 9110:
// ASCII digits only; leniently also with a decimal fraction such as "1.5")
// or an HTTP-date relative to now. The result is capped at maxRetryAfter.
// It returns 0 when the header is absent or unusable: signs, exponents,
// hex, NaN, Inf, dates in the past, anything else.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if d, ok := deltaSeconds(v); ok {
		return d
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 { // Sub saturates, so d cannot wrap
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// deltaSeconds parses digits with an optional fraction ("120", "1.5") into
// a duration capped at maxRetryAfter; ok is false for anything else.
func deltaSeconds(v string) (d time.Duration, ok bool) {
	whole, frac, hasFrac := strings.Cut(v, ".")
	if whole == "" || (hasFrac && frac == "") {
		return 0, false
	}
	var secs int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		secs = min(secs*10+int64(c-'0'), int64(maxRetryAfter/time.Second)+1)
	}
	var nanos int64
	scale := int64(time.Second)
	for i := 0; i < len(frac); i++ {
		c := frac[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if scale /= 10; scale > 0 {
			nanos += int64(c-'0') * scale
		}
	}
	return min(time.Duration(secs)*time.Second+time.Duration(nanos), maxRetryAfter), true
}

// clampPoll bounds a server-suggested wait to [PollFloor, PollCeiling] and
// adds up to 10% jitter so that many clients do not poll in lockstep.
func (c *Client) clampPoll(d time.Duration) time.Duration {
	floor := orDefault(c.PollFloor, time.Second)
	ceiling := orDefault(c.PollCeiling, 5*time.Minute)
	if d <= 0 {
		d = orDefault(c.PollDefault, 5*time.Second)
	}
	d = max(floor, min(d, ceiling))
	return d + rand.N(d/10+1)
}

// Poll waits for the export at statusURL to finish and returns its
// manifest. It honours Retry-After, retries transient failures, and gives
// up after MaxWait.
func (c *Client) Poll(ctx context.Context, statusURL string) (*Manifest, error) {
	return c.poll(ctx, statusURL, nil)
}

// poll is Poll; onPartial, when set, receives the manifest (all its
// pages) of every 202 answer that carries one (allowPartialManifests):
// the files available so far, which it may download while the export
// goes on.
func (c *Client) poll(ctx context.Context, statusURL string, onPartial func(*Manifest) error) (*Manifest, error) {
	deadline := c.now().Add(orDefault(c.MaxWait, 24*time.Hour))
	h := http.Header{"Accept": {"application/json"}}
	transient := 0
	for {
		resp, err := c.send(ctx, http.MethodGet, statusURL, h, nil, true)
		var wait time.Duration
		var retryErr error // why this poll is a retry, if it is
		switch {
		case err != nil && !errors.Is(err, ErrTransient):
			return nil, fmt.Errorf("poll export status: %w", err)
		case err != nil:
			transient++
			wait = backoffFor(transient)
			c.log(ctx).Warn("export status unreachable, will retry", "job", redact(statusURL), "error", err.Error())
			retryErr = err
		case resp.StatusCode == http.StatusAccepted:
			transient = 0
			wait = retryAfter(resp.Header.Get("Retry-After"), c.now())
			c.log(ctx).Info("export in progress", "job", redact(statusURL), "progress", resp.Header.Get("X-Progress"))
			progressFrom(ctx).Waiting(resp.Header.Get("X-Progress"))
			if onPartial == nil {
				drain(resp)
				break
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
			resp.Body.Close()
			if err != nil {
				break // the next poll asks again
			}
			// A 202 body is a partial manifest or nothing of ours (an
			// OperationOutcome, a progress note): only a manifest counts.
			m, err := parseManifest(body)
			if err != nil || len(m.Output) == 0 {
				break
			}
			if m, err = c.followPages(ctx, m); err != nil {
				return nil, err
			}
			c.log(ctx).Info("downloading the files the export has made so far", "job", redact(statusURL), "files", len(m.Output))
			if err := onPartial(m); err != nil {
				return nil, err
			}
		case resp.StatusCode == http.StatusOK:
			body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
			resp.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("read manifest: %w: %w", ErrTransient, err)
			}
			m, done, err := completion(body)
			if err != nil {
				return nil, err
			}
			if done {
				return m, nil
			}
			progressFrom(ctx).Waiting(resp.Header.Get("X-Progress"))
			wait = retryAfter(resp.Header.Get("Retry-After"), c.now())
		default:
			serr := statusError("export status", resp, nil)
			if !errors.Is(serr, ErrTransient) {
				return nil, serr
			}
			transient++
			wait = max(retryAfter(resp.Header.Get("Retry-After"), c.now()), backoffFor(transient))
			c.log(ctx).Warn("export status failed, will retry", "job", redact(statusURL), "error", serr.Error())
			retryErr = serr
		}
		wait = c.clampPoll(wait)
		if now := c.now(); now.Add(wait).After(deadline) {
			// --max-wait is a deadline: wait it out and ask once more, in
			// case the job is done by then, rather than give up early.
			if !now.Before(deadline) {
				return nil, fmt.Errorf("export not complete after %s (--max-wait): %w", orDefault(c.MaxWait, 24*time.Hour), ErrTransient)
			}
			wait = deadline.Sub(now)
		}
		if retryErr != nil {
			notifyRetry(ctx, "export status", retryErr, wait)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func backoffFor(n int) time.Duration {
	return min(time.Duration(1<<min(n, 8))*time.Second, 5*time.Minute)
}

// completion interprets a 200 from the status URL. Standard servers send
// the manifest; 1upHealth adds a status field and may answer 200 while the
// job is still running or after it failed.
func completion(body []byte) (*Manifest, bool, error) {
	var probe struct {
		Status          string `json:"status"`
		TransactionTime string `json:"transactionTime"`
		ResourceType    string `json:"resourceType"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, false, fmt.Errorf("decode export status: %w: %w", ErrProtocol, err)
	}
	if probe.ResourceType == "OperationOutcome" {
		return nil, false, fmt.Errorf("export status: %s: %w", outcomeSummary(body), ErrExportFailed)
	}
	switch strings.ToLower(probe.Status) {
	case "failed", "error", "cancelled", "canceled":
		return nil, false, fmt.Errorf("export status %q: %w", probe.Status, ErrExportFailed)
	case "", "successful", "completed", "complete", "succeeded":
	default:
		if probe.TransactionTime == "" {
			return nil, false, nil // still running, 1up style
		}
	}
	m, err := parseManifest(body)
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// Cancel asks the server to stop the export or delete its files (DELETE on
// the status URL). A 404 counts as done.
func (c *Client) Cancel(ctx context.Context, statusURL string) error {
	resp, err := c.send(ctx, http.MethodDelete, statusURL, http.Header{"Accept": {"application/fhir+json"}}, nil, true)
	if err != nil {
		return fmt.Errorf("delete export job: %w", err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotFound {
		drain(resp)
		return nil
	}
	return statusError("delete export job", resp, nil)
}
