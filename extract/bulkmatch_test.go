package extract

import (
	"errors"
	"fmt"
	"testing"
)

// TestParseBulkMatch: how a $bulk-member-match answer maps back to the
// roster, including answers that do not say which matched member is
// which, and answers that are not what they should be.
func TestParseBulkMatch(t *testing.T) {
	matched := `{"name":"MatchedMembers","resource":{"resourceType":"Group","id":"g1","member":[
		{"entity":{"reference":"Patient/p7","extension":[{"url":"` + bulkMatchExtension + `","valueReference":{"reference":"Patient/member-2"}}]}}%s]}}`
	for _, tc := range []struct {
		name string
		body string
		want []MatchResult
		err  bool
	}{
		{"placed, not matched, refused", `{"resourceType":"Parameters","parameter":[` + fmt.Sprintf(matched, "") + `,
			{"name":"NonMatchedMembers","resource":{"resourceType":"Group","id":"n","member":[{"entity":{"reference":"Patient/member-1"}}]}},
			{"name":"ConsentConstrainedMembers","resource":{"resourceType":"Group","id":"c","member":[{"entity":{"reference":"#member-3"}}]}}]}`,
			[]MatchResult{{Status: NotMatched}, {Status: Matched, GroupID: "g1", PatientRef: "Patient/p7"}, {Status: ConsentRejected}}, false},
		{"a matched member the answer does not place", `{"resourceType":"Parameters","parameter":[` + fmt.Sprintf(matched, `,{"entity":{"reference":"Patient/p9"}}`) + `]}`,
			[]MatchResult{{Status: Matched, GroupID: "g1"}, {Status: Matched, GroupID: "g1", PatientRef: "Patient/p7"}, {Status: Matched, GroupID: "g1"}}, false},
		{"nothing matched", `{"resourceType":"Parameters","parameter":[]}`,
			[]MatchResult{{Status: NotMatched}, {Status: NotMatched}, {Status: NotMatched}}, false},
		{"not Parameters", `{"resourceType":"Bundle"}`, nil, true},
		{"a group id that is not an id", `{"resourceType":"Parameters","parameter":[{"name":"MatchedMembers","resource":{"resourceType":"Group","id":"../x","member":[]}}]}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBulkMatch([]byte(tc.body), 3)
			if tc.err {
				if !errors.Is(err, ErrProtocol) {
					t.Errorf("err = %v, want ErrProtocol", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.want {
				if got[i].Status != tc.want[i].Status || got[i].GroupID != tc.want[i].GroupID || got[i].PatientRef != tc.want[i].PatientRef {
					t.Errorf("member %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
