package extract

// Fuzz targets for every parser of what a server or a user hands this
// package: the export status and manifest, Retry-After, the kick-off's
// status URL, OperationOutcomes, $member-match answers, the roster CSV and
// the deleted[] and error[] files. `go test` runs every seed; run one
// target for longer with
//
//	go test -tags duckdb_arrow ./extract/ -run '^$' -fuzz '^FuzzCompletion$' -fuzztime 60s -parallel 1
//
// Besides "no panic", each checks what its callers rely on, and that
// decoding allocates no more than a bound proportional to the input
// (fuzzcheck.Bounded). The per-byte factors leave room, 1.7 times or more,
// above what the worst shapes we know (worstShapes, checked at 512 KiB by
// TestAllocationBounds) cost:
//
//   - jsonPerByte, encoding/json into structs: a slice grows by about 1.25x
//     per step (reflect.Value.Grow), so an array of n elements allocates
//     about 5 times the final slice; the smallest element "{}," is 3 bytes
//     of input for a 64-byte struct (an OperationOutcome issue, a
//     $member-match parameter): about 105 bytes per input byte. A
//     one-entry map[string]any in a manifest extension costs about 65.
//   - scanPerByte, NDJSON lines (checkLines, ReadDeleted,
//     summarizeErrors), read with jsonScanner, which builds no tree: the
//     line buffer, which doubles up to the longest line (about 4 bytes per
//     input byte), plus what is returned: a tombstone per deleted[] entry
//     (about 7.5 per byte for entries of "A/b"). This used to be
//     github.com/valyala/fastjson, which keeps an 80-byte Value per JSON
//     value: about 235 bytes per byte for "[0,0,...", some 60 GB for one
//     line of maxLine.
//   - csvPerByte, encoding/csv: per field a string header and the reader's
//     field index and position, 40 bytes, for a 1-byte field (","), in
//     slices grown by append: about 150 bytes per input byte for a header
//     of empty columns.
//
// These are linear; scanPerByte must stay small: an output, deleted[] or
// error[] line may be up to maxLine (256 MiB) long.

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/internal/fuzzcheck"
)

// Allocation bounds per input byte; see the file comment.
const (
	jsonPerByte = 256
	scanPerByte = 16
	csvPerByte  = 256
)

// checkText fails unless s is fit for an error message or a log line:
// valid UTF-8 without control characters (no newline to forge a log line,
// no escape to drive a terminal).
func checkText(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", what, s)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		t.Fatalf("%s holds a control character at byte %d: %q", what, i, s)
	}
}

// checkHTTPURLText fails unless s is an absolute http or https URL with a
// host, checked independently of checkHTTPURL.
func checkHTTPURLText(t *testing.T, what, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("%s %q does not parse: %v", what, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || !u.IsAbs() {
		t.Fatalf("%s %q is not an absolute http or https URL with a host", what, s)
	}
}

// checkProtocolError fails unless err is a protocol error or a failed
// export, and never a transient one: a malformed body fails the same way
// on every retry.
func checkProtocolError(t *testing.T, what string, err error) {
	t.Helper()
	if errors.Is(err, ErrTransient) {
		t.Fatalf("%s: %v is ErrTransient: a malformed answer would be retried", what, err)
	}
	if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrExportFailed) {
		t.Fatalf("%s: %v is neither ErrProtocol nor ErrExportFailed", what, err)
	}
	checkText(t, what+" error", err.Error())
}

