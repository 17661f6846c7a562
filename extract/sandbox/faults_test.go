package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// startAlt is a sandbox whose AltHost is localhost:PORT of its own
// 127.0.0.1:PORT listener.
func startAlt(t *testing.T, cfg Config) (*Server, *httptest.Server, string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	cfg.AltHost = "localhost:" + port
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = s.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return s, ts, "http://" + cfg.AltHost
}

// send is do with a request body.
func send(t *testing.T, method, u, token string, header map[string]string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestAltHost(t *testing.T) {
	_, ts, alt := startAlt(t, Config{Members: 5, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	for _, fl := range []struct{ name, primary, status, file string }{
		{"1up", OneUpBase(ts.URL, DefaultTenant), OneUpBase(alt, DefaultTenant) + "/$export/job/", OneUpBase(alt, DefaultTenant) + "/$export/file/"},
		{"standard", StandardBase(ts.URL), StandardBase(alt) + "/$export-status/", StandardBase(alt) + "/$export-file/"},
	} {
		t.Run(fl.name, func(t *testing.T) {
			status, m := export(t, fl.primary+"/$export?_type=Patient", token)
			if !strings.HasPrefix(status, fl.status) || m.Request != fl.primary+"/$export?_type=Patient" {
				t.Errorf("status URL %q, request %q", status, m.Request)
			}
			for _, out := range m.Output {
				if !strings.HasPrefix(out.URL, fl.file) {
					t.Errorf("file URL %q", out.URL)
				}
			}
			if got := download(t, m, token); len(got["Patient"]) != 5 {
				t.Errorf("%d patients via the alt host", len(got["Patient"]))
			}
		})
	}
}

func TestFaults(t *testing.T) {
	type step struct {
		what       string // kickoff, poll, file
		wantStatus int
		wantHeader map[string]string // "" value: header absent
		wantBody   string            // substring
	}
	httpDate := "Wed, 07 Jan 2026 00:00:00 GMT"
	tests := []struct {
		name   string
		faults Faults
		steps  []step
	}{
		{"kick-off 429 with Retry-After", Faults{KickoffTooMany: 2, KickoffRetryAfter: "120"}, []step{
			{"kickoff", 429, map[string]string{"Retry-After": "120", "Content-Location": ""}, "throttled"},
			{"kickoff", 429, nil, ""},
			{"kickoff", 202, nil, ""},
		}},
		{"kick-off 429 without Retry-After", Faults{KickoffTooMany: 1}, []step{
			{"kickoff", 429, map[string]string{"Retry-After": ""}, ""},
			{"kickoff", 202, nil, ""},
		}},
		{"status 429 then 500 then normal", Faults{StatusTooMany: 1, StatusServerErrors: 1}, []step{
			{"kickoff", 202, nil, ""},
			{"poll", 429, map[string]string{"Retry-After": "1"}, "throttled"},
			{"poll", 500, nil, `"code":"transient"`},
			{"poll", 202, map[string]string{"Retry-After": "1"}, ""},
			{"poll", 200, nil, `"output"`},
		}},
		{"Retry-After as HTTP-date", Faults{StatusRetryAfter: httpDate, StatusTooMany: 1}, []step{
			{"kickoff", 202, nil, ""},
			{"poll", 429, map[string]string{"Retry-After": httpDate}, ""},
			{"poll", 202, map[string]string{"Retry-After": httpDate}, ""},
		}},
		{"Retry-After huge", Faults{StatusRetryAfter: "86400"}, []step{
			{"kickoff", 202, nil, ""},
			{"poll", 202, map[string]string{"Retry-After": "86400"}, ""},
		}},
		{"Retry-After omitted", Faults{StatusRetryAfter: "-"}, []step{
			{"kickoff", 202, nil, ""},
			{"poll", 202, map[string]string{"Retry-After": ""}, ""},
		}},
		{"file 429, 500, truncated, whole", Faults{FileTooMany: 1, FileServerErrors: 1, TruncateFiles: 1}, []step{
			{"kickoff", 202, nil, ""}, {"poll", 202, nil, ""}, {"poll", 200, nil, ""},
			{"file", 429, map[string]string{"Retry-After": "1"}, ""},
			{"file", 500, nil, ""},
			{"file", 200, map[string]string{"X-Lines": "2"}, ""},
			{"file", 200, map[string]string{"X-Lines": "5"}, ""},
		}},
		{"files gone", Faults{FilesGone: true}, []step{
			{"kickoff", 202, nil, ""}, {"poll", 202, nil, ""}, {"poll", 200, nil, ""},
			{"file", 410, nil, "OperationOutcome"},
			{"file", 410, nil, ""},
		}},
		{"job fails", Faults{JobFails: true}, []step{
			{"kickoff", 202, nil, ""}, {"poll", 202, nil, ""},
			{"poll", 200, nil, `"status":"Failed"`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Config{Members: 5})
			token := getToken(t, ts.URL)
			s.SetFaults(tt.faults)
			base := OneUpBase(ts.URL, DefaultTenant)
			var status string
			var m manifest
			for i, st := range tt.steps {
				var r reply
				switch st.what {
				case "kickoff":
					r = do(t, http.MethodGet, base+"/$export?_type=Patient", token, async)
					if r.status == 202 {
						status = r.header.Get("Content-Location")
					}
				case "poll":
					r = do(t, http.MethodGet, status, token, nil)
					if r.status == 200 {
						_ = json.Unmarshal(r.body, &m)
					}
				case "file":
					r = do(t, http.MethodGet, m.Output[0].URL, token, nil)
					if r.status == 200 {
						r.header.Set("X-Lines", strings.TrimSpace(string(rune('0'+bytes.Count(r.body, []byte("\n"))))))
					}
				}
				if r.status != st.wantStatus {
					t.Fatalf("step %d %s: status %d, want %d: %s", i, st.what, r.status, st.wantStatus, r.body)
				}
				for k, v := range st.wantHeader {
					if got := r.header.Get(k); got != v {
						t.Errorf("step %d %s: %s %q, want %q", i, st.what, k, got, v)
					}
				}
				if !strings.Contains(string(r.body), st.wantBody) {
					t.Errorf("step %d %s: body %s lacks %q", i, st.what, r.body, st.wantBody)
				}
			}
		})
	}
}

func TestKickoffRunningJob(t *testing.T) {
	s, ts := start(t, Config{Members: 3})
	token := getToken(t, ts.URL)
	base := StandardBase(ts.URL)
	first := do(t, http.MethodGet, base+"/$export", token, async).header.Get("Content-Location")
	s.SetFaults(Faults{KickoffTooMany: 1, KickoffRunningJob: true, KickoffRetryAfter: "5"})
	r := do(t, http.MethodGet, base+"/$export", token, async)
	if r.status != 429 || r.header.Get("Content-Location") != first || r.header.Get("Retry-After") != "5" {
		t.Fatalf("429 %d, Content-Location %q (want %q)", r.status, r.header.Get("Content-Location"), first)
	}
	if got := s.Faults().KickoffTooMany; got != 0 {
		t.Errorf("counter %d after firing", got)
	}
	// Once its manifest is served the job is not running any more.
	poll(t, first, token)
	s.SetFaults(Faults{KickoffTooMany: 1, KickoffRunningJob: true})
	if r := do(t, http.MethodGet, base+"/$export", token, async); r.status != 429 || r.header.Get("Content-Location") != "" {
		t.Errorf("after manifest: %d Content-Location %q", r.status, r.header.Get("Content-Location"))
	}
}

func TestJobFailsStandard(t *testing.T) {
	s, ts := start(t, Config{Members: 3, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	s.SetFaults(Faults{JobFails: true})
	status := do(t, http.MethodGet, StandardBase(ts.URL)+"/$export", token, async).header.Get("Content-Location")
	r := do(t, http.MethodGet, status, token, nil)
	if got := outcomeText(t, r); r.status != 500 || !strings.HasPrefix(got, "error|exception|") {
		t.Errorf("failed job: %d %s", r.status, got)
	}
}

func TestRedirectFiles(t *testing.T) {
	s, ts, alt := startAlt(t, Config{Members: 4, PollsBeforeReady: -1})
	plain, tsPlain := start(t, Config{Members: 4, PollsBeforeReady: -1})
	localhost := strings.Replace(tsPlain.URL, "127.0.0.1", "localhost", 1)
	tests := []struct {
		name     string
		s        *Server
		root     string // kick-off root
		fileRoot string // where the manifest points
		wantHost string // redirect target root
	}{
		{"alt host file redirects to primary", s, ts.URL, alt, ts.URL},
		{"no alt host: 127.0.0.1 to localhost", plain, tsPlain.URL, tsPlain.URL, localhost},
		{"no alt host: localhost to 127.0.0.1", plain, localhost, localhost, tsPlain.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := getToken(t, tt.root)
			tt.s.SetFaults(Faults{RedirectFiles: true, TruncateFiles: 1})
			_, m := export(t, OneUpBase(tt.root, DefaultTenant)+"/$export?_type=Patient", token)
			u := m.Output[0].URL
			if !strings.HasPrefix(u, tt.fileRoot) {
				t.Fatalf("file URL %s", u)
			}
			r := send(t, http.MethodGet, u, token, nil, nil)
			loc := r.header.Get("Location")
			if r.status != 307 || !strings.HasPrefix(loc, tt.wantHost+"/_storage/") || !strings.Contains(loc, "?sig=") {
				t.Fatalf("redirect %d Location %q", r.status, loc)
			}
			if r := send(t, http.MethodGet, loc, token, nil, nil); r.status != 400 || !strings.Contains(string(r.body), "Only one auth mechanism allowed") {
				t.Errorf("storage with token: %d %s", r.status, r.body)
			}
			if r := send(t, http.MethodGet, loc+"x", "", nil, nil); r.status != 403 {
				t.Errorf("storage with bad sig: %d", r.status)
			}
			r = send(t, http.MethodGet, loc, "", nil, nil)
			if n := bytes.Count(r.body, []byte("\n")); r.status != 200 || n != 2 {
				t.Errorf("storage truncated: %d, %d lines, want 2", r.status, n)
			}
			r = send(t, http.MethodGet, loc, "", nil, nil)
			if n := bytes.Count(r.body, []byte("\n")); r.status != 200 || n != m.Output[0].Count {
				t.Errorf("storage: %d, %d lines, want %d", r.status, n, m.Output[0].Count)
			}
		})
	}
}

func TestNoAccessToken(t *testing.T) {
	s, ts := start(t, Config{Members: 4, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	s.SetFaults(Faults{NoAccessToken: true})
	_, m := export(t, StandardBase(ts.URL)+"/$export?_type=Patient", token)
	if m.RequiresAccessToken {
		t.Fatal("requiresAccessToken true")
	}
	if r := do(t, http.MethodGet, m.Output[0].URL, token, nil); r.status != 400 {
		t.Errorf("file with token: %d", r.status)
	}
	if r := do(t, http.MethodGet, m.Output[0].URL, "", nil); r.status != 200 || bytes.Count(r.body, []byte("\n")) != 4 {
		t.Errorf("file without token: %d", r.status)
	}
}

func TestManifestPagingAndErrorFile(t *testing.T) {
	s, ts := start(t, Config{Members: 20, PollsBeforeReady: -1, MaxLinesPerFile: 10})
	token := getToken(t, ts.URL)
	s.SetFaults(Faults{ManifestPageSize: 3, ErrorFile: true})
	status, first := export(t, StandardBase(ts.URL)+"/$export?_type=Patient,Coverage,Group", token)
	var pages []manifest
	var errs int
	next, m := status, first
	for {
		pages = append(pages, m)
		r := do(t, http.MethodGet, next, token, nil)
		var raw struct {
			Error []struct{ Type, URL string }
			Link  []struct{ Relation, URL string }
		}
		_ = json.Unmarshal(r.body, &raw)
		errs += len(raw.Error)
		for _, e := range raw.Error {
			er := do(t, http.MethodGet, e.URL, token, nil)
			if e.Type != "OperationOutcome" || !strings.Contains(string(er.body), `"severity":"warning"`) ||
				!strings.Contains(string(er.body), `"diagnostics":"Observation export partially failed"`) {
				t.Errorf("error file %s: %s", e.URL, er.body)
			}
		}
		if len(raw.Link) == 0 {
			break
		}
		if raw.Link[0].Relation != "next" {
			t.Fatalf("link %+v", raw.Link)
		}
		next = raw.Link[0].URL
		_ = json.Unmarshal(do(t, http.MethodGet, next, token, nil).body, &m)
	}
	total := 0
	for _, p := range pages {
		if len(p.Output) > 3 {
			t.Errorf("page of %d", len(p.Output))
		}
		total += len(p.Output)
	}
	// Patient 2 files, Coverage 2, Group 1: two pages.
	if len(pages) != 2 || total != 5 || errs != 1 {
		t.Errorf("%d pages, %d outputs, %d error files", len(pages), total, errs)
	}
}

func TestExpiresInString(t *testing.T) {
	s, ts := start(t, Config{Members: 2})
	s.SetFaults(Faults{ExpiresInString: true})
	r := tokenRequest(t, ts.URL+TokenPath, DefaultClientID, DefaultClientSecret, false)
	if !strings.Contains(string(r.body), `"expires_in":"3600"`) {
		t.Errorf("token body %s", r.body)
	}
}

func TestAdminFaults(t *testing.T) {
	s, ts := start(t, Config{Members: 2})
	u := ts.URL + "/_admin/faults"
	tests := []struct {
		name string
		body string
		want int
		f    Faults
	}{
		{"lower camel", `{"kickoffTooMany":2,"statusRetryAfter":"-","filesGone":true}`, 200, Faults{KickoffTooMany: 2, StatusRetryAfter: "-", FilesGone: true}},
		{"Go names", `{"FileTooMany":3,"RedirectFiles":true}`, 200, Faults{FileTooMany: 3, RedirectFiles: true}},
		{"unknown field", `{"explode":true}`, 400, Faults{FileTooMany: 3, RedirectFiles: true}},
		{"clear", `{}`, 200, Faults{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, http.MethodPost, u, "", map[string]string{"Content-Type": "application/json"}, []byte(tt.body))
			if r.status != tt.want {
				t.Fatalf("POST: %d %s", r.status, r.body)
			}
			if diff := cmp.Diff(tt.f, s.Faults()); diff != "" {
				t.Errorf("faults (-want +got):\n%s", diff)
			}
			var got Faults
			if err := json.Unmarshal(do(t, http.MethodGet, u, "", nil).body, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.f, got); diff != "" {
				t.Errorf("GET (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenExpiresBetweenPolls(t *testing.T) {
	s, ts := start(t, Config{Members: 3, PollsBeforeReady: 2, TokenTTL: 5 * time.Minute})
	token := getToken(t, ts.URL)
	status := do(t, http.MethodGet, OneUpBase(ts.URL, DefaultTenant)+"/$export", token, async).header.Get("Content-Location")
	if r := do(t, http.MethodGet, status, token, nil); r.status != 202 {
		t.Fatalf("first poll %d", r.status)
	}
	s.Clock().Advance(5 * time.Minute)
	r := do(t, http.MethodGet, status, token, nil)
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("poll after expiry: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	// A fresh token resumes the same job, where it was.
	token = getToken(t, ts.URL)
	if r := do(t, http.MethodGet, status, token, nil); r.status != 202 {
		t.Errorf("second poll %d", r.status)
	}
	if m := poll(t, status, token); m.TransactionTime != instant(DefaultStart) {
		t.Errorf("transactionTime %s", m.TransactionTime)
	}
}

// rawManifest kicks off and polls once (PollsBeforeReady -1), returning
// the manifest body.
func rawManifest(t *testing.T, kickoff, token string) []byte {
	t.Helper()
	r := do(t, http.MethodGet, kickoff, token, async)
	if r.status != 202 {
		t.Fatalf("kick-off: %d %s", r.status, r.body)
	}
	r = do(t, http.MethodGet, r.header.Get("Content-Location"), token, nil)
	if r.status != 200 {
		t.Fatalf("manifest: %d %s", r.status, r.body)
	}
	return r.body
}

func TestDeleteAndUpdate(t *testing.T) {
	s, ts := start(t, Config{Members: 6, PollsBeforeReady: -1})
	base := StandardBase(ts.URL)
	before := s.Resources("Coverage")
	var obs struct{ ID string }
	_ = json.Unmarshal(s.Resources("Observation")[0], &obs)
	s.Clock().Advance(time.Hour)
	since := s.Clock().Now()
	if err := s.Delete("Patient", "pat-0002"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("Patient", "pat-0002"); err == nil {
		t.Error("second delete: no error")
	}
	if err := s.Delete("Observation", obs.ID); err != nil {
		t.Fatal(err)
	}
	s.Clock().Advance(time.Minute)
	if err := s.Update("Coverage", "cov-0003", func(m map[string]any) { m["status"] = "cancelled" }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("Coverage", "cov-0003", func(map[string]any) {}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update("Coverage", "cov-0003", func(m map[string]any) { m["id"] = "other" }); err == nil {
		t.Error("update changing id: no error")
	}
	if err := s.Update("Coverage", "nope", func(map[string]any) {}); err == nil {
		t.Error("update of unknown: no error")
	}
	after := s.Resources("Coverage")
	if s.Count("Patient") != 5 || !bytes.Equal(before[0], after[0]) {
		t.Fatalf("counts or untouched coverage changed")
	}
	// Same bytes but status, lastUpdated and a new versionId, which
	// follows the existing meta keys.
	old := string(before[2])
	lu := old[strings.Index(old, `"lastUpdated":`):]
	lu = lu[:strings.Index(lu, `Z"`)+2]
	want := strings.Replace(old, `"status":"active"`, `"status":"cancelled"`, 1)
	want = strings.Replace(want, lu, `"lastUpdated":"2026-01-05T01:01:00Z"`, 1)
	want = strings.Replace(want, `|1.1.0"]},`, `|1.1.0"],"versionId":"3"},`, 1)
	if string(after[2]) != want {
		t.Errorf("updated coverage\n got %s\nwant %s", after[2], want)
	}

	token := getToken(t, ts.URL)
	var m struct {
		Output  []struct{ Type string }
		Deleted []struct {
			Type, URL string
			Count     int
		}
	}
	if err := json.Unmarshal(rawManifest(t, base+"/$export?_since="+url.QueryEscape(instant(since)), token), &m); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, d := range m.Deleted {
		if d.Type != "Bundle" || d.Count != 1 {
			t.Errorf("deleted entry %+v", d)
		}
		lines = append(lines, strings.TrimSpace(string(do(t, http.MethodGet, d.URL, token, nil).body)))
	}
	wantLines := []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/pat-0002"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Observation/` + obs.ID + `"}}]}`,
	}
	if diff := cmp.Diff(wantLines, lines); diff != "" {
		t.Errorf("deleted files (-want +got):\n%s", diff)
	}
	if len(m.Output) != 1 || m.Output[0].Type != "Coverage" {
		t.Errorf("since export output %+v", m.Output)
	}
	// Later _since: nothing deleted, but the array is there.
	body := rawManifest(t, base+"/Patient/$export?_since="+url.QueryEscape(instant(s.Clock().Now())), token)
	if !bytes.Contains(body, []byte(`"deleted":[]`)) {
		t.Errorf("manifest %s", body)
	}
	// Without _since there is no deleted[].
	if body := rawManifest(t, base+"/$export?_type=Patient", token); bytes.Contains(body, []byte(`"deleted"`)) {
		t.Errorf("manifest without _since has deleted: %s", body)
	}
	// Putting it back clears the tombstone.
	if err := s.Put([]byte(`{"resourceType":"Patient","id":"pat-0002"}`)); err != nil {
		t.Fatal(err)
	}
	if body := rawManifest(t, base+"/$export?_type=Patient&_since="+url.QueryEscape(instant(since)), token); bytes.Contains(body, []byte(`Bundle`)) {
		t.Errorf("tombstone kept after Put: %s", body)
	}
}
