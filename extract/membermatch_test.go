package extract

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadRoster(t *testing.T) {
	tests := []struct {
		name, csv string
		want      int
		err       string
	}{
		{"ok, columns in any order", "family,given,birth_date,member_id,consent_start,consent_end,coverage_to_link\nDoe,Jane,1970-01-02,M1,2026-01-01,2027-01-01,OLD9\n", 1, ""},
		{"missing column", "given,family,birth_date,member_id,consent_start\nJane,Doe,1970-01-02,M1,2026-01-01\n", 0, `header lacks column "consent_end"`},
		{"empty cell names line and column", "given,family,birth_date,member_id,consent_start,consent_end\nJane,Doe,1970-01-02,,2026-01-01,2027-01-01\n", 0, "line 2: column member_id is empty"},
		{"bad date, value not echoed", "given,family,birth_date,member_id,consent_start,consent_end\nJane,Doe,02/01/1970,M1,2026-01-01,2027-01-01\n", 0, "line 2: column birth_date is not a date"},
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
	if _, err := parseMatch([]byte(`{"resourceType":"Parameters"}`)); err == nil {
		t.Error("an empty match answer was accepted")
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