// worstShapes are, for each decoder, the inputs of n repeated elements
// that cost it the most allocation per input byte that we know of. Small
// ones seed the fuzz targets; TestAllocationBounds runs large ones, which
// is where the per-byte factors show.
var worstShapes = []struct {
	name, target string
	input        func(n int) string
}{
	{"manifest of empty entries", "completion", func(n int) string {
		return `{"transactionTime":"2026-01-05T00:00:00Z","output":[` + strings.Repeat(`{},`, n) + `{}]}`
	}},
	{"extension of one-entry maps", "completion", func(n int) string {
		return `{"transactionTime":"2026-01-05T00:00:00Z","output":[{"type":"P","url":"https://x.example/f","extension":{"a":[` +
			strings.Repeat(`{"":0},`, n) + `{}]}}]}`
	}},
	{"nested extension", "completion", func(n int) string {
		n = min(n, 9000) // encoding/json stops at 10000 levels
		return `{"transactionTime":"2026-01-05T00:00:00Z","output":[{"type":"P","url":"https://x.example/f","extension":` +
			strings.Repeat(`{"a":`, n) + `0` + strings.Repeat(`}`, n) + `}]}`
	}},
	{"empty links", "completion", func(n int) string {
		return `{"transactionTime":"2026-01-05T00:00:00Z","link":[` + strings.Repeat(`{},`, n) + `{}]}`
	}},
	{"empty issues", "outcome", func(n int) string {
		return `{"resourceType":"OperationOutcome","issue":[` + strings.Repeat(`{},`, n) + `{}]}`
	}},
	{"long diagnostics", "outcome", func(n int) string {
		return `{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"` + strings.Repeat("é\\n", n) + `"}]}`
	}},
	{"empty parameters", "match", func(n int) string {
		return `{"resourceType":"Parameters","parameter":[` + strings.Repeat(`{},`, n) + `{}]}`
	}},
	{"empty parameter values", "match", func(n int) string {
		return `{"parameter":[` + strings.Repeat(`{"valueReference":{},"valueIdentifier":{}},`, n) + `{}]}`
	}},
	{"bundle of numbers", "deleted", func(n int) string {
		return `{"resourceType":"Bundle","x":[` + strings.Repeat(`0,`, n) + `0]}`
	}},
	{"bundle of empty arrays", "deleted", func(n int) string {
		return `{"resourceType":"Bundle","x":[` + strings.Repeat(`[],`, n) + `0]}`
	}},
	{"bundle of deletes", "deleted", func(n int) string {
		return `{"resourceType":"Bundle","entry":[` + strings.Repeat(`{"request":{"method":"DELETE","url":"A/b"}},`, n) + `{"request":{"method":"DELETE","url":"A/b"}}]}`
	}},
	{"nested bundle", "deleted", func(n int) string {
		return `{"resourceType":"Bundle","entry":` + strings.Repeat(`[`, n) + strings.Repeat(`]`, n) + `}`
	}},
	{"issue of numbers", "errors", func(n int) string { return `{"issue":[` + strings.Repeat(`0,`, n) + `0]}` }},
	{"issues with escapes", "errors", func(n int) string {
		return `{"issue":[` + strings.Repeat(`{"s\u0065verity":"error","diagnostics":"\n"},`, n) + `{}]}`
	}},
	{"issues with a location", "errors", func(n int) string {
		return `{"issue":[` + strings.Repeat(`{"severity":"error","location":[""]},`, n) + `{}]}`
	}},
	{"lines that fail to parse", "errors", func(n int) string { return strings.Repeat("{\n", n) }},
	{"resource of numbers", "lines", func(n int) string {
		return `{"resourceType":"Patient","x":[` + strings.Repeat(`0,`, n) + `0]}`
	}},
	{"line of numbers", "lines", func(n int) string { return `[` + strings.Repeat(`0,`, n) + `0]` }},
	{"nesting that never closes", "lines", func(n int) string { return strings.Repeat(`[`, n) }},
	{"nesting within the limit", "lines", func(n int) string {
		n = min(n, maxDepth-1)
		return `{"resourceType":"Patient","x":` + strings.Repeat(`{"a":`, n) + `0` + strings.Repeat(`}`, n) + `}`
	}},
	{"escaped keys", "lines", func(n int) string {
		return `{` + strings.Repeat(`"\u0061":0,`, n) + `"resourceType":"Patient"}`
	}},
	{"lines of one brace", "lines", func(n int) string { return strings.Repeat("{\n", n) }},
	{"wide header", "roster", func(n int) string {
		return strings.Repeat("x,", n) + "given,family,birth_date,member_id,consent_start,consent_end\n"
	}},
	{"header of empty columns", "roster", func(n int) string {
		return strings.Repeat(",", n) + "given,family,birth_date,member_id,consent_start,consent_end\n"
	}},
	{"rows of empty cells", "roster", func(n int) string {
		cols := strings.Repeat(",", n)
		return cols + "given,family,birth_date,member_id,consent_start,consent_end\n" + strings.Repeat(cols+"a,b,1970-01-01,d,2026-01-01,2026-01-01\n", 8)
	}},
	{"distinct header columns", "roster", func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(strconv.FormatInt(int64(i), 36) + ",")
		}
		return b.String() + "given,family,birth_date,member_id,consent_start,consent_end\n"
	}},
	{"many rows", "roster", func(n int) string {
		return "given,family,birth_date,member_id,consent_start,consent_end\n" + strings.Repeat("a,b,1970-01-01,d,2026-01-01,2026-01-01\n", n)
	}},
}

// seedReps is the size of the worst shapes among the seeds: enough to show
// the shape, small enough for the fuzzer to minimize what it derives.
const seedReps = 8

// addShapes seeds f with the small worst shapes of target.
func addShapes(f *testing.F, target string) {
	for _, sh := range worstShapes {
		if sh.target == target {
			f.Add([]byte(sh.input(seedReps)))
		}
	}
}

// decodeBounded runs the decoders of target on in, each within its
// allocation bound.
func decodeBounded(t *testing.T, target string, in []byte) {
	t.Helper()
	n := len(in)
	switch target {
	case "completion":
		fuzzcheck.Bounded(t, "completion", n, jsonPerByte, func() { completion(in) })
		fuzzcheck.Bounded(t, "nextLink", n, jsonPerByte, func() { nextLink(in) })
	case "outcome":
		fuzzcheck.Bounded(t, "outcomeSummary", n, jsonPerByte, func() { outcomeSummary(in) })
		fuzzcheck.Bounded(t, "transientOutcome", n, jsonPerByte, func() { transientOutcome(in) })
		fuzzcheck.Bounded(t, "parseNoMatch", n, jsonPerByte, func() { parseNoMatch(in) })
	case "match":
		fuzzcheck.Bounded(t, "parseMatch", n, jsonPerByte, func() { parseMatch(in) })
	case "deleted", "errors":
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.ndjson"), in, 0o644); err != nil {
			t.Fatal(err)
		}
		fuzzcheck.Bounded(t, "ReadDeleted", n, scanPerByte, func() { ReadDeleted(filepath.Join(dir, "f.ndjson")) })
		fuzzcheck.Bounded(t, "summarizeErrors", n, scanPerByte, func() { summarizeErrors(dir, []File{{Kind: KindError, Name: "f.ndjson"}}) })
		fuzzcheck.Bounded(t, "checkLines", n, scanPerByte, func() { checkLines(bytes.NewReader(in), "Bundle") })
	case "lines":
		fuzzcheck.Bounded(t, "checkLines", n, scanPerByte, func() { checkLines(bytes.NewReader(in), "Patient") })
	case "roster":
		fuzzcheck.Bounded(t, "ReadRoster", n, csvPerByte, func() { ReadRoster(bytes.NewReader(in)) })
	default:
		t.Fatalf("no decoder for %q", target)
	}
}

