package extract_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// env is a sandbox payer served on 127.0.0.1:PORT whose status and file
// URLs sit on localhost:PORT, a second host name, as 1upHealth's do.
type env struct {
	sb       *sandbox.Server
	root     string // http://127.0.0.1:PORT
	altHost  string // localhost:PORT
	mu       sync.Mutex
	waits    []time.Duration
	tokenURL string
}

func newEnv(t *testing.T, cfg sandbox.Config) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg.AltHost = "localhost:" + port
	if cfg.Members == 0 {
		cfg.Members = 20
	}
	sb, err := sandbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sb.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{sb: sb, root: srv.URL, altHost: cfg.AltHost, tokenURL: srv.URL + sandbox.TokenPath}
}

// client returns a client for the 1up flavour whose waits advance the
// sandbox clock instead of sleeping.
func (e *env) client() *extract.Client {
	return &extract.Client{
		BaseURL: sandbox.OneUpBase(e.root, sandbox.DefaultTenant),
		Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
			TokenURL: e.tokenURL, ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret,
			Scopes: []string{"bulk-data|user/*.rs", "member-match|read"},
		}),
		Concurrency: 4,
		Now:         e.sb.Clock().Now,
		Sleep: func(_ context.Context, d time.Duration) error {
			e.mu.Lock()
			e.waits = append(e.waits, d)
			e.mu.Unlock()
			e.sb.Clock().Advance(d)
			return nil
		},
	}
}

// requests counts the sandbox requests that match.
func (e *env) requests(match func(sandbox.RequestLog) bool) int {
	n := 0
	for _, r := range e.sb.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}

func isKickoff(r sandbox.RequestLog) bool {
	return strings.HasSuffix(r.Path, "$export") || strings.HasSuffix(r.Path, "$davinci-data-export")
}
func isFile(r sandbox.RequestLog) bool { return strings.Contains(r.Path, "/$export/file/") }

// linesByType sums the downloaded lines per resource type.
func linesByType(files []extract.File, kind extract.Kind) map[string]int64 {
	out := map[string]int64{}
	for _, f := range files {
		if f.Kind == kind {
			out[f.Type] += f.Lines
		}
	}
	return out
}

func (e *env) allCounts() map[string]int64 {
	out := map[string]int64{}
	for _, t := range []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Condition", "Observation", "Practitioner", "Organization", "Group"} {
		out[t] = int64(e.sb.Count(t))
	}
	return out
}

func TestFullExportOf200MembersVerified(t *testing.T) {
	e := newEnv(t, sandbox.Config{Members: 200, MaxLinesPerFile: 300})
	res, err := e.client().Export(t.Context(), extract.Request{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.allCounts(), linesByType(res.Files, extract.KindOutput)); diff != "" {
		t.Errorf("lines per type (-want +got):\n%s", diff)
	}
	for _, f := range res.Files {
		if f.Invalid != 0 || len(f.SHA256) != 64 {
			t.Errorf("file %s: invalid %d, sha %q", f.Name, f.Invalid, f.SHA256)
		}
	}
	// The token reached the status and file URLs on the second host.
	onAlt := e.requests(func(r sandbox.RequestLog) bool { return r.Host == e.altHost && r.Authorization && r.Status == 200 })
	if want := len(res.Files) + 1; onAlt < want {
		t.Errorf("%d authorized 200s on %s, want at least %d (manifest + files)", onAlt, e.altHost, want)
	}
}

func TestPollingHonoursRetryAfter(t *testing.T) {
	start := sandbox.DefaultStart
	tests := []struct {
		name       string
		retryAfter string
		lo, hi     time.Duration
	}{
		{"seconds", "42", 42 * time.Second, 47 * time.Second},
		{"http date", start.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, 99 * time.Second},
		{"absurdly large is clamped to the ceiling", "86400", 5 * time.Minute, 5*time.Minute + 30*time.Second},
		{"missing uses the default", "-", 5 * time.Second, 6 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{PollsBeforeReady: 1})
			e.sb.SetFaults(sandbox.Faults{StatusRetryAfter: tt.retryAfter})
			if _, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, t.TempDir()); err != nil {
				t.Fatal(err)
			}
			if len(e.waits) != 1 || e.waits[0] < tt.lo || e.waits[0] > tt.hi {
				t.Errorf("waits %v, want one in [%v, %v]", e.waits, tt.lo, tt.hi)
			}
		})
	}
}

