package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// start is a sandbox over cfg, served by httptest.
func start(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u, token string, header map[string]string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
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

// tokenRequest posts a client-credentials request; basic sends the
// credentials as HTTP Basic instead of in the form.
func tokenRequest(t *testing.T, tokenURL, id, secret string, basic bool) reply {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"bulk-data|user/*.rs"}}
	if !basic {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func getToken(t *testing.T, root string) string {
	t.Helper()
	r := tokenRequest(t, root+TokenPath, DefaultClientID, DefaultClientSecret, false)
	if r.status != http.StatusOK {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token body %s: %v", r.body, err)
	}
	return tok.AccessToken
}

var async = map[string]string{"Prefer": "respond-async", "Accept": "application/fhir+json"}

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error         []json.RawMessage `json:"error"`
	Status        string            `json:"status"`
	Batches       *int              `json:"batches"`
	ResourceCount *int              `json:"resourceCount"`
}

// export runs kick-off and polls until the manifest, returning the status
// URL and the manifest.
func export(t *testing.T, kickoff, token string) (string, manifest) {
	t.Helper()
	r := do(t, http.MethodGet, kickoff, token, async)
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", kickoff, r.status, r.body)
	}
	status := r.header.Get("Content-Location")
	if status == "" {
		t.Fatalf("kick-off %s: no Content-Location", kickoff)
	}
	return status, poll(t, status, token)
}

// poll polls status until the manifest, at most 10 times.
func poll(t *testing.T, status, token string) manifest {
	t.Helper()
	for range 10 {
		r := do(t, http.MethodGet, status, token, nil)
		if r.status == http.StatusOK {
			var m manifest
			if err := json.Unmarshal(r.body, &m); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			return m
		}
		if r.status != http.StatusAccepted {
			t.Fatalf("status: %d %s", r.status, r.body)
		}
	}
	t.Fatalf("status %s: still 202 after 10 polls", status)
	return manifest{}
}

// download fetches every output file, checking count against lines, and
// returns the lines by type.
func download(t *testing.T, m manifest, token string) map[string][][]byte {
	t.Helper()
	got := make(map[string][][]byte)
	for _, out := range m.Output {
		r := do(t, http.MethodGet, out.URL, token, nil)
		if r.status != http.StatusOK {
			t.Fatalf("file %s: %d %s", out.URL, r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/fhir+ndjson" {
			t.Errorf("file %s: Content-Type %q", out.URL, ct)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.body))
		sc.Buffer(nil, 16<<20)
		n := 0
		for sc.Scan() {
			line := slices.Clone(sc.Bytes())
			var res struct{ ResourceType string }
			if err := json.Unmarshal(line, &res); err != nil || res.ResourceType != out.Type {
				t.Fatalf("file %s line %d: type %q, err %v", out.URL, n+1, res.ResourceType, err)
			}
			got[out.Type] = append(got[out.Type], line)
			n++
		}
		if n != out.Count {
			t.Errorf("file %s: %d lines, manifest count %d", out.URL, n, out.Count)
		}
	}
	return got
}

func outcomeText(t *testing.T, r reply) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/fhir+json" {
		t.Errorf("OperationOutcome Content-Type %q", ct)
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Severity, Code, Diagnostics string
			Details                     struct{ Text string }
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
		t.Fatalf("not an OperationOutcome: %s (%v)", r.body, err)
	}
	i := oo.Issue[0]
	return i.Severity + "|" + i.Code + "|" + i.Details.Text
}

func counts(s *Server) map[string]int {
	c := make(map[string]int)
	for _, typ := range s.ResourceTypes() {
		c[typ] = s.Count(typ)
	}
	return c
}