// TestAllocationBounds runs the worst shapes at about 512 KiB, where the
// per-byte factor, not fuzzcheck.Slack, decides.
func TestAllocationBounds(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MiB")
	}
	for _, sh := range worstShapes {
		t.Run(sh.name, func(t *testing.T) {
			one := len(sh.input(1))
			in := []byte(sh.input((512 << 10) / max(1, len(sh.input(2))-one)))
			decodeBounded(t, sh.target, in)
		})
	}
}

func FuzzCompletion(f *testing.F) {
	const tt = `"transactionTime":"2026-01-05T00:00:00Z"`
	pre := `{` + tt + `,"output":[{"type":"Patient","url":"https://x.example/f","extension":`
	for _, s := range []string{
		`{` + tt + `,"requiresAccessToken":true,"output":[{"type":"Patient","url":"http://x/1","count":2}],"error":[]}`,
		`{"status":"Successful","transactionTime":"2026-01-05T00:00:00.000+00:00","output":[{"type":"Coverage","url":"http://x/2"}],"error":[],"batches":1,"resourceCount":3}`,
		`{"status":"In Progress"}`,
		`{"status":"Failed","transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[],"message":"export job 1 failed"}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"boom"}]}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy\u001b[2J"}]}`,
		`{"output":[]}`,
		`<html>`,
		``,
		`null`,
		`{` + tt + `,"output":[],"error":[{"type":"OperationOutcome","url":"https://x.example/e","count":2}],` +
			`"deleted":[{"type":"Bundle","url":"https://x.example/d"}],"link":[{"relation":"next","url":"https://x.example/status?page=2"}]}`,
		`{` + tt + `,"output":[],"link":[{"relation":"self","url":"https://x.example/status"},{"relation":"next","url":"/status?page=2"}]}`,
		`{` + tt + `,"output":[],"link":[{"relation":"next","url":"ftp://x.example/status"}]}`,
		`{` + tt + `,"output":[],"link":{"relation":"next"}}`,
		`{` + tt + `,"output":[{"type":"Patient","url":"file:///etc/passwd"}]}`,
		`{` + tt + `,"output":[],"error":[{"type":"OperationOutcome"}]}`,
		`{` + tt + `,"output":[],"deleted":[{"url":"https://x.example/d"}]}`,
		`{"transactionTime":"0001-01-01T00:00:00Z","output":[]}`,
		`{"transactionTime":"2026-01-05T00:00:00","output":[]}`,
		`{"transactionTime":"2026-01-05T00:00:00+0100","output":[]}`,
		`{"transactionTime":"2026-13-05T00:00:00Z","output":[]}`,
		`{"status":"running","transactionTime":"2026-01-05T00:00:00Z","output":[]}`,
		pre + `{"https://example.org/sha256":"sha256:` + strings.Repeat("ab", 32) + `"}}]}`,
		`{"transactionTime":1,"resourceCount":99999999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	addShapes(f, "completion")
	f.Fuzz(func(t *testing.T, body []byte) {
		var (
			m    *Manifest
			done bool
			err  error
		)
		fuzzcheck.Bounded(t, "completion", len(body), jsonPerByte, func() { m, done, err = completion(body) })
		switch {
		case err != nil:
			checkProtocolError(t, "completion", err)
			if done || m != nil {
				t.Fatalf("completion failed (%v) yet returned done %v, manifest %v", err, done, m != nil)
			}
		case !done:
			if m != nil {
				t.Fatal("completion of a running export returned a manifest")
			}
		default:
			if m.TransactionTime.IsZero() || m.TransactionTime.Location() != time.UTC {
				t.Fatalf("transactionTime %v (from %q) is zero or not UTC", m.TransactionTime, m.RawTransactionTime)
			}
			if !bytes.Equal(m.Raw, body) {
				t.Fatal("Raw is not the body")
			}
			for _, list := range [][]FileEntry{m.Output, m.Error, m.Deleted} {
				for _, e := range list {
					if e.Type == "" {
						t.Fatalf("entry %+v has no type", e)
					}
					checkHTTPURLText(t, "file url", e.URL)
				}
			}
		}

		var next string
		var lerr error
		fuzzcheck.Bounded(t, "nextLink", len(body), jsonPerByte, func() { next, lerr = nextLink(body) })
		switch {
		case lerr != nil:
			checkProtocolError(t, "nextLink", lerr)
		case next != "":
			checkHTTPURLText(t, "next link", next)
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC).Unix()
	for _, v := range []string{
		"", "120", "1.5", "0", "-4", "+5", "1e3", "0x1p4", "NaN", "Inf", "-Inf", "1_000", "٣", "1.", ".5", "1.5.2",
		" 7 ", "99999999999", "999999999999999999999999999999", "1000000", "1000001", "0.0000000001",
		"Mon, 05 Jan 2026 12:00:30 GMT", "Mon, 05 Jan 2026 11:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
		"Monday, 05-Jan-26 12:00:30 GMT", "Mon Jan  5 12:00:30 2026", "soon",
	} {
		f.Add(v, now)
	}
	f.Add("Mon, 05 Jan 2026 12:00:30 GMT", int64(-1<<62))
	deltaRE := regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		now := time.Unix(nowUnix, 0).UTC()
		d := retryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("retryAfter(%q) = %v, outside [0, %v]", v, d, maxRetryAfter)
		}
		tv := strings.TrimSpace(v)
		var want time.Duration
		switch {
		case deltaRE.MatchString(tv):
			whole, frac, _ := strings.Cut(tv, ".")
			n, err := strconv.ParseUint(whole, 10, 64)
			if err != nil || n >= uint64(maxRetryAfter/time.Second) {
				want = maxRetryAfter
				break
			}
			want = time.Duration(n) * time.Second
			if frac != "" {
				ns, _ := strconv.ParseUint((frac + "000000000")[:9], 10, 64)
				want = min(want+time.Duration(ns), maxRetryAfter)
			}
		default:
			if ht, err := http.ParseTime(tv); err == nil {
				want = max(0, min(ht.Sub(now), maxRetryAfter))
			}
			// Anything else is unusable, whatever strconv.ParseFloat
			// makes of it (NaN, 1e3, 0x1p4, +5).
		}
		if d != want {
			t.Fatalf("retryAfter(%q, %v) = %v, want %v", v, now, d, want)
		}
	})
}

func FuzzStatusLocation(f *testing.F) {
	track := func(text string) []byte {
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","details":{"text":` +
			strconv.Quote(text) + `}}]}`)
	}
	for _, s := range []struct {
		loc  string
		body []byte
	}{
		{"https://api.example/status/7", nil},
		{"/status/7", nil},
		{"status/7?x=1", nil},
		{"//other.example/status", nil},
		{"ftp://api.example/status", nil},
		{"file:///etc/passwd", nil},
		{"javascript:alert(1)", nil},
		{"http://", nil},
		{"https://:443/x", nil},
		{"http://[::1]:8080/status", nil},
		{"mailto:a@b.example", nil},
		{"%zz", nil},
		{"https://a b/", nil},
		{"", track("Asynchronous export running. Track job at https://gateway.example/v1/bison/bulk-data/r4/$export/job/42.")},
		{"", track("track JOB AT  /job/42;")},
		{"", track("Track job at ftp://gateway.example/job/42")},
		{"", track("Track job at javascript:alert(1)")},
		{"", []byte(`{"resourceType":"OperationOutcome","issue":[{"diagnostics":"Track job at https://a.example/1"},{"diagnostics":"Track job at http://b.example/2"}]}`)},
		{"", []byte(`{"resourceType":"OperationOutcome","issue":[]}`)},
		{"", []byte(`not json`)},
		{"", nil},
	} {
		f.Add(s.loc, s.body, uint8(0))
		f.Add(s.loc, s.body, uint8(1))
	}
	kickoffs := []string{
		"https://api.example/fhir/$export",
		"http://localhost:8080/v1/bison/bulk-data/r4/Group/g1/$export?_type=Patient",
	}
	f.Fuzz(func(t *testing.T, loc string, body []byte, which uint8) {
		resp := &http.Response{StatusCode: http.StatusAccepted, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body))}
		if loc != "" {
			resp.Header["Content-Location"] = []string{loc}
		}
		var got string
		var err error
		fuzzcheck.Bounded(t, "statusLocation", len(loc)+len(body), jsonPerByte, func() {
			got, err = statusLocation(resp, kickoffs[int(which)%len(kickoffs)])
		})
		if err != nil {
			if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrTransient) {
				t.Fatalf("statusLocation error %v: want ErrProtocol and not ErrTransient", err)
			}
			checkText(t, "statusLocation error", err.Error())
			return
		}
		checkHTTPURLText(t, "status URL", got)
	})
}