func TestTransientFaultsAreRetried(t *testing.T) {
	tests := []struct {
		name   string
		faults sandbox.Faults
	}{
		{"429 at kick-off without Retry-After", sandbox.Faults{KickoffTooMany: 2}},
		{"429 at kick-off with Retry-After", sandbox.Faults{KickoffTooMany: 1, KickoffRetryAfter: "3"}},
		{"429 on status", sandbox.Faults{StatusTooMany: 2, StatusRetryAfter: "2"}},
		{"500 on status", sandbox.Faults{StatusServerErrors: 3}},
		{"500 on files", sandbox.Faults{FileServerErrors: 3}},
		{"429 on files", sandbox.Faults{FileTooMany: 3}},
		{"a truncated file body", sandbox.Faults{TruncateFiles: 1}},
		{"expires_in as a string", sandbox.Faults{ExpiresInString: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{})
			e.sb.SetFaults(tt.faults)
			res, err := e.client().Export(t.Context(), extract.Request{}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(e.allCounts(), linesByType(res.Files, extract.KindOutput)); diff != "" {
				t.Errorf("lines per type (-want +got):\n%s", diff)
			}
			if n := e.requests(func(r sandbox.RequestLog) bool { return isKickoff(r) && r.Status == 202 }); n != 1 {
				t.Errorf("%d accepted kick-offs, want 1", n)
			}
		})
	}
}

func TestKickoff429AdoptsRunningJob(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	c := e.client()
	status, err := c.Kickoff(t.Context(), extract.Request{Types: []string{"Patient"}})
	if err != nil {
		t.Fatal(err)
	}
	e.sb.SetFaults(sandbox.Faults{KickoffTooMany: 1, KickoffRunningJob: true})
	res, err := c.Export(t.Context(), extract.Request{Types: []string{"Patient"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusURL != status {
		t.Errorf("status URL %s, want the running job %s", res.StatusURL, status)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return isKickoff(r) && r.Status == 202 }); n != 1 {
		t.Errorf("%d accepted kick-offs, want 1 (the job was adopted, not restarted)", n)
	}
}

func TestTokenExpiresMidJob(t *testing.T) {
	e := newEnv(t, sandbox.Config{TokenTTL: 2 * time.Minute, PollsBeforeReady: 4, RetryAfter: time.Minute})
	res, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient", "Coverage"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 {
		t.Errorf("files %v", res.Files)
	}
	tokens := e.requests(func(r sandbox.RequestLog) bool { return r.Path == sandbox.TokenPath && r.Status == 200 })
	rejected := e.requests(func(r sandbox.RequestLog) bool { return r.Status == 401 })
	if tokens < 2 || rejected < 1 {
		t.Errorf("%d tokens issued and %d 401s; want a refresh after the token expired", tokens, rejected)
	}
}

func TestFilesGoneIsActionable(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	e.sb.SetFaults(sandbox.Faults{FilesGone: true})
	_, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, t.TempDir())
	if !errors.Is(err, extract.ErrExportExpired) || !strings.Contains(err.Error(), "files expired (410): rerun to start a new export") {
		t.Errorf("err = %v, want ErrExportExpired with advice", err)
	}
}

func TestJobFailedOnServer(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	e.sb.SetFaults(sandbox.Faults{JobFails: true})
	_, err := e.client().Export(t.Context(), extract.Request{}, t.TempDir())
	if !errors.Is(err, extract.ErrExportFailed) {
		t.Errorf("err = %v, want ErrExportFailed", err)
	}
}

func TestTokenNeverReachesStorageOrUnauthenticatedFiles(t *testing.T) {
	tests := []struct {
		name   string
		faults sandbox.Faults
		match  func(sandbox.RequestLog) bool
	}{
		{"redirect to storage on another host", sandbox.Faults{RedirectFiles: true},
			func(r sandbox.RequestLog) bool { return strings.HasPrefix(r.Path, "/_storage/") }},
		{"requiresAccessToken false", sandbox.Faults{NoAccessToken: true}, isFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{})
			e.sb.SetFaults(tt.faults)
			res, err := e.client().Export(t.Context(), extract.Request{}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			reached := e.requests(tt.match)
			withAuth := e.requests(func(r sandbox.RequestLog) bool { return tt.match(r) && r.Authorization })
			if reached < len(res.Files) || withAuth != 0 {
				t.Errorf("%d requests reached the host, %d with Authorization; want >= %d and 0", reached, withAuth, len(res.Files))
			}
		})
	}
}