func TestCounts(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string]int
	}{
		{"20 members", Config{Members: 20, Seed: 1}, map[string]int{
			"Patient": 20, "Coverage": 20, "ExplanationOfBenefit": 75, "Encounter": 53, "Condition": 49,
			"Observation": 73, "Practitioner": 7, "Organization": 4, "Group": 4,
		}},
		{"defaults", Config{}, map[string]int{
			"Patient": 200, "Coverage": 200, "ExplanationOfBenefit": 693, "Encounter": 446, "Condition": 470,
			"Observation": 554, "Practitioner": 7, "Organization": 4, "Group": 4,
		}},
		// The visits before a member's birth or coverage are drawn either
		// way; kept, they are 12% of the claims.
		{"implausible visits", Config{ImplausibleVisits: true}, map[string]int{
			"Patient": 200, "Coverage": 200, "ExplanationOfBenefit": 790, "Encounter": 509, "Condition": 515,
			"Observation": 624, "Practitioner": 7, "Organization": 4, "Group": 4,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, counts(s)); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeterminism(t *testing.T) {
	all := func(t *testing.T, cfg Config) map[string][][]byte {
		t.Helper()
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string][][]byte)
		for _, typ := range s.ResourceTypes() {
			out[typ] = s.Resources(typ)
		}
		return out
	}
	tests := []struct {
		name string
		a, b Config
		same bool
	}{
		{"same seed", Config{Members: 30, Seed: 7}, Config{Members: 30, Seed: 7}, true},
		{"zero seed is seed 1", Config{Members: 30}, Config{Members: 30, Seed: 1}, true},
		{"other seed", Config{Members: 30, Seed: 7}, Config{Members: 30, Seed: 8}, false},
		{"other start", Config{Members: 30}, Config{Members: 30, Start: DefaultStart.AddDate(0, 0, 1)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := all(t, tt.a), all(t, tt.b)
			if same := cmp.Equal(a, b, cmp.Comparer(bytes.Equal)); same != tt.same {
				t.Errorf("identical = %v, want %v", same, tt.same)
			}
		})
	}
	t.Run("member independent of population size", func(t *testing.T) {
		small, big := all(t, Config{Members: 5, Seed: 3}), all(t, Config{Members: 50, Seed: 3})
		if diff := cmp.Diff(small["Patient"], big["Patient"][:5], cmp.Comparer(bytes.Equal)); diff != "" {
			t.Errorf("first patients differ (-5 +50):\n%s", diff)
		}
	})
}