// outcomeSeeds are OperationOutcomes as servers send them, and the shapes
// that once broke the summary.
var outcomeSeeds = []string{
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"busy"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"throttled","details":{"text":"slow down"}}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"No unique member match"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"business-rule","diagnostics":"Consent rejected: sensitive data only"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"MemberPatient lacks birthDate"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"incomplete"},{"severity":"error","code":"lock-error"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"line one\nfake: log line\u001b[2J\u001b]0;title\u0007\u202eevil\u0085"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"` + strings.Repeat("é", 200) + `"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"` + strings.Repeat("a", 299) + `😀"}]}`,
	`{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"bad \xff\xfe utf-8"}]}`,
	`{"resourceType":"OperationOutcome","issue":[` + strings.Repeat(`{"severity":"error","code":"exception","diagnostics":"x"},`, 12) + `{}]}`,
	`{"resourceType":"Patient"}`,
	`{"resourceType":"OperationOutcome","issue":{}}`,
	`[]`,
	``,
}

func FuzzOutcomeSummary(f *testing.F) {
	for _, s := range outcomeSeeds {
		f.Add([]byte(s))
	}
	addShapes(f, "outcome")
	f.Fuzz(func(t *testing.T, body []byte) {
		var s string
		var transient bool
		fuzzcheck.Bounded(t, "outcomeSummary", len(body), jsonPerByte, func() { s = outcomeSummary(body) })
		fuzzcheck.Bounded(t, "transientOutcome", len(body), jsonPerByte, func() { transient = transientOutcome(body) })
		checkText(t, "summary", s)
		if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 {
			t.Fatalf("summary holds a non-printable rune at byte %d: %q", i, s)
		}
		if len(s) > maxSummary+len("...") {
			t.Fatalf("summary is %d bytes, more than %d", len(s), maxSummary+len("..."))
		}
		if transient && s == "" {
			t.Fatal("a transient OperationOutcome has no summary")
		}
	})
}

func FuzzParseMatch(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"MemberIdentifier","valueIdentifier":{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"UMB"}]},"system":"https://p.example/member","value":"X9"}},{"name":"MemberId","valueReference":{"reference":"Patient/p1"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"MemberId","valueReference":{"reference":"Patient/p1"}},{"name":"groupId","valueString":"mm-1a2b3c4d"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"group","valueReference":{"reference":"Group/g-1"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"groupId","valueId":"g.2"}]}`,
		`{"groupId":"g-7"}`,
		`{"groupId":".."}`,
		`{"groupId":"a/b"}`,
		`{"groupId":"g 1"}`,
		`{"resourceType":"Parameters","parameter":[{"name":"MemberId","valueReference":{"reference":"https://p.example/fhir/Patient/p1/_history/2"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"MemberId","valueReference":{"reference":"Coverage/c1"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"MemberIdentifier","valueIdentifier":{"system":"https://p.example/member"}}]}`,
		`{"resourceType":"Parameters"}`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range outcomeSeeds {
		f.Add([]byte(s))
	}
	addShapes(f, "match")
	addShapes(f, "outcome")
	f.Fuzz(func(t *testing.T, body []byte) {
		var res MatchResult
		var err error
		fuzzcheck.Bounded(t, "parseMatch", len(body), jsonPerByte, func() { res, err = parseMatch(body) })
		if err != nil {
			checkProtocolError(t, "parseMatch", err)
			if res != (MatchResult{}) {
				t.Fatalf("parseMatch failed (%v) yet returned %+v", err, res)
			}
		} else {
			if res.Status != Matched || res.Message != "" {
				t.Fatalf("match %+v: want status matched and no message", res)
			}
			if res.GroupID == "" && res.MemberIdentifier == "" && res.PatientRef == "" {
				t.Fatalf("match %+v names neither group, identifier nor patient", res)
			}
			if res.GroupID != "" && (!fhirIDRE.MatchString(res.GroupID) || strings.Trim(res.GroupID, ".") == "") {
				t.Fatalf("group id %q is not a FHIR id fit for a URL path", res.GroupID)
			}
			if res.PatientRef != "" && (!strings.Contains(res.PatientRef, "Patient/") || strings.ContainsFunc(res.PatientRef, unicode.IsSpace)) {
				t.Fatalf("MemberId %q is not a Patient reference", res.PatientRef)
			}
			if strings.HasSuffix(res.MemberIdentifier, "|") {
				t.Fatalf("member identifier %q has no value", res.MemberIdentifier)
			}
		}

		var nm MatchResult
		fuzzcheck.Bounded(t, "parseNoMatch", len(body), jsonPerByte, func() { nm = parseNoMatch(body) })
		if !slices.Contains([]MatchStatus{NotMatched, ConsentRejected, MatchError}, nm.Status) {
			t.Fatalf("no-match status %q", nm.Status)
		}
		if nm.GroupID != "" || nm.MemberIdentifier != "" || nm.PatientRef != "" {
			t.Fatalf("no-match %+v names a member", nm)
		}
		if want := outcomeSummary(body); nm.Message != want {
			t.Fatalf("no-match message %q, want the summary %q", nm.Message, want)
		}
	})
}

