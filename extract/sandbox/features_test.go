package sandbox

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"
)

func parameters(kv ...string) []byte {
	var ps []map[string]any
	for i := 0; i < len(kv); i += 2 {
		name, v := kv[i], kv[i+1]
		p := map[string]any{"name": name}
		switch {
		case name == "patient":
			p["valueReference"] = map[string]string{"reference": v}
		case name == "_since":
			p["valueInstant"] = v
		default:
			p["valueString"] = v
		}
		ps = append(ps, p)
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps})
	return b
}

func TestKickOffVariants(t *testing.T) {
	s, ts := start(t, Config{Members: 12, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	gid := s.GroupIDs()[0]
	members, _ := s.store.groupMembers(gid)
	var oneMember string
	for m := range members {
		oneMember = m
		break
	}
	post := map[string]string{"Prefer": "respond-async", "Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
	cut := DefaultStart.AddDate(0, 0, -90)
	newer := 0
	for _, raw := range s.Resources("Observation") {
		var r struct {
			Meta struct{ LastUpdated time.Time }
		}
		_ = json.Unmarshal(raw, &r)
		if !r.Meta.LastUpdated.Before(cut) {
			newer++
		}
	}
	tests := []struct {
		name   string
		method string
		path   string // below a base
		header map[string]string
		body   []byte
		want   int
		counts map[string]int // lines by type, when 202
		text   string         // OperationOutcome text substring, when not 202
	}{
		{"POST _type", "POST", "/$export", post, parameters("_type", "Patient", "_type", "Coverage"), 202,
			map[string]int{"Patient": 12, "Coverage": 12}, ""},
		{"POST patient restricts", "POST", "/Group/" + gid + "/$export", post,
			parameters("patient", "Patient/"+oneMember, "_type", "Patient,Coverage"), 202, map[string]int{"Patient": 1, "Coverage": 1}, ""},
		{"POST patient at system level", "POST", "/$export", post, parameters("patient", "Patient/pat-0001"), 400, nil, "patient applies"},
		{"POST unknown patient", "POST", "/Patient/$export", post, parameters("patient", "Patient/nobody"), 400, nil, "unknown patient"},
		{"POST unknown parameter", "POST", "/$export", post, parameters("_count", "5"), 400, nil, "unknown parameter _count"},
		{"POST not Parameters", "POST", "/$export", post, []byte(`{"resourceType":"Patient"}`), 400, nil, "Parameters"},
		{"GET unknown parameter", "GET", "/$export?_foo=1", async, nil, 400, nil, "unknown parameter _foo"},
		{"no Accept", "GET", "/$export", map[string]string{"Prefer": "respond-async"}, nil, 400, nil, "Accept"},
		{"_outputFormat ndjson", "GET", "/$export?_type=Group&_outputFormat=ndjson", async, nil, 202, map[string]int{"Group": 4}, ""},
		{"typeFilter _lastUpdated", "GET", "/$export?_type=Observation&_typeFilter=" + url.QueryEscape("Observation?_lastUpdated=ge"+cut.Format(time.RFC3339)), async, nil, 202,
			map[string]int{"Observation": newer}, ""},
		{"typeFilter _id list, escaped comma", "GET", "/$export?_type=Patient&_typeFilter=" + url.QueryEscape("Patient?_id=pat-0001%2Cpat-0002") + "," + url.QueryEscape("Patient?_id=pat-0003"), async, nil, 202,
			map[string]int{"Patient": 3}, ""},
		{"typeFilter POST", "POST", "/$export", post, parameters("_type", "Coverage", "_typeFilter", "Coverage?status=cancelled"), 202, map[string]int{}, ""},
		{"typeFilter unsupported", "GET", "/$export?_typeFilter=" + url.QueryEscape("Observation?code=4548-4"), async, nil, 400, nil, "unsupported _typeFilter"},
		{"typeFilter no prefix", "GET", "/$export?_typeFilter=" + url.QueryEscape("Observation?_lastUpdated=2025"), async, nil, 400, nil, "unsupported _typeFilter"},
		{"organizeOutputBy of another type", "GET", "/$export?organizeOutputBy=Encounter", async, nil, 400, nil, "only Patient"},
		{"includeAssociatedData", "GET", "/$export?_type=Group&includeAssociatedData=LatestProvenanceResources", async, nil, 202, map[string]int{"Group": 4}, ""},
		{"davinci", "GET", "/Group/" + gid + "/$davinci-data-export?_type=Group&exportType=" + url.QueryEscape("hl7.fhir.us.davinci-pdex#provider-download"), async, nil, 202,
			map[string]int{"Group": 1}, ""},
		{"davinci POST payertopayer", "POST", "/Group/" + gid + "/$davinci-data-export", post, parameters("exportType", "hl7.fhir.us.davinci-pdex#payertopayer", "_type", "Patient"), 202,
			map[string]int{"Patient": len(members)}, ""},
		{"davinci without exportType", "GET", "/Group/" + gid + "/$davinci-data-export", async, nil, 400, nil, "exportType"},
		{"davinci bad exportType", "GET", "/Group/" + gid + "/$davinci-data-export?exportType=x", async, nil, 400, nil, "exportType"},
		{"exportType on $export", "GET", "/$export?exportType=" + url.QueryEscape("hl7.fhir.us.davinci-pdex#payertopayer"), async, nil, 400, nil, "exportType"},
		{"two _since", "GET", "/$export?_since=2025-01-01T00:00:00Z&_since=2025-02-01T00:00:00Z", async, nil, 400, nil, "more than once"},
	}
	for _, fl := range []struct{ name, base string }{{"1up", OneUpBase(ts.URL, DefaultTenant)}, {"standard", StandardBase(ts.URL)}} {
		for _, tt := range tests {
			t.Run(fl.name+"/"+tt.name, func(t *testing.T) {
				r := send(t, tt.method, fl.base+tt.path, token, tt.header, tt.body)
				if r.status != tt.want {
					t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
				}
				if tt.want != 202 {
					if got := outcomeText(t, r); !strings.Contains(got, tt.text) {
						t.Errorf("outcome %q lacks %q", got, tt.text)
					}
					return
				}
				m := poll(t, r.header.Get("Content-Location"), token)
				got := make(map[string]int)
				for typ, lines := range download(t, m, token) {
					got[typ] = len(lines)
				}
				if diff := cmp.Diff(tt.counts, got); diff != "" {
					t.Errorf("lines (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestElements(t *testing.T) {
	_, ts := start(t, Config{Members: 3, PollsBeforeReady: -1})
	token := getToken(t, ts.URL)
	_, m := export(t, StandardBase(ts.URL)+"/$export?_type=Patient,Group&_elements=Patient.birthDate,gender", token)
	got := download(t, m, token)
	var p map[string]any
	_ = json.Unmarshal(got["Patient"][0], &p)
	if len(p) != 5 || p["birthDate"] == nil || p["gender"] == nil || !bytes.Contains(got["Patient"][0], []byte(`"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"`)) {
		t.Errorf("subsetted patient: %s", got["Patient"][0])
	}
	// Group has no gender element: only the base keys stay.
	if !bytes.HasPrefix(got["Group"][0], []byte(`{"resourceType":"Group","id":`)) || bytes.Contains(got["Group"][0], []byte(`"member"`)) {
		t.Errorf("subsetted group: %s", got["Group"][0])
	}
	if r := do(t, http.MethodGet, StandardBase(ts.URL)+"/$export?_elements=name.family", token, async); r.status != 400 {
		t.Errorf("nested element: %d", r.status)
	}
}

// assertion signs a client assertion with key (kid "k1").
func assertion(t *testing.T, alg jose.SignatureAlgorithm, key any, claims jwt.Claims) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPrivateKeyJWT(t *testing.T) {
	s, ts, alt := startAlt(t, Config{Members: 2})
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := func(pub any) []byte {
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1"}}})
		return b
	}
	if err := s.RegisterClient("rsa-client", set(&rsaKey.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient("ec-client", set(&ecKey.PublicKey)); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterClient("bad", set(rsaKey)); err == nil {
		t.Error("private key registered")
	}
	now := s.Clock().Now()
	aud := ts.URL + TokenPath
	claims := func(id, jti string, aud string, exp time.Duration) jwt.Claims {
		return jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{aud}, ID: jti, Expiry: jwt.NewNumericDate(now.Add(exp))}
	}
	tests := []struct {
		name      string
		tokenURL  string
		assertion string
		typ       string
		want      int
	}{
		{"RS384", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j1", aud, 4*time.Minute)), JWTBearer, 200},
		{"ES384", aud, assertion(t, jose.ES384, ecKey, claims("ec-client", "j1", aud, time.Minute)), JWTBearer, 200},
		{"alt host aud", alt + TokenPath, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j2", alt+TokenPath, time.Minute)), JWTBearer, 200},
		{"primary aud asked on alt host", alt + TokenPath, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j3", aud, time.Minute)), JWTBearer, 200},
		{"replayed jti", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j1", aud, time.Minute)), JWTBearer, 401},
		{"RS256", aud, assertion(t, jose.RS256, rsaKey, claims("rsa-client", "j4", aud, time.Minute)), JWTBearer, 401},
		{"wrong key", aud, assertion(t, jose.RS384, otherKey, claims("rsa-client", "j5", aud, time.Minute)), JWTBearer, 401},
		{"unknown client", aud, assertion(t, jose.RS384, rsaKey, claims("who", "j6", aud, time.Minute)), JWTBearer, 401},
		{"wrong aud", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j7", "https://elsewhere/token", time.Minute)), JWTBearer, 401},
		{"expired", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j8", aud, -time.Second)), JWTBearer, 401},
		{"exp too far", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j9", aud, 6*time.Minute)), JWTBearer, 401},
		{"no jti", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "", aud, time.Minute)), JWTBearer, 401},
		{"sub differs", aud, assertion(t, jose.RS384, rsaKey, jwt.Claims{Issuer: "rsa-client", Subject: "x", Audience: jwt.Audience{aud}, ID: "j10", Expiry: jwt.NewNumericDate(now.Add(time.Minute))}), JWTBearer, 401},
		{"wrong assertion type", aud, assertion(t, jose.RS384, rsaKey, claims("rsa-client", "j11", aud, time.Minute)), "urn:other", 401},
		{"garbage", aud, "not.a.jwt", JWTBearer, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {tt.typ}, "client_assertion": {tt.assertion}, "scope": {"system/*.read"}}
			r := send(t, http.MethodPost, tt.tokenURL, "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(form.Encode()))
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			var body struct{ Error, AccessToken string }
			_ = json.Unmarshal(r.body, &body)
			if tt.want == 401 && body.Error != "invalid_client" {
				t.Errorf("error %s", r.body)
			}
		})
	}
}

func consent(status, policy, start, end string) map[string]any {
	return map[string]any{"resourceType": "Consent", "status": status,
		"policy":    []map[string]string{{"uri": policy}},
		"provision": map[string]any{"period": map[string]string{"start": start, "end": end}}}
}

func matchBody(params ...any) []byte {
	var ps []map[string]any
	for i := 0; i < len(params); i += 2 {
		ps = append(ps, map[string]any{"name": params[i], "resource": params[i+1]})
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps})
	return b
}

func TestMemberMatch(t *testing.T) {
	s, ts := start(t, Config{Members: 8, PollsBeforeReady: -1})
	info, ok := s.MemberMatchInfo(4)
	if !ok || info.PatientID != "pat-0005" || info.MemberID == "" || info.SubscriberID == "" {
		t.Fatalf("MemberMatchInfo: %+v", info)
	}
	if _, ok := s.MemberMatchInfo(8); ok {
		t.Error("MemberMatchInfo past the end")
	}
	pat := map[string]any{"resourceType": "Patient", "name": []map[string]any{{"family": strings.ToUpper(info.Family)}}, "birthDate": info.BirthDate}
	covSub := map[string]any{"resourceType": "Coverage", "subscriberId": info.SubscriberID}
	covMB := map[string]any{"resourceType": "Coverage", "identifier": []map[string]any{{
		"type": map[string]any{"coding": []map[string]string{{"system": sysV2_0203U, "code": "MB"}}}, "value": info.MemberID}}}
	ok1 := consent("active", ConsentRegular, "2025-01-01", "2026-12-31")
	tokenFor := func(scope string) string {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}, "scope": {scope}}
		r := send(t, http.MethodPost, ts.URL+TokenPath, "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte(form.Encode()))
		var b struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(r.body, &b)
		return b.AccessToken
	}
	mm := tokenFor("member-match|read")
	bulk := tokenFor("bulk-data|user/*.rs")
	oneUp := ts.URL + "/v1/" + DefaultTenant + "/member-match/$member-match"
	tests := []struct {
		name  string
		url   string
		token string
		body  []byte
		want  int
		text  string // OperationOutcome code|text substring
	}{
		{"1up match by subscriberId", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", ok1), 200, ""},
		{"1up sandbox route, match by MB identifier", ts.URL + "/v1/" + DefaultTenant + "/member-match-sandbox/$member-match", mm,
			matchBody("MemberPatient", pat, "CoverageToMatch", covMB, "Consent", ok1, "CoverageToLink", map[string]any{"resourceType": "Coverage"}), 200, ""},
		{"standard", StandardBase(ts.URL) + "/Patient/$member-match", bulk, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", ok1), 200, ""},
		{"no member-match scope", oneUp, bulk, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", ok1), 403, ""},
		{"no token", oneUp, "", matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", ok1), 401, ""},
		{"missing Consent", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub), 422, "invalid|parameter Consent is required"},
		{"duplicate MemberPatient", oneUp, mm, matchBody("MemberPatient", pat, "MemberPatient", pat, "CoverageToMatch", covSub, "Consent", ok1), 422, "invalid|parameter MemberPatient given more"},
		{"wrong resourceType", oneUp, mm, matchBody("MemberPatient", covSub, "CoverageToMatch", covSub, "Consent", ok1), 422, "invalid|parameter MemberPatient must hold"},
		{"no birthDate", oneUp, mm, matchBody("MemberPatient", map[string]any{"resourceType": "Patient", "name": []map[string]any{{"family": "X"}}}, "CoverageToMatch", covSub, "Consent", ok1), 422, "invalid|parameter MemberPatient"},
		{"coverage without ids", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", map[string]any{"resourceType": "Coverage"}, "Consent", ok1), 422, "invalid|parameter CoverageToMatch"},
		{"sensitive only", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", consent("active", ConsentSensitive, "2025-01-01", "2026-12-31")), 422, "business-rule|Consent rejected: "},
		{"expired consent", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", consent("active", ConsentRegular, "2024-01-01", "2025-12-31")), 422, "business-rule|Consent rejected: "},
		{"inactive consent", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", consent("inactive", ConsentRegular, "2025-01-01", "2026-12-31")), 422, "business-rule|Consent rejected: "},
		{"unknown policy", oneUp, mm, matchBody("MemberPatient", pat, "CoverageToMatch", covSub, "Consent", consent("active", "http://x", "2025-01-01", "2026-12-31")), 422, "invalid|parameter Consent"},
		{"no match", oneUp, mm, matchBody("MemberPatient", map[string]any{"resourceType": "Patient", "name": []map[string]any{{"family": "Nobody"}}, "birthDate": info.BirthDate}, "CoverageToMatch", covSub, "Consent", ok1), 422, "not-found|No unique member match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, http.MethodPost, tt.url, tt.token, map[string]string{"Content-Type": "application/fhir+json"}, tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.text != "" {
				if got := outcomeText(t, r); !strings.Contains(strings.Replace(got, "error|", "", 1), tt.text) {
					t.Errorf("outcome %q lacks %q", got, tt.text)
				}
			}
			if tt.want != 200 {
				return
			}
			var out struct {
				ResourceType string
				Parameter    []struct {
					Name            string
					ValueString     string
					ValueReference  struct{ Reference string }
					ValueIdentifier struct {
						Type struct {
							Coding []struct{ System, Code string }
						}
						System, Value string
					}
				}
			}
			_ = json.Unmarshal(r.body, &out)
			if len(out.Parameter) < 2 || out.Parameter[0].Name != "MemberIdentifier" || out.Parameter[0].ValueIdentifier.Value != info.MemberID ||
				out.Parameter[0].ValueIdentifier.Type.Coding[0].Code != "UMB" || out.Parameter[1].ValueReference.Reference != "Patient/"+info.PatientID {
				t.Fatalf("match: %s", r.body)
			}
			if strings.HasPrefix(tt.url, StandardBase(ts.URL)) {
				if len(out.Parameter) != 2 {
					t.Errorf("standard answer has groupId: %s", r.body)
				}
				return
			}
			gid := out.Parameter[2].ValueString
			if out.Parameter[2].Name != "groupId" || gid == "" {
				t.Fatalf("no groupId: %s", r.body)
			}
			_, m := export(t, OneUpBase(ts.URL, DefaultTenant)+"/Group/"+gid+"/$export", bulk)
			got := download(t, m, bulk)
			if len(got["Patient"]) != 1 || !bytes.Contains(got["Patient"][0], []byte(`"id":"`+info.PatientID+`"`)) || len(got["Coverage"]) != 1 || len(got["Group"]) != 1 {
				t.Errorf("group export: %d patients, %d coverages", len(got["Patient"]), len(got["Coverage"]))
			}
		})
	}
}