// TestResourceShapes checks every generated resource against the shapes the
// warehouse tables read.
func TestResourceShapes(t *testing.T) {
	cfg := Config{Members: 60, Seed: 2}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	type coding struct{ System, Code string }
	type concept struct{ Coding []coding }
	has := func(c concept, system, code string) bool {
		return slices.Contains(c.Coding, coding{system, code})
	}
	oldest := s.Config().Start.AddDate(-1, 0, -1)
	for _, typ := range s.ResourceTypes() {
		for _, raw := range s.Resources(typ) {
			var r struct {
				ResourceType, ID string
				Meta             struct {
					LastUpdated time.Time
					Profile     []string
				}
			}
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if r.ResourceType != typ || r.ID == "" || len(r.Meta.Profile) == 0 {
				t.Errorf("%s/%s: bad resourceType, id or profile: %.200s", typ, r.ID, raw)
			}
			if lu := r.Meta.LastUpdated; !lu.Before(s.Config().Start) || lu.Before(oldest) {
				t.Errorf("%s/%s: lastUpdated %v not in the year before the start", typ, r.ID, lu)
			}
		}
	}

	kinds := make(map[string]int)
	for _, raw := range s.Resources("ExplanationOfBenefit") {
		var e struct {
			ID            string
			Type, SubType concept
			Patient       struct{ Reference string }
			Diagnosis     []struct{ Sequence int }
			Procedure     []struct{ ProcedureCodeableConcept concept }
			CareTeam      []struct{ Provider struct{ Identifier coding } }
			Item          []struct {
				Sequence         int
				ProductOrService concept
				Revenue          *concept
				ServicedDate     string
				ServicedPeriod   *struct{ Start, End string }
				Adjudication     []struct {
					Category concept
					Amount   struct {
						Value    json.Number
						Currency string
					}
				}
			}
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		kind := e.Type.Coding[0].Code
		if len(e.SubType.Coding) > 0 {
			kind = e.SubType.Coding[0].Code
		}
		kinds[kind]++
		if !strings.HasPrefix(e.Patient.Reference, "Patient/pat-") || len(e.CareTeam) == 0 || e.CareTeam[0].Provider.Identifier.System != sysNPI {
			t.Errorf("%s: patient or careTeam NPI missing", e.ID)
		}
		if kind != "pharmacy" && len(e.Diagnosis) == 0 {
			t.Errorf("%s: no diagnosis", e.ID)
		}
		if kind == "inpatient" && len(e.Procedure) == 0 {
			t.Errorf("%s: inpatient without procedure", e.ID)
		}
		for k, it := range e.Item {
			if it.Sequence != k+1 {
				t.Errorf("%s item %d: sequence %d", e.ID, k, it.Sequence)
			}
			switch kind {
			case "professional":
				if !slices.ContainsFunc(it.ProductOrService.Coding, func(c coding) bool { return c.System == sysCPT || c.System == sysHCPCS }) || it.ServicedDate == "" {
					t.Errorf("%s item %d: professional line without CPT/HCPCS or date", e.ID, k)
				}
			case "pharmacy":
				if it.ProductOrService.Coding[0].System != sysNDC {
					t.Errorf("%s item %d: pharmacy line without NDC", e.ID, k)
				}
			case "inpatient", "outpatient":
				if it.Revenue == nil || it.Revenue.Coding[0].System != sysRevenue {
					t.Errorf("%s item %d: institutional line without revenue code", e.ID, k)
				}
			}
			// eligible = deductible + copay + coinsurance + paid, in cents.
			amt := make(map[string]int64)
			for _, a := range it.Adjudication {
				v := string(a.Amount.Value)
				if i := strings.IndexByte(v, '.'); i < 0 || len(v)-i != 3 || a.Amount.Currency != "USD" {
					t.Fatalf("%s item %d: amount %s %s not 2-decimal USD", e.ID, k, v, a.Amount.Currency)
				}
				cents, _ := strconv.ParseInt(strings.Replace(v, ".", "", 1), 10, 64)
				amt[a.Category.Coding[0].Code] = cents
			}
			if amt["eligible"] != amt["deductible"]+amt["copay"]+amt["coinsurance"]+amt["paidtoprovider"] {
				t.Errorf("%s item %d: adjudication does not add up: %v", e.ID, k, amt)
			}
		}
		if n := len(e.Item); n < 1 || n > 5 || (kind != "pharmacy" && n < 2) {
			t.Errorf("%s (%s): %d items", e.ID, kind, n)
		}
	}
	for _, k := range []string{"professional", "inpatient", "outpatient", "pharmacy"} {
		if kinds[k] == 0 {
			t.Errorf("no %s EOB in %v", k, kinds)
		}
	}

	for _, raw := range s.Resources("Patient") {
		var p struct {
			Identifier []struct{ Type concept }
			Extension  []struct {
				URL       string
				Extension []struct {
					URL         string
					ValueCoding coding
				}
			}
			Gender, BirthDate string
			Address           []struct{ State, PostalCode string }
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Identifier) == 0 || !has(p.Identifier[0].Type, sysV2_0203, "MB") || len(p.Extension) != 2 ||
			p.Extension[0].Extension[0].ValueCoding.System != sysOMB || p.Gender == "" || p.BirthDate == "" || p.Address[0].State == "" {
			t.Errorf("patient shape: %s", raw)
		}
	}

	classes, bp := make(map[string]int), 0
	for _, raw := range s.Resources("Encounter") {
		var e struct{ Class coding }
		_ = json.Unmarshal(raw, &e)
		classes[e.Class.Code]++
	}
	for _, raw := range s.Resources("Observation") {
		var o struct {
			Code      concept
			Component []struct {
				Code          concept
				ValueQuantity struct{ Code string }
			}
		}
		_ = json.Unmarshal(raw, &o)
		if has(o.Code, sysLOINC, "85354-9") {
			bp++
			if len(o.Component) != 2 || !has(o.Component[0].Code, sysLOINC, "8480-6") || !has(o.Component[1].Code, sysLOINC, "8462-4") || o.Component[0].ValueQuantity.Code != "mm[Hg]" {
				t.Errorf("blood pressure shape: %s", raw)
			}
		}
	}
	if classes["AMB"] == 0 || classes["EMER"] == 0 || classes["IMP"] == 0 || bp == 0 {
		t.Errorf("encounter classes %v, %d blood pressures", classes, bp)
	}

	// Every member is in exactly one group.
	seen := make(map[string]int)
	for _, raw := range s.Resources("Group") {
		var g struct {
			Type           string
			Actual         bool
			ManagingEntity struct{ Identifier coding }
			Member         []struct{ Entity struct{ Reference string } }
		}
		_ = json.Unmarshal(raw, &g)
		if g.Type != "person" || !g.Actual || g.ManagingEntity.Identifier.System != sysNPI || len(g.Member) == 0 {
			t.Errorf("group shape: %.300s", raw)
		}
		for _, m := range g.Member {
			seen[m.Entity.Reference]++
		}
	}
	if len(seen) != cfg.Members {
		t.Errorf("%d members in groups, want %d", len(seen), cfg.Members)
	}
	for m, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d groups", m, n)
		}
	}
}