// rosterTemplates are the error messages ReadRoster may give, digits
// replaced by 0: nothing else, and so never a cell's value, may appear.
var rosterTemplates = func() map[string]bool {
	m := map[string]bool{"roster line 0: no header row": true}
	for _, c := range rosterColumns {
		m["roster line 0: column "+c+" appears twice in the header"] = true
		m["roster line 0: header lacks column "+strconv.Quote(c)+" (need "+strings.Join(rosterColumns[:6], ", ")+")"] = true
		m["roster line 0: column "+c+" is empty"] = true
		m["roster line 0: column "+c+" is not a date (YYYY-MM-DD)"] = true
	}
	m["roster line 0: "+csv.ErrFieldCount.Error()+" (the header has another number)"] = true
	for _, e := range []error{csv.ErrBareQuote, csv.ErrQuote} {
		m["roster line 0: "+e.Error()+" at byte 0"] = true
	}
	return m
}()

var (
	digitsRE     = regexp.MustCompile(`[0-9]+`)
	rosterLineRE = regexp.MustCompile(`^roster line ([0-9]+): `)
	fhirIDRE     = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
)

// rosterCells returns every cell of a roster as a lenient CSV reader and
// a plain split see it, trimmed, to look for in error messages.
func rosterCells(in string) []string {
	cells := strings.FieldsFunc(in, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == '"' })
	cr := csv.NewReader(strings.NewReader(in))
	cr.LazyQuotes, cr.FieldsPerRecord = true, -1
	for {
		rec, err := cr.Read()
		if err != nil {
			break
		}
		cells = append(cells, rec...)
	}
	for i, c := range cells {
		cells[i] = strings.TrimSpace(c)
	}
	return cells
}

