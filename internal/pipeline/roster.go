package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/load"
)

// Match is one roster member's $member-match outcome.
type Match struct {
	Member extract.Member
	Result extract.MatchResult
}

// MatchRoster sends one $member-match per member, in roster order, to
// endpoint. A member the server does not match is recorded, not an error;
// an error stops the roster (auth, server down).
func MatchRoster(ctx context.Context, c *extract.Client, endpoint, requester string, members []extract.Member) ([]Match, error) {
	out := make([]Match, 0, len(members))
	for _, m := range members {
		res, err := c.MemberMatch(ctx, endpoint, m, requester)
		if err != nil {
			return out, fmt.Errorf("member-match for roster line %d: %w", m.Line, err)
		}
		out = append(out, Match{Member: m, Result: res})
	}
	return out, nil
}

// RosterRun is one export a roster needs, with the matches it carries:
// they are recorded with the run and link the exported Patients to the
// roster's members (see load.PersonRule).
type RosterRun struct {
	Request extract.Request
	Matches []load.MemberMatch
}

// RosterRequests turns matches into exports: Group/{id}/$export for every
// group a match named (1upHealth), and one POST Patient/$export with the
// patient parameter for matches that named only a patient (HRex). base
// carries the filters (types, since, ...) to apply to each.
func RosterRequests(matches []Match, base extract.Request) []RosterRun {
	var runs []RosterRun
	groups := map[string]int{} // group id -> index in runs
	var patients []string
	var byPatient []load.MemberMatch
	for _, m := range matches {
		switch {
		case m.Result.Status != extract.Matched:
		case m.Result.GroupID != "":
			i, ok := groups[m.Result.GroupID]
			if !ok {
				r := base
				r.Group, r.Patient, r.Patients = m.Result.GroupID, false, nil
				i = len(runs)
				groups[m.Result.GroupID] = i
				runs = append(runs, RosterRun{Request: r})
			}
			// The group holds the matched member: every Patient its export
			// carries is that member.
			runs[i].Matches = append(runs[i].Matches, load.MemberMatch{MemberID: m.Member.MemberID, LinkID: m.Member.CoverageToLink, GroupID: m.Result.GroupID})
		case m.Result.PatientRef != "":
			patients = append(patients, m.Result.PatientRef)
			_, id, _ := strings.Cut(m.Result.PatientRef, "/")
			byPatient = append(byPatient, load.MemberMatch{MemberID: m.Member.MemberID, LinkID: m.Member.CoverageToLink, PatientID: id})
		}
	}
	if len(patients) > 0 {
		r := base
		r.Group, r.Patient, r.Post, r.Patients = "", true, true, patients
		runs = append(runs, RosterRun{Request: r, Matches: byPatient})
	}
	return runs
}