func TestManifestPagingErrorsAndDeletes(t *testing.T) {
	e := newEnv(t, sandbox.Config{MaxLinesPerFile: 5})
	since := e.sb.Clock().Now()
	e.sb.Clock().Advance(time.Hour)
	if err := e.sb.Delete("Patient", "pat-0003"); err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Update("Patient", "pat-0001", func(m map[string]any) { m["gender"] = "unknown" }); err != nil {
		t.Fatal(err)
	}
	e.sb.SetFaults(sandbox.Faults{ManifestPageSize: 2, ErrorFile: true})

	full, err := e.client().Export(t.Context(), extract.Request{}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.allCounts(), linesByType(full.Files, extract.KindOutput)); diff != "" {
		t.Errorf("paged manifest: lines per type (-want +got):\n%s", diff)
	}
	if want := (extract.ErrorSummary{Errors: 1, Warnings: 1, Types: []string{"Observation"}, ByType: []extract.IssueCount{
		{ResourceType: "Observation", Severity: "error", Issues: 1, Codes: []string{"exception"}},
		{ResourceType: "Observation", Severity: "warning", Issues: 1, Codes: []string{"incomplete"}},
	}}); !cmp.Equal(want, full.Errors) {
		t.Errorf("error summary = %+v, want %+v", full.Errors, want)
	}

	e.sb.SetFaults(sandbox.Faults{})
	inc, err := e.client().Export(t.Context(), extract.Request{Since: since, Types: []string{"Patient"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := linesByType(inc.Files, extract.KindOutput)["Patient"]; got != 1 {
		t.Errorf("incremental export holds %d patients, want the 1 updated", got)
	}
	if got := linesByType(inc.Files, extract.KindDeleted)["Bundle"]; got != 1 {
		t.Errorf("deleted files hold %d tombstone bundles, want 1", got)
	}
}

func TestResumeAfterCrash(t *testing.T) {
	e := newEnv(t, sandbox.Config{PollsBeforeReady: 2, MaxLinesPerFile: 10})
	dir := t.TempDir()
	c := e.client()
	// First attempt: the process "dies" at its first wait, after kick-off.
	crash := errors.New("killed")
	c.Sleep = func(context.Context, time.Duration) error { return crash }
	if _, err := c.Export(t.Context(), extract.Request{}, dir); !errors.Is(err, crash) {
		t.Fatalf("err = %v, want the crash", err)
	}
	job, err := extract.LoadJob(dir)
	if err != nil || job == nil || job.StatusURL == "" {
		t.Fatalf("job state after crash = %+v, %v", job, err)
	}
	// Second attempt: the connection dies after three files (no retries).
	c = e.client()
	c.Retries = 0
	c.Concurrency = 1
	c.HTTP = &http.Client{Transport: &dyingTransport{after: 3}}
	if _, err := c.Export(t.Context(), extract.Request{}, dir); !errors.Is(err, extract.ErrTransient) {
		t.Fatalf("err = %v, want a transient failure", err)
	}
	job, _ = extract.LoadJob(dir)
	if len(job.Files) != 3 {
		t.Fatalf("%d files recorded as verified, want 3", len(job.Files))
	}
	filesBefore := e.requests(isFile)
	// Third attempt resumes the same job and fetches only the rest.
	res, err := e.client().Export(t.Context(), extract.Request{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return isKickoff(r) && r.Status == 202 }); n != 1 {
		t.Errorf("%d kick-offs, want 1: the job must be resumed, not restarted", n)
	}
	fetched := e.requests(isFile) - filesBefore
	if fetched != len(res.Files)-3 {
		t.Errorf("fetched %d files on resume, want %d", fetched, len(res.Files)-3)
	}
	if diff := cmp.Diff(e.allCounts(), linesByType(res.Files, extract.KindOutput)); diff != "" {
		t.Errorf("lines per type after resume (-want +got):\n%s", diff)
	}
	// Another run finds everything verified on disk and fetches nothing.
	res2, err := e.client().Export(t.Context(), extract.Request{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if again := e.requests(isFile) - filesBefore - fetched; again != 0 {
		t.Errorf("%d files fetched again, want 0", again)
	}
	if !cmp.Equal(res.Files, res2.Files) {
		t.Errorf("resumed result differs")
	}
	// A file damaged on disk is fetched again.
	os.WriteFile(filepath.Join(dir, res.Files[0].Name), []byte("{}\n"), 0o644)
	if _, err := e.client().Export(t.Context(), extract.Request{}, dir); err != nil {
		t.Fatal(err)
	}
	if again := e.requests(isFile) - filesBefore - fetched; again != 1 {
		t.Errorf("%d files fetched after damaging one, want 1", again)
	}
	// Cancel sends DELETE and forgets the job.
	if found, err := e.client().CancelJob(t.Context(), dir); !found || err != nil {
		t.Fatalf("cancel: %v, %v", found, err)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return r.Method == http.MethodDelete }); n != 1 {
		t.Errorf("%d DELETEs, want 1", n)
	}
	if j, _ := extract.LoadJob(dir); j != nil {
		t.Error("job state kept after cancel")
	}
}

// dyingTransport fails every file request after the first few, as a
// dropped connection would.
type dyingTransport struct {
	mu    sync.Mutex
	after int
	seen  int
}

func (d *dyingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/$export/file/") {
		d.mu.Lock()
		d.seen++
		dead := d.seen > d.after
		d.mu.Unlock()
		if dead {
			return nil, errors.New("connection reset by peer")
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestOtherArgumentsDoNotResumeTheJob(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	dir := t.TempDir()
	if _, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, dir); err != nil {
		t.Fatal(err)
	}
	_, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Coverage"}}, dir)
	if !errors.Is(err, extract.ErrJobMismatch) {
		t.Errorf("err = %v, want ErrJobMismatch", err)
	}
}

func TestKickoffVariants(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	group := e.sb.GroupIDs()[0]
	tests := []struct {
		name     string
		req      extract.Request
		patients int64
	}{
		{"POST with patient parameter", extract.Request{Post: true, Patient: true, Patients: []string{"Patient/pat-0001", "Patient/pat-0002"}, Types: []string{"Patient", "Coverage"}}, 2},
		{"davinci-data-export", extract.Request{Group: group, ExportType: "hl7.fhir.us.davinci-pdex#provider-download", Types: []string{"Patient"}}, -1},
		{"typeFilter", extract.Request{Types: []string{"Patient"}, TypeFilters: []string{"Patient?_id=pat-0004"}}, 1},
		{"POST group with elements", extract.Request{Post: true, Group: group, Types: []string{"Patient"}, Elements: []string{"birthDate"}, OutputFormat: "application/fhir+ndjson"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.client().Export(t.Context(), tt.req, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			got := linesByType(res.Files, extract.KindOutput)["Patient"]
			if tt.patients >= 0 && got != tt.patients || tt.patients < 0 && (got == 0 || got == int64(e.sb.Count("Patient"))) {
				t.Errorf("%d patients exported, want %d (-1: a group's share)", got, tt.patients)
			}
		})
	}
}

func TestPrivateKeyJWTAgainstSandbox(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	priv, jwks, kid, err := extract.GenerateKey(extract.RS384)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sb.RegisterClient("smart-client", jwks); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(path, priv, 0o600)
	key, _, err := extract.LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.Tokens, err = extract.NewPrivateKeyJWTSource(extract.PrivateKeyJWTConfig{
		TokenURL: e.tokenURL, ClientID: "smart-client", Key: key, KeyID: kid, Scopes: []string{"bulk-data|user/*.rs"},
		Now: e.sb.Clock().Now, // the sandbox checks exp against its own clock
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Export(t.Context(), extract.Request{Types: []string{"Patient"}}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestMemberMatchAgainstSandbox(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	m0, _ := e.sb.MemberMatchInfo(0)
	m1, _ := e.sb.MemberMatchInfo(1)
	clock := e.sb.Clock().Now()
	valid := func(mi sandbox.MemberInfo) extract.Member {
		return extract.Member{Given: mi.Given, Family: strings.ToUpper(mi.Family), BirthDate: mi.BirthDate, MemberID: mi.MemberID,
			ConsentStart: clock.AddDate(0, -1, 0).Format(time.DateOnly), ConsentEnd: clock.AddDate(1, 0, 0).Format(time.DateOnly)}
	}
	wrongBirth := valid(m1)
	wrongBirth.BirthDate = "1900-01-01"
	expired := valid(m1)
	expired.ConsentEnd = clock.AddDate(0, 0, -1).Format(time.DateOnly)

	c := e.client()
	endpoint := extract.MemberMatchURL(c.BaseURL)
	tests := []struct {
		name   string
		member extract.Member
		want   extract.MatchStatus
	}{
		{"match", valid(m0), extract.Matched},
		{"no match", wrongBirth, extract.NotMatched},
		{"consent expired", expired, extract.ConsentRejected},
	}
	var group string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.MemberMatch(t.Context(), endpoint, tt.member, "New Plan")
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.want {
				t.Fatalf("status %s (%s), want %s", res.Status, res.Message, tt.want)
			}
			if tt.want == extract.Matched {
				if res.GroupID == "" || res.PatientRef != "Patient/"+m0.PatientID || !strings.HasSuffix(res.MemberIdentifier, "|"+m0.MemberID) {
					t.Errorf("match = %+v", res)
				}
				group = res.GroupID
			}
		})
	}
	if group == "" {
		t.Fatal("no group to export")
	}
	res, err := c.Export(t.Context(), extract.Request{Group: group, Types: []string{"Patient", "ExplanationOfBenefit"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := linesByType(res.Files, extract.KindOutput)["Patient"]; got != 1 {
		t.Errorf("the matched group exported %d patients, want 1", got)
	}
}

// TestJobFailingTheSameWayIsCancelled: an export job that fails the same
// way on three attempts in a row is cancelled on the server and
// forgotten, and the error says so; the next attempt starts a new export.
func TestJobFailingTheSameWayIsCancelled(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	e.sb.SetFaults(sandbox.Faults{StatusOutcome: "too-costly"})
	dir := t.TempDir()
	for attempt := 1; attempt <= extract.MaxSameFailures; attempt++ {
		_, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, dir)
		if !errors.Is(err, extract.ErrExportFailed) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		cancelled := strings.Contains(err.Error(), "was cancelled")
		if cancelled != (attempt == extract.MaxSameFailures) {
			t.Errorf("attempt %d: %v", attempt, err)
		}
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return r.Method == http.MethodDelete }); n != 1 {
		t.Errorf("%d DELETEs of the job, want 1", n)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return isKickoff(r) && r.Status == 202 }); n != 1 {
		t.Errorf("%d kick-offs before the cancel, want 1 (the job is resumed)", n)
	}
	if j, err := extract.LoadJob(dir); err != nil || j != nil {
		t.Errorf("the cancelled job is still recorded: %+v, %v", j, err)
	}
	e.sb.SetFaults(sandbox.Faults{})
	if _, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, dir); err != nil {
		t.Fatal(err)
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return isKickoff(r) && r.Status == 202 }); n != 2 {
		t.Errorf("%d kick-offs, want a new one after the cancel", n)
	}
}

// TestRefusedParameters: a server that refuses an optional kick-off
// parameter is asked again with Prefer: handling=lenient, then without the
// parameter; fhirlake applies a refused _typeFilter itself, so the files
// hold what a server that supports it would have sent, and the result
// says what was refused and done instead. A filter fhirlake cannot
// evaluate fails the export (nothing broader than asked is exported).
func TestRefusedParameters(t *testing.T) {
	e := newEnv(t, sandbox.Config{Members: 20, MaxLinesPerFile: 7})
	ids := patientIDs(t, e)
	filter := "Patient?_id=" + ids[3] + "," + ids[11]
	req := extract.Request{Types: []string{"Patient", "Coverage"}, TypeFilters: []string{filter}}
	want, err := e.client().Export(t.Context(), req, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	wantLines := linesByType(want.Files, extract.KindOutput)
	if wantLines["Patient"] != 2 || wantLines["Coverage"] == 0 {
		t.Fatalf("control export: %v", wantLines)
	}
	since := req
	since.Since = time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name    string
		faults  sandbox.Faults
		req     extract.Request
		lines   map[string]int64
		refused []string
		dropped int64
	}{
		{"_typeFilter refused", sandbox.Faults{RefuseParams: []string{"_typeFilter"}}, req, wantLines, []string{"_typeFilter"}, 18},
		{"_typeFilter ignored when lenient", sandbox.Faults{RefuseParams: []string{"_typeFilter"}, LenientIgnores: true}, req, wantLines, []string{"Prefer: handling=lenient"}, 18},
		{"_since refused", sandbox.Faults{RefuseParams: []string{"_since"}}, since, wantLines, []string{"_since"}, 0},
		{"_elements refused", sandbox.Faults{RefuseParams: []string{"_elements"}}, extract.Request{Types: []string{"Coverage"}, Elements: []string{"id"}},
			map[string]int64{"Coverage": int64(e.sb.Count("Coverage"))}, []string{"_elements"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.sb.SetFaults(tc.faults)
			dir := t.TempDir()
			res, err := e.client().Export(t.Context(), tc.req, dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.lines, linesByType(res.Files, extract.KindOutput)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			var refused []string
			for _, r := range res.Refused {
				refused = append(refused, r.Parameter)
				if r.Action == "" {
					t.Errorf("%s: no action", r.Parameter)
				}
			}
			if diff := cmp.Diff(tc.refused, refused); diff != "" || res.FilteredOut != tc.dropped {
				t.Errorf("refused (-want +got):\n%s\nfiltered out %d, want %d", diff, res.FilteredOut, tc.dropped)
			}
			// A resumed job keeps its files as filtered, and filters nothing twice.
			again, err := e.client().Export(t.Context(), tc.req, dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.lines, linesByType(again.Files, extract.KindOutput)); diff != "" || again.FilteredOut != 0 {
				t.Errorf("resumed (-want +got):\n%s\nfiltered out %d", diff, again.FilteredOut)
			}
		})
	}
	e.sb.SetFaults(sandbox.Faults{RefuseParams: []string{"_typeFilter"}})
	_, err = e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}, TypeFilters: []string{"Patient?name=Smith"}}, t.TempDir())
	if !errors.Is(err, extract.ErrUnsupportedFilter) || !strings.Contains(err.Error(), "name") {
		t.Errorf("an unevaluable filter: %v", err)
	}
}

// patientIDs reads the ids of the sandbox's patients through an export.
func patientIDs(t *testing.T, e *env) []string {
	t.Helper()
	dir := t.TempDir()
	res, err := e.client().Export(t.Context(), extract.Request{Types: []string{"Patient"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range res.Files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var p struct{ ID string }
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// TestOrganizedOutput: with organizeOutputBy=Patient the files mix
// resource types, in blocks that start with a header Parameters resource;
// the client verifies them as files of any type, removes the headers, and
// ends with the same resources as an export of one type per file.
func TestOrganizedOutput(t *testing.T) {
	e := newEnv(t, sandbox.Config{Members: 12, MaxLinesPerFile: 25})
	byType := func(dir string, files []extract.File) map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, f := range files {
			if f.Kind != extract.KindOutput {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, f.Name))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var r struct{ ResourceType string }
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatal(err)
				}
				out[r.ResourceType]++
			}
		}
		return out
	}
	plainDir, orgDir := t.TempDir(), t.TempDir()
	plain, err := e.client().Export(t.Context(), extract.Request{Patient: true}, plainDir)
	if err != nil {
		t.Fatal(err)
	}
	org, err := e.client().Export(t.Context(), extract.Request{Patient: true, OrganizeOutputBy: "Patient"}, orgDir)
	if err != nil {
		t.Fatal(err)
	}
	if org.Manifest.OutputOrganizedBy != "Patient" || len(org.Files) < 2 {
		t.Fatalf("organized manifest: %q, %d files", org.Manifest.OutputOrganizedBy, len(org.Files))
	}
	for _, f := range org.Files {
		if f.Kind == extract.KindOutput && (f.Type != "" || !f.Organized || f.Invalid != 0) {
			t.Errorf("file %s: type %q, organized %v, invalid %d", f.Name, f.Type, f.Organized, f.Invalid)
		}
	}
	want := byType(plainDir, plain.Files)
	if diff := cmp.Diff(want, byType(orgDir, org.Files)); diff != "" {
		t.Errorf("resources by type, organized (-plain +organized):\n%s", diff)
	}
	if want["Parameters"] != 0 || want["Patient"] != 12 {
		t.Errorf("plain export: %v", want)
	}
	// Resumed, nothing is rewritten twice.
	again, err := e.client().Export(t.Context(), extract.Request{Patient: true, OrganizeOutputBy: "Patient"}, orgDir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, byType(orgDir, again.Files)); diff != "" {
		t.Errorf("resumed (-plain +organized):\n%s", diff)
	}
}

// TestPartialManifests: with allowPartialManifests the server lists the
// files made so far in its 202 answers; the client downloads them while
// the export goes on, and once the manifest is complete fetches only the
// rest: every file once, all verified.
func TestPartialManifests(t *testing.T) {
	e := newEnv(t, sandbox.Config{Members: 30, MaxLinesPerFile: 10, PollsBeforeReady: 3})
	res, err := e.client().Export(t.Context(), extract.Request{AllowPartialManifests: true}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e.allCounts(), linesByType(res.Files, extract.KindOutput)); diff != "" {
		t.Errorf("lines per type (-want +got):\n%s", diff)
	}
	early, got := 0, map[string]int{}
	final := false
	for _, r := range e.sb.Requests() {
		switch {
		case isFile(r):
			got[r.Path]++
			if !final {
				early++
			}
		case r.Method == http.MethodGet && !isKickoff(r) && r.Status == http.StatusOK:
			final = true // the complete manifest
		}
	}
	if early == 0 || early == len(got) {
		t.Errorf("%d of %d files downloaded before the manifest was complete; want some, not all", early, len(got))
	}
	for path, n := range got {
		if n != 1 {
			t.Errorf("%s downloaded %d times", path, n)
		}
	}
}

// TestBulkMemberMatchAgainstSandbox: a server that advertises Da Vinci
// PDex $bulk-member-match in its CapabilityStatement matches a whole
// roster in one asynchronous request; each member's result maps back to
// its roster line (matched with the Group to export and its Patient, not
// matched, consent refused), and the matched Group exports exactly the
// matched members.
func TestBulkMemberMatchAgainstSandbox(t *testing.T) {
	e := newEnv(t, sandbox.Config{Members: 12, BulkMemberMatch: true})
	c := e.client()
	c.BaseURL = sandbox.StandardBase(e.root)
	if !c.SupportsBulkMemberMatch(t.Context()) {
		t.Fatal("the CapabilityStatement's $bulk-member-match was not found")
	}
	plain := newEnv(t, sandbox.Config{Members: 2})
	pc := plain.client()
	pc.BaseURL = sandbox.StandardBase(plain.root)
	if pc.SupportsBulkMemberMatch(t.Context()) {
		t.Error("a server without $bulk-member-match advertises it")
	}
	clock := e.sb.Clock().Now()
	member := func(i int) extract.Member {
		mi, _ := e.sb.MemberMatchInfo(i)
		return extract.Member{Given: mi.Given, Family: mi.Family, BirthDate: mi.BirthDate, MemberID: mi.MemberID,
			ConsentStart: clock.AddDate(0, -1, 0).Format(time.DateOnly), ConsentEnd: clock.AddDate(1, 0, 0).Format(time.DateOnly)}
	}
	wrongBirth, expired := member(4), member(6)
	wrongBirth.BirthDate = "1900-01-01"
	expired.ConsentEnd = clock.AddDate(0, 0, -1).Format(time.DateOnly)
	members := []extract.Member{member(1), wrongBirth, member(3), expired, member(9)}
	res, err := c.BulkMemberMatch(t.Context(), extract.BulkMemberMatchURL(c.BaseURL), members, "New Plan")
	if err != nil {
		t.Fatal(err)
	}
	want := []extract.MatchStatus{extract.Matched, extract.NotMatched, extract.Matched, extract.ConsentRejected, extract.Matched}
	group := res[0].GroupID
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("member %d: %+v, want %s", i, r, want[i])
		}
		if r.Status == extract.Matched {
			mi, _ := e.sb.MemberMatchInfo([]int{1, 4, 3, 6, 9}[i])
			if r.GroupID != group || r.PatientRef != "Patient/"+mi.PatientID {
				t.Errorf("member %d: group %q patient %q, want %q and Patient/%s", i, r.GroupID, r.PatientRef, group, mi.PatientID)
			}
		}
	}
	if n := e.requests(func(r sandbox.RequestLog) bool { return strings.HasSuffix(r.Path, "$bulk-member-match") }); n != 1 {
		t.Errorf("%d bulk requests, want 1", n)
	}
	out, err := c.Export(t.Context(), extract.Request{Group: group, Types: []string{"Patient"}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := linesByType(out.Files, extract.KindOutput)["Patient"]; got != 3 {
		t.Errorf("the matched Group exported %d patients, want 3", got)
	}
}