func FuzzReadRoster(f *testing.F) {
	const header = "given,family,birth_date,member_id,consent_start,consent_end"
	for _, s := range []string{
		"family,given,birth_date,member_id,consent_start,consent_end,coverage_to_link\nDoe,Jane,1970-01-02,M1,2026-01-01,2027-01-01,OLD9\n",
		"\ufeffGiven, Family ,BIRTH_DATE,member_id,consent_start,consent_end,gender\r\nJane,Doe,1970-01-02,M1,2026-01-01,2027-01-01,female\r\n\r\nJohn,Roe,1980-12-31,M2,2026-01-01,2027-01-01,\r\n",
		header + "\n\"Mary\nAnn\",\"O\"\"Brien\",1970-01-02,M3,2026-01-01,2027-01-01\n",
		header + "\nJane,Doe,\n1970-01-02,M1,2026-01-01,2027-01-01\n",
		header + "\n\"Jane\",Doe,1970-01-02,\"\n\",2026-01-01,2027-01-01\n",
		"given,family,birth_date,member_id,consent_start\nJane,Doe,1970-01-02,M1,2026-01-01\n",
		"given,given,family,birth_date,member_id,consent_start,consent_end\nA,B,C,1970-01-02,M1,2026-01-01,2027-01-01\n",
		header + "\nJane,Doe,1970-01-02,,2026-01-01,2027-01-01\n",
		header + "\nJane,Doe,02/01/1970,M1,2026-01-01,2027-01-01\n",
		header + "\nJane,Doe,1970-01-02,M1,2026-01-01\n",
		header + "\nJane,Do\"e,1970-01-02,M1,2026-01-01,2027-01-01\n",
		header + "\n\"Jane,Doe,1970-01-02,M1,2026-01-01,2027-01-01\n",
		header + "\nSecretName,Doe,SecretBirth,M1,2026-01-01,2027-01-01\n",
		"\n\n" + header + "\n",
		"",
		"\n",
	} {
		f.Add(s)
	}
	for _, sh := range worstShapes {
		if sh.target == "roster" {
			f.Add(sh.input(seedReps))
		}
	}
	vocabulary := strings.Join(slices.Collect(func(yield func(string) bool) {
		for k := range rosterTemplates {
			if !yield(k) {
				return
			}
		}
	}), "\n")
	f.Fuzz(func(t *testing.T, in string) {
		var ms []Member
		var err error
		fuzzcheck.Bounded(t, "ReadRoster", len(in), csvPerByte, func() { ms, err = ReadRoster(strings.NewReader(in)) })
		lines := strings.Count(in, "\n") + 1
		if err != nil {
			msg := err.Error()
			m := rosterLineRE.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("error %q does not start with the line", msg)
			}
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
				t.Fatalf("error %q names line %d of %d", msg, n, lines)
			}
			norm := digitsRE.ReplaceAllString(msg, "0")
			if !rosterTemplates[norm] {
				t.Fatalf("error %q is not one of the known messages", msg)
			}
			for _, c := range rosterCells(in) {
				if len(c) >= 8 && strings.Contains(msg, c) && !strings.Contains(vocabulary, digitsRE.ReplaceAllString(c, "0")) {
					t.Fatalf("error %q echoes the cell %q", msg, c)
				}
			}
			return
		}
		for _, m := range ms {
			if m.Given == "" || m.Family == "" || m.BirthDate == "" || m.MemberID == "" || m.ConsentStart == "" || m.ConsentEnd == "" {
				t.Fatalf("member on line %d lacks a required field", m.Line)
			}
			if m.Line < 1 || m.Line > lines {
				t.Fatalf("member line %d outside 1..%d", m.Line, lines)
			}
		}

		// Round trip: the members written back under a header naming every
		// column read back the same.
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		w.Write(rosterColumns)
		for _, m := range ms {
			w.Write([]string{m.Given, m.Family, m.BirthDate, m.MemberID, m.ConsentStart, m.ConsentEnd, m.CoverageToLink, m.Gender})
		}
		w.Flush()
		again, err := ReadRoster(&buf)
		if err != nil {
			t.Fatalf("members written back do not read: %v", err)
		}
		noLines := func(ms []Member) []Member {
			out := slices.Clone(ms)
			for i := range out {
				out[i].Line = 0
			}
			return out
		}
		if diff := cmp.Diff(noLines(ms), noLines(again)); diff != "" {
			t.Fatalf("round trip (-read +written back and read):\n%s", diff)
		}
	})
}