func TestOneUpLifecycle(t *testing.T) {
	s, ts := start(t, Config{Members: 20, PollsBeforeReady: 2, RetryAfter: 1500 * time.Millisecond, MaxLinesPerFile: 40})
	token := getToken(t, ts.URL)
	base := OneUpBase(ts.URL, DefaultTenant)

	r := do(t, http.MethodGet, base+"/$export", token, async)
	if r.status != http.StatusAccepted {
		t.Fatalf("kick-off: %d %s", r.status, r.body)
	}
	status := r.header.Get("Content-Location")
	if !strings.HasPrefix(status, base+"/$export/job/") {
		t.Fatalf("Content-Location %q", status)
	}
	if got, want := outcomeText(t, r), "information|informational|Asynchronous export running. Track job at "+status; got != want {
		t.Errorf("kick-off outcome %q, want %q", got, want)
	}

	for _, progress := range []string{"in progress 33%", "in progress 66%"} {
		r = do(t, http.MethodGet, status, token, nil)
		if r.status != http.StatusAccepted || r.header.Get("Retry-After") != "2" || r.header.Get("X-Progress") != progress {
			t.Fatalf("poll: %d Retry-After %q X-Progress %q", r.status, r.header.Get("Retry-After"), r.header.Get("X-Progress"))
		}
	}
	r = do(t, http.MethodGet, status, token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("manifest: %d %s", r.status, r.body)
	}
	var m manifest
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatal(err)
	}
	if m.TransactionTime != "2026-01-05T00:00:00Z" || m.Request != base+"/$export" || !m.RequiresAccessToken ||
		m.Error == nil || len(m.Error) != 0 || m.Status != "Successful" || m.Batches == nil || *m.Batches != len(m.Output) {
		t.Errorf("manifest header: %s", r.body)
	}
	got := download(t, m, token)
	total := 0
	for _, typ := range s.ResourceTypes() {
		if diff := cmp.Diff(s.Resources(typ), got[typ], cmp.Comparer(bytes.Equal)); diff != "" {
			t.Errorf("%s (-server +export):\n%s", typ, diff)
		}
		total += s.Count(typ)
	}
	if m.ResourceCount == nil || *m.ResourceCount != total {
		t.Errorf("resourceCount %v, want %d", m.ResourceCount, total)
	}
	if n := len(m.Output); n <= len(s.ResourceTypes()) {
		t.Errorf("%d files: MaxLinesPerFile 40 should split some types", n)
	}
	for _, out := range m.Output {
		if out.Count > 40 {
			t.Errorf("%s: %d lines in one file", out.URL, out.Count)
		}
	}

	if r = do(t, http.MethodDelete, status, token, nil); r.status != http.StatusAccepted {
		t.Errorf("DELETE: %d", r.status)
	}
	if r = do(t, http.MethodGet, status, token, nil); r.status != http.StatusNotFound {
		t.Errorf("status after DELETE: %d", r.status)
	}
	if r = do(t, http.MethodGet, m.Output[0].URL, token, nil); r.status != http.StatusNotFound {
		t.Errorf("file after DELETE: %d", r.status)
	}
}

