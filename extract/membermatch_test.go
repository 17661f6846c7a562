package extract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadRoster(t *testing.T) {
	const header = "given,family,birth_date,member_id,consent_start,consent_end\n"
	tests := []struct {
		name, csv string
		want      int
		err       string
	}{
		{"ok, columns in any order", "family,given,birth_date,member_id,consent_start,consent_end,coverage_to_link\nDoe,Jane,1970-01-02,M1,2026-01-01,2027-01-01,OLD9\n", 1, ""},
		{"missing column", "given,family,birth_date,member_id,consent_start\nJane,Doe,1970-01-02,M1,2026-01-01\n", 0, `roster line 1: header lacks column "consent_end"`},
		{"header after blank lines", "\n\ngiven,family\n", 0, `roster line 3: header lacks column "birth_date"`},
		{"duplicate column", "given,family,Given,birth_date,member_id,consent_start,consent_end\n", 0, "roster line 1: column given appears twice in the header"},
		{"empty", "", 0, "roster line 1: no header row"},
		{"empty cell names line and column", header + "Jane,Doe,1970-01-02,,2026-01-01,2027-01-01\n", 0, "roster line 2: column member_id is empty"},
		{"bad date, value not echoed", header + "Jane,Doe,02/01/1970,M1,2026-01-01,2027-01-01\n", 0, "roster line 2: column birth_date is not a date"},
		// The record starts on line 2; its birth_date on line 3.
		{"line of the column, not of the record", header + "\"Jane\nAnn\",Doe,02/01/1970,M1,2026-01-01,2027-01-01\n", 0, "roster line 3: column birth_date is not a date"},
		{"wrong number of fields", header + "Jane,Doe,1970-01-02,M1,2026-01-01\n", 0, "roster line 2: wrong number of fields"},
		{"bare quote", header + "Jane,Do\"e,1970-01-02,M1,2026-01-01,2027-01-01\n", 0, "roster line 2: bare \" in non-quoted-field at byte 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ReadRoster(strings.NewReader(tt.csv))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "02/01/1970") {
					t.Fatalf("err = %v, want it to contain %q and no value", err, tt.err)
				}
				return
			}
			if err != nil || len(ms) != tt.want {
				t.Fatalf("got %d members, err %v", len(ms), err)
			}
			if ms[0].Family != "Doe" || ms[0].CoverageToLink != "OLD9" || ms[0].Line != 2 {
				t.Errorf("member = %+v", ms[0])
			}
		})
	}
}

func TestMemberMatchBodyHasExactlyOneOfEach(t *testing.T) {
	for _, link := range []string{"", "OLD9"} {
		body, err := memberMatchBody(Member{Given: "Jane", Family: "Doe", BirthDate: "1970-01-02", MemberID: "M1",
			ConsentStart: "2026-01-01", ConsentEnd: "2027-01-01", CoverageToLink: link}, "New Plan")
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Parameter []struct {
				Name     string         `json:"name"`
				Resource map[string]any `json:"resource"`
			} `json:"parameter"`
		}
		json.Unmarshal(body, &p)
		count := map[string]int{}
		for _, prm := range p.Parameter {
			count[prm.Name+"/"+prm.Resource["resourceType"].(string)]++
		}
		want := map[string]int{"MemberPatient/Patient": 1, "CoverageToMatch/Coverage": 1, "Consent/Consent": 1}
		if link != "" {
			want["CoverageToLink/Coverage"] = 1
		}
		if diff := cmp.Diff(want, count); diff != "" {
			t.Errorf("parameters (-want +got):\n%s", diff)
		}
	}
}

func TestParseMatchAnswers(t *testing.T) {
	tests := []struct {
		name string
		body string
		want MatchResult
	}{
		{"hrex", `{"resourceType":"Parameters","parameter":[{"name":"MemberIdentifier","valueIdentifier":{"system":"https://p.example/member","value":"X9"}},{"name":"MemberId","valueReference":{"reference":"Patient/p1"}}]}`,
			MatchResult{Status: Matched, MemberIdentifier: "https://p.example/member|X9", PatientRef: "Patient/p1"}},
		{"1up group parameter", `{"resourceType":"Parameters","parameter":[{"name":"groupId","valueString":"g-42"}]}`,
			MatchResult{Status: Matched, GroupID: "g-42"}},
		{"top-level groupId", `{"groupId":"g-7"}`, MatchResult{Status: Matched, GroupID: "g-7"}},
		{"absolute versioned MemberId", `{"parameter":[{"name":"MemberId","valueReference":{"reference":"https://p.example/fhir/Patient/p1/_history/2"}}]}`,
			MatchResult{Status: Matched, PatientRef: "https://p.example/fhir/Patient/p1/_history/2"}},
		{"identifier without value is left out", `{"groupId":"g-8","parameter":[{"name":"MemberIdentifier","valueIdentifier":{"system":"https://p.example/member"}}]}`,
			MatchResult{Status: Matched, GroupID: "g-8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMatch([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, body := range []string{
		`{"resourceType":"Parameters"}`,
		`{"groupId":".."}`, // would make Group/../$export, a system export
		`{"groupId":"a/b"}`,
		`{"groupId":"g 1"}`,
		`{"parameter":[{"name":"groupId","valueString":"` + strings.Repeat("g", 65) + `"}]}`,
		`{"parameter":[{"name":"MemberId","valueReference":{"reference":"Coverage/c1"}}]}`,
		`{"parameter":[{"name":"MemberIdentifier","valueIdentifier":{"system":"https://p.example/member"}}]}`,
	} {
		if res, err := parseMatch([]byte(body)); !errors.Is(err, ErrProtocol) {
			t.Errorf("parseMatch(%s) = %+v, %v; want ErrProtocol", body, res, err)
		}
	}
	nm := []struct {
		body string
		want MatchStatus
	}{
		{`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"No unique member match"}]}`, NotMatched},
		{`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"business-rule","diagnostics":"Consent rejected: sensitive data only"}]}`, ConsentRejected},
		{`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"MemberPatient lacks birthDate"}]}`, MatchError},
	}
	for _, tt := range nm {
		if got := parseNoMatch([]byte(tt.body)).Status; got != tt.want {
			t.Errorf("parseNoMatch(%s) = %s, want %s", tt.body, got, tt.want)
		}
	}
}

func TestMemberMatchURL(t *testing.T) {
	for base, want := range map[string]string{
		"https://gateway.1up.health/v1/bison/bulk-data/r4/": "https://gateway.1up.health/v1/bison/member-match/$member-match",
		"https://payer.example/fhir":                        "https://payer.example/fhir/Patient/$member-match",
	} {
		if got := MemberMatchURL(base); got != want {
			t.Errorf("MemberMatchURL(%q) = %q, want %q", base, got, want)
		}
	}
}