// deletedLine is one deleted[] line as the sandbox writes it.
func deletedLine(urls ...string) string {
	var entries []string
	for _, u := range urls {
		entries = append(entries, `{"request":{"method":"DELETE","url":`+strconv.Quote(u)+`}}`)
	}
	return `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
}

// gzipWriters saves allocating a compressor, most of the cost of a
// FuzzReadDeleted run, for each input; BestSpeed is also the cheapest to
// reset.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gunzipped returns what a gzip stream decompresses to, as far as it goes.
func gunzipped(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(io.LimitReader(zr, 64<<20))
	return out
}

func FuzzReadDeleted(f *testing.F) {
	for _, s := range []string{
		deletedLine("Patient/p1", "Coverage/c1") + "\n\n" + deletedLine("/Patient/p2"),
		deletedLine("ExplanationOfBenefit/carrier--10177349616") + "\n",
		deletedLine("Patient/-19990000002208") + "\r\n" + deletedLine() + "\r\n",
		deletedLine("Patient/p1/_history/2"),
		deletedLine("Patient/.."),
		deletedLine("patient/p1"),
		deletedLine("Patient/p 1"),
		deletedLine("http://x.example/fhir/Patient/p1"),
		deletedLine("Patient"),
		`{"resourceType":"Bundle","entry":[{"request":{"method":"PUT","url":"Patient/p1"}}]}`,
		`{"resourceType":"Bundle","entry":{}}`,
		`{"resourceType":"Patient"}`,
		"",
		"\x1f",
		"\x1f\x8b",
	} {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(40))
	}
	for _, sh := range worstShapes {
		if sh.target == "deleted" {
			f.Add([]byte(sh.input(seedReps)), uint16(0))
		}
	}
	f.Add(gzipBytes(f, []byte(deletedLine("Patient/p1")+"\n")), uint16(10))
	const name = "deleted.Bundle.001.ndjson"
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + ` line ([0-9]+)`)
	// One file, rewritten for each input: a directory per input would
	// cost more than the decoding. Each worker process has its own.
	path := filepath.Join(f.TempDir(), name)
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		write := func(b []byte) string {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
		gz := gzipBytes(t, data)
		isGzip := bytes.HasPrefix(data, []byte{0x1f, 0x8b})
		decoded := data
		if isGzip {
			decoded = gunzipped(data)
		}
		read := func(what, path string, n, lines int) ([]Tombstone, error) {
			t.Helper()
			var ts []Tombstone
			var err error
			fuzzcheck.Bounded(t, "ReadDeleted "+what, n, scanPerByte, func() { ts, err = ReadDeleted(path) })
			if err != nil {
				msg := err.Error()
				if ts != nil {
					t.Fatalf("%s: error %q with %d tombstones", what, msg, len(ts))
				}
				m := lineRE.FindStringSubmatch(msg)
				if m == nil {
					t.Fatalf("%s: error %q does not name the file and line", what, msg)
				}
				if l, _ := strconv.Atoi(m[1]); l < 1 || l > lines {
					t.Fatalf("%s: error %q names line %d of %d", what, msg, l, lines)
				}
				checkText(t, what+" error", msg)
			}
			for _, ts := range ts {
				if ts.ResourceType == "" || ts.ID == "" || strings.Contains(ts.ID, "/") {
					t.Fatalf("%s: tombstone %+v", what, ts)
				}
			}
			return ts, err
		}
		plainTS, plainErr := read("plain", write(data), len(data)+len(decoded), strings.Count(string(decoded), "\n")+1)
		gzTS, gzErr := read("gzip", write(gz), len(gz)+len(data), strings.Count(string(data), "\n")+1)
		if !isGzip {
			if diff := cmp.Diff(plainTS, gzTS); diff != "" {
				t.Fatalf("plain and gzip differ (-plain +gzip):\n%s", diff)
			}
			if (plainErr == nil) != (gzErr == nil) || plainErr != nil && plainErr.Error() != gzErr.Error() {
				t.Fatalf("plain error %v, gzip error %v", plainErr, gzErr)
			}
		}

		// A cut gzip stream is an error naming the file, never fewer
		// tombstones. (Cut to 0 bytes it is an empty file, to 1 byte no
		// gzip at all.)
		if n := int(cut) % len(gz); n >= 2 {
			ts, err := ReadDeleted(write(gz[:n]))
			if err == nil || !strings.HasPrefix(err.Error(), name+" line ") {
				t.Fatalf("gzip cut at %d of %d bytes: %d tombstones, error %v; want an error naming the file", n, len(gz), len(ts), err)
			}
		}
	})
}

func FuzzSummarizeErrors(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"incomplete","diagnostics":"Observation: 2 resources skipped (missing subject)"}]}` + "\n" +
			`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"Observation export partially failed"}]}` + "\n",
		`{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","expression":["Patient.name","ClaimResponse"],"location":["Claim"]}]}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","details":{"text":"Failed to export ExplanationOfBenefit for Patient/123"}}]}`,
		`{"resourceType":"OperationOutcome","issue":[{"severity":"error","diagnostics":"PatientX MyClaim Claim_1 Coverage"}]}`,
		`{"resourceType":"OperationOutcome","issue":[{"sev\u0065rity":"error","diagnostics":"Coverage"}]}`,
		`{"issue":[{"severity":"information"},{"severity":"warning"},{"severity":"error"},{"severity":"fatal"}]}`,
		`{"issue":[{"severity":"error","expression":"Patient"}]}`,
		`{"issue":{}}`,
		`not json` + "\n\n" + `[1,2]`,
		"",
	} {
		f.Add([]byte(s))
	}
	addShapes(f, "errors")
	dir := f.TempDir() // one for every input, as in FuzzReadDeleted
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "error.OperationOutcome.001.ndjson"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		files := []File{
			{Kind: KindOutput, Name: "Patient.001.ndjson"}, // not an error file: never read
			{Kind: KindError, Name: "error.OperationOutcome.001.ndjson"},
			{Kind: KindError, Name: "error.OperationOutcome.002.ndjson"}, // missing: skipped
		}
		var s ErrorSummary
		fuzzcheck.Bounded(t, "summarizeErrors", len(data), scanPerByte, func() { s = summarizeErrors(dir, files) })
		if !slices.IsSorted(s.Types) || len(slices.Compact(slices.Clone(s.Types))) != len(s.Types) {
			t.Fatalf("types %q are not sorted and unique", s.Types)
		}
		for _, typ := range s.Types {
			if !slices.Contains(resourceTypes, typ) {
				t.Fatalf("type %q is not a known resource type", typ)
			}
		}
		if s.Errors == 0 && len(s.Types) > 0 {
			t.Fatalf("types %q without an error", s.Types)
		}
		// ByType: sorted and unique by (type, severity), known types,
		// severities and codes only, and as many issues of each severity
		// as the totals at least (an issue that names two types counts
		// under each).
		bySev := map[string]int64{}
		for i, c := range s.ByType {
			if i > 0 {
				p := s.ByType[i-1]
				if p.ResourceType > c.ResourceType || p.ResourceType == c.ResourceType && p.Severity >= c.Severity {
					t.Fatalf("by type is not sorted and unique: %+v", s.ByType)
				}
			}
			if c.ResourceType != "" && !slices.Contains(resourceTypes, c.ResourceType) || !slices.Contains(severities, c.Severity) || c.Issues <= 0 {
				t.Fatalf("by type entry %+v", c)
			}
			for _, code := range c.Codes {
				if !slices.Contains(issueCodes, code) {
					t.Fatalf("code %q is not a FHIR issue type", code)
				}
			}
			if !slices.IsSorted(c.Codes) {
				t.Fatalf("codes %q are not sorted", c.Codes)
			}
			bySev[c.Severity] += c.Issues
			if (c.Severity == "error" || c.Severity == "fatal") && c.ResourceType != "" && !slices.Contains(s.Types, c.ResourceType) {
				t.Fatalf("type %q has errors but is not in Types %q", c.ResourceType, s.Types)
			}
		}
		if bySev["error"]+bySev["fatal"] < s.Errors || bySev["warning"] < s.Warnings {
			t.Fatalf("by type counts %v, fewer than %d errors and %d warnings", bySev, s.Errors, s.Warnings)
		}
		// Each counted issue has its own "severity" key, spelt out or with
		// at least one \u escape.
		keys := int64(bytes.Count(data, []byte("severity")) + bytes.Count(data, []byte(`\u`)))
		if s.Errors < 0 || s.Warnings < 0 || s.Errors+s.Warnings > keys {
			t.Fatalf("%d errors and %d warnings from %d severity keys", s.Errors, s.Warnings, keys)
		}
	})
}