func TestStandardFlavour(t *testing.T) {
	s, ts := start(t, Config{Members: 10, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	base := StandardBase(ts.URL)

	r := do(t, http.MethodGet, base+"/Patient/$export?_type=Patient,Coverage", token, async)
	if r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Fatalf("kick-off: %d %q", r.status, r.body)
	}
	status := r.header.Get("Content-Location")
	if !strings.HasPrefix(status, base+"/$export-status/") {
		t.Fatalf("Content-Location %q", status)
	}
	r = do(t, http.MethodGet, status, token, nil)
	if r.status != http.StatusOK {
		t.Fatalf("first poll with PollsBeforeReady -1: %d", r.status)
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "batches", "resourceCount"} {
		if _, ok := raw[k]; ok {
			t.Errorf("standard manifest has 1up field %q", k)
		}
	}
	var m manifest
	_ = json.Unmarshal(r.body, &m)
	for _, out := range m.Output {
		if !strings.HasPrefix(out.URL, base+"/$export-file/") {
			t.Errorf("file URL %q", out.URL)
		}
	}
	got := download(t, m, token)
	if len(got["Patient"]) != s.Count("Patient") || len(got["Coverage"]) != s.Count("Coverage") || len(got) != 2 {
		t.Errorf("got types %v", len(got))
	}
	// A 1up job is not reachable through the standard routes and back.
	_, m1 := export(t, OneUpBase(ts.URL, DefaultTenant)+"/$export?_type=Group", token)
	id := strings.TrimPrefix(m1.Output[0].URL, OneUpBase(ts.URL, DefaultTenant)+"/$export/file/")
	id, _, _ = strings.Cut(id, "_")
	if r := do(t, http.MethodGet, base+"/$export-status/"+id, token, nil); r.status != http.StatusNotFound {
		t.Errorf("1up job via standard status: %d", r.status)
	}
}

func TestOmitContentLocation(t *testing.T) {
	_, ts := start(t, Config{Members: 5, OmitContentLocation: true})
	token := getToken(t, ts.URL)
	r := do(t, http.MethodGet, OneUpBase(ts.URL, DefaultTenant)+"/$export", token, async)
	if r.status != http.StatusAccepted || r.header.Get("Content-Location") != "" {
		t.Fatalf("kick-off: %d, Content-Location %q", r.status, r.header.Get("Content-Location"))
	}
	text := outcomeText(t, r)
	_, status, ok := strings.Cut(text, "Track job at ")
	if !ok {
		t.Fatalf("no job URL in %q", text)
	}
	if r = do(t, http.MethodGet, status, token, nil); r.status != http.StatusAccepted {
		t.Errorf("status at body URL: %d", r.status)
	}
}

func TestAuth(t *testing.T) {
	s, ts := start(t, Config{Members: 5, TokenTTL: 10 * time.Minute})
	tokenURL := ts.URL + TokenPath
	export := OneUpBase(ts.URL, DefaultTenant) + "/$export"

	t.Run("token", func(t *testing.T) {
		tests := []struct {
			name, url, id, secret string
			basic                 bool
			want                  int
			wantErr               string
		}{
			{"form", tokenURL, DefaultClientID, DefaultClientSecret, false, 200, ""},
			{"basic", tokenURL, DefaultClientID, DefaultClientSecret, true, 200, ""},
			{"alias path", ts.URL + "/auth/token", DefaultClientID, DefaultClientSecret, false, 200, ""},
			{"bad secret", tokenURL, DefaultClientID, "nope", false, 401, "invalid_client"},
			{"bad secret basic", tokenURL, DefaultClientID, "nope", true, 401, "invalid_client"},
			{"unknown client", tokenURL, "someone", DefaultClientSecret, false, 401, "invalid_client"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := tokenRequest(t, tt.url, tt.id, tt.secret, tt.basic)
				var body struct {
					Error, AccessToken, TokenType, Scope string
					ExpiresIn                            int `json:"expires_in"`
				}
				_ = json.Unmarshal(r.body, &body)
				if r.status != tt.want || body.Error != tt.wantErr {
					t.Fatalf("status %d body %s, want %d %q", r.status, r.body, tt.want, tt.wantErr)
				}
				if tt.want == 200 && (!strings.Contains(string(r.body), `"token_type":"bearer"`) || body.ExpiresIn != 600 || body.Scope != "bulk-data|user/*.rs") {
					t.Errorf("token body %s", r.body)
				}
			})
		}
	})

	token := getToken(t, ts.URL)
	tests := []struct {
		name    string
		token   string
		advance time.Duration
		want    int
	}{
		{"no token", "", 0, 401},
		{"unknown token", "not-a-token", 0, 401},
		{"valid token", token, 0, 202},
		{"one second before expiry", token, 10*time.Minute - time.Second, 202},
		{"expired", token, time.Second, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Clock().Advance(tt.advance)
			r := do(t, http.MethodGet, export, tt.token, async)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want == 401 {
				outcomeText(t, r)
				if r.header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	t.Run("request log", func(t *testing.T) {
		var withBearer, unauthorized int
		for _, l := range s.Requests() {
			if l.Authorization {
				withBearer++
			}
			if l.Status == 401 && l.Path == strings.TrimPrefix(export, ts.URL) {
				unauthorized++
			}
		}
		if withBearer != 4 || unauthorized != 3 {
			t.Errorf("log: %d with bearer (want 4), %d unauthorized exports (want 3)", withBearer, unauthorized)
		}
	})
}

func TestKickOffErrors(t *testing.T) {
	_, ts := start(t, Config{Members: 5})
	token := getToken(t, ts.URL)
	oneUp := OneUpBase(ts.URL, DefaultTenant)
	tests := []struct {
		name   string
		url    string
		header map[string]string
		want   int
	}{
		{"no Prefer", oneUp + "/$export", nil, 400},
		{"unknown _type", oneUp + "/$export?_type=Patient,Spaceship", async, 400},
		{"bad _since", oneUp + "/$export?_since=yesterday", async, 400},
		{"bad _outputFormat", oneUp + "/$export?_outputFormat=text/csv", async, 400},
		{"unknown tenant", OneUpBase(ts.URL, "moose") + "/$export", async, 404},
		{"unknown group", oneUp + "/Group/nope/$export", async, 404},
		{"unknown file", oneUp + "/$export/file/abc_Patient-1.ndjson", nil, 404},
		{"unknown job", StandardBase(ts.URL) + "/$export-status/abc", nil, 404},
		{"unknown route", StandardBase(ts.URL) + "/Patient", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, tt.url, token, tt.header)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if sev, _, _ := strings.Cut(outcomeText(t, r), "|"); sev != "error" {
				t.Errorf("severity %q", sev)
			}
		})
	}
}

func TestTypeFilter(t *testing.T) {
	s, ts := start(t, Config{Members: 10})
	token := getToken(t, ts.URL)
	tests := []struct {
		name, path string
		want       map[string]int
	}{
		{"two types", "/$export?_type=Observation,Patient", map[string]int{"Patient": s.Count("Patient"), "Observation": s.Count("Observation")}},
		{"patient level drops non-compartment types", "/Patient/$export?_type=Organization,Coverage", map[string]int{"Coverage": s.Count("Coverage")}},
		{"all", "/$export", counts(s)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, m := export(t, StandardBase(ts.URL)+tt.path, token)
			got := make(map[string]int)
			for typ, lines := range download(t, m, token) {
				got[typ] = len(lines)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("types (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSince(t *testing.T) {
	s, ts := start(t, Config{Members: 15})
	token := getToken(t, ts.URL)
	base := OneUpBase(ts.URL, DefaultTenant)

	cut := DefaultStart.AddDate(0, 0, -60)
	want := make(map[string]int)
	for _, typ := range s.ResourceTypes() {
		for _, raw := range s.Resources(typ) {
			var r struct {
				Meta struct{ LastUpdated time.Time }
			}
			_ = json.Unmarshal(raw, &r)
			if !r.Meta.LastUpdated.Before(cut) {
				want[typ]++
			}
		}
	}
	_, m := export(t, base+"/$export?_since="+url.QueryEscape(cut.Format(time.RFC3339)), token)
	got := make(map[string]int)
	for _, out := range m.Output {
		got[out.Type] += out.Count
	}
	if diff := cmp.Diff(want, got); diff != "" || len(got) == 0 {
		t.Errorf("_since counts (-want +got):\n%s", diff)
	}

	// Incremental: the watermark is the manifest transactionTime; touch one
	// resource later by the sandbox clock and only it comes back.
	_, full := export(t, base+"/$export", token)
	s.Clock().Advance(24 * time.Hour)
	if err := s.Touch("Patient", "pat-0003"); err != nil {
		t.Fatal(err)
	}
	token = getToken(t, ts.URL) // the first one expired with the day
	_, inc := export(t, base+"/$export?_since="+url.QueryEscape(full.TransactionTime), token)
	lines := download(t, inc, token)
	if len(lines) != 1 || len(lines["Patient"]) != 1 || !bytes.Contains(lines["Patient"][0], []byte(`"id":"pat-0003"`)) ||
		!bytes.Contains(lines["Patient"][0], []byte(`"lastUpdated":"2026-01-06T00:00:00Z"`)) {
		t.Errorf("incremental export: %q", lines)
	}
	if inc.TransactionTime != "2026-01-06T00:00:00Z" {
		t.Errorf("transactionTime %s", inc.TransactionTime)
	}
}

func TestGroupExport(t *testing.T) {
	s, ts := start(t, Config{Members: 25})
	token := getToken(t, ts.URL)
	total := 0
	for _, gid := range s.GroupIDs() {
		t.Run(gid, func(t *testing.T) {
			_, m := export(t, OneUpBase(ts.URL, DefaultTenant)+"/Group/"+gid+"/$export", token)
			got := download(t, m, token)
			if len(got["Group"]) != 1 || !bytes.Contains(got["Group"][0], []byte(`"id":"`+gid+`"`)) {
				t.Fatalf("group file: %q", got["Group"])
			}
			var g struct {
				Member []struct{ Entity struct{ Reference string } }
			}
			_ = json.Unmarshal(got["Group"][0], &g)
			members := make(map[string]bool)
			for _, mb := range g.Member {
				members[mb.Entity.Reference] = true
			}
			if len(got["Patient"]) != len(members) {
				t.Errorf("%d patients, %d members", len(got["Patient"]), len(members))
			}
			for typ, lines := range got {
				if typ == "Group" {
					continue
				}
				if typ == "Organization" || typ == "Practitioner" {
					t.Errorf("non-compartment type %s exported", typ)
				}
				for _, l := range lines {
					var r struct {
						ResourceType, ID              string
						Subject, Patient, Beneficiary *struct{ Reference string }
					}
					_ = json.Unmarshal(l, &r)
					ref := "Patient/" + r.ID
					for _, p := range []*struct{ Reference string }{r.Subject, r.Patient, r.Beneficiary} {
						if p != nil {
							ref = p.Reference
						}
					}
					if !members[ref] {
						t.Errorf("%s/%s belongs to %s, not in the group", r.ResourceType, r.ID, ref)
					}
				}
			}
			total += len(got["Patient"])
		})
	}
	if total != s.Count("Patient") {
		t.Errorf("groups hold %d patients, want %d", total, s.Count("Patient"))
	}
}

func TestSnapshotIsolation(t *testing.T) {
	s, ts := start(t, Config{Members: 8, PollsBeforeReady: 3})
	token := getToken(t, ts.URL)
	base := StandardBase(ts.URL)
	before := s.Resources("Patient")

	r := do(t, http.MethodGet, base+"/$export?_type=Patient", token, async)
	status := r.header.Get("Content-Location")
	s.Clock().Advance(30 * time.Minute)
	if err := s.Touch("Patient", "pat-0001"); err != nil {
		t.Fatal(err)
	}
	added := []byte(`{"resourceType":"Patient","id":"pat-new","gender":"unknown"}`)
	if err := s.Put(added); err != nil {
		t.Fatal(err)
	}
	m := poll(t, status, token)
	if diff := cmp.Diff(before, download(t, m, token)["Patient"], cmp.Comparer(bytes.Equal)); diff != "" {
		t.Errorf("running job changed (-before +got):\n%s", diff)
	}
	if m.TransactionTime != "2026-01-05T00:00:00Z" {
		t.Errorf("transactionTime %s, want the kick-off time", m.TransactionTime)
	}

	_, m2 := export(t, base+"/$export?_type=Patient", token)
	after := download(t, m2, token)["Patient"]
	if len(after) != len(before)+1 || bytes.Equal(after[0], before[0]) ||
		!bytes.Contains(after[len(after)-1], []byte(`"meta":{"lastUpdated":"2026-01-05T00:30:00Z"}`)) {
		t.Errorf("new job does not see the changes: %q", after)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{Members: -1}, {Tenant: "a/b"}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

// spillFiles counts the sandbox spill files this process holds open
// (deleted from the folder at once, they live as long as their
// descriptor); -1 where /proc cannot tell.
func spillFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(target, "fhirlake-sandbox-") {
			n++
		}
	}
	return n
}

// TestDeletedJobGivesItsDiskBack: an export's files live in a spill file
// of the job's own, which goes (its space back to the disk) once the job
// is deleted, so that a sandbox serving export after export does not
// grow on disk.
func TestDeletedJobGivesItsDiskBack(t *testing.T) {
	if spillFiles(t) < 0 {
		t.Skip("no /proc/self/fd to count open files")
	}
	_, ts := start(t, Config{Members: 20})
	token := getToken(t, ts.URL)
	base := OneUpBase(ts.URL, DefaultTenant)
	before := spillFiles(t)
	var statuses []string
	for range 3 {
		status, m := export(t, base+"/$export", token)
		download(t, m, token)
		statuses = append(statuses, status)
	}
	if n := spillFiles(t); n != before+3 {
		t.Fatalf("%d spill files with three jobs, want %d", n, before+3)
	}
	for _, status := range statuses {
		if r := do(t, http.MethodDelete, status, token, nil); r.status != http.StatusAccepted {
			t.Fatalf("DELETE: %d", r.status)
		}
	}
	// The descriptor closes when the garbage collector finds the job's
	// file unreachable.
	deadline := time.Now().Add(10 * time.Second)
	for spillFiles(t) != before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if n := spillFiles(t); n != before {
		t.Errorf("%d spill files after the jobs were deleted, want the store's %d", n, before)
	}
}