// firstResourceType is the oracle for jsonScanner.scan's resourceType: the
// value of the first top-level "resourceType" member of a valid JSON
// object, when it is a string, found with encoding/json's tokenizer.
func firstResourceType(b []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", false
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return "", false
		}
		if key == "resourceType" {
			var s string
			if json.Unmarshal(val, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return "", false
}

// FuzzScanJSON checks jsonScanner against encoding/json: it accepts
// exactly what json.Valid accepts (short of encoding/json's own nesting
// limit, which is the scanner's too), finds the first top-level
// resourceType, and its walkers find the members and elements that
// encoding/json decodes.
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","id":"a"}`,
		` {"resourceType" : "Pat\u0069ent" } `,
		`{"resourc\u0065Type":"Patient"}`,
		`{"resourceType":"Patient","resourceType":"Coverage"}`,
		`{"resourceType":1,"resourceType":"Patient"}`,
		`{"a":{"resourceType":"Patient"}}`,
		`[{"resourceType":"Patient"}]`,
		`{"resourceType":"\ud83d\ude00 \ud83d x\u00e9\/\"\\"}`,
		`{"a":[1,-0.5e+3,true,false,null,"",{},[]],"b":{"c":[{"d":"e"}]}}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\t\"}", `{"a":1,}`, `[1,]`, `{,}`, `{"a"}`, `{"a":1 "b":2}`, `[1 2]`, `{}{}`, `"\xff"`,
		"\xff", "", " ", "0", "-0", "1E400", `""`, `[[[[]]]]`, `{"a":[}`, `{"a":]}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)))
	f.Add([]byte(strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)))
	var js jsonScanner
	f.Fuzz(func(t *testing.T, b []byte) {
		var (
			ok, has bool
			typ     []byte
		)
		fuzzcheck.Bounded(t, "scan", len(b), 2, func() { ok, typ, has = js.scan(b) })
		if want := json.Valid(b); ok != want {
			t.Fatalf("scan says valid %v, json.Valid %v", ok, want)
		}
		if !ok {
			if has || typ != nil {
				t.Fatalf("invalid input, yet resourceType %q", typ)
			}
			return
		}
		// encoding/json turns each byte of invalid UTF-8 into U+FFFD; the
		// scanner keeps the bytes (a resourceType with them matches no
		// type either way).
		valid := func(b []byte) string { return string([]rune(string(b))) }
		want, wantHas := firstResourceType(b)
		if has != wantHas || valid(typ) != want {
			t.Fatalf("resourceType %q (%v), want %q (%v)", typ, has, want, wantHas)
		}

		// The walkers, on the value the scanner accepted.
		v := bytes.TrimSpace(b)
		var members []string
		eachMember(v, func(key, val []byte) bool {
			var k string
			if err := json.Unmarshal([]byte(`"`+string(key)+`"`), &k); err != nil {
				t.Fatalf("key %q: %v", key, err)
			}
			if !json.Valid(val) {
				t.Fatalf("member %q: value %q is not one JSON value", k, val)
			}
			members = append(members, k)
			return true
		})
		var elements int
		eachElement(v, func(val []byte) bool {
			if !json.Valid(val) {
				t.Fatalf("element %q is not one JSON value", val)
			}
			elements++
			return true
		})
		switch v[0] {
		case '{':
			var keys []string
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.Token()
			for dec.More() {
				k, _ := dec.Token()
				keys = append(keys, k.(string))
				var skip json.RawMessage
				dec.Decode(&skip)
			}
			if diff := cmp.Diff(keys, members); diff != "" {
				t.Fatalf("members (-encoding/json +eachMember):\n%s", diff)
			}
		case '[':
			var all []json.RawMessage
			if err := json.Unmarshal(v, &all); err != nil {
				t.Fatal(err)
			}
			if elements != len(all) {
				t.Fatalf("%d elements, encoding/json finds %d", elements, len(all))
			}
		}
		if v[0] == '"' {
			got, _ := js.str(v)
			var want string
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			if valid(got) != want {
				t.Fatalf("string %q, encoding/json %q", got, want)
			}
		}
	})
}
