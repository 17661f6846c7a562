package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/fhirlake/fhirlake/extract"
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

// RosterRequests turns matches into exports: Group/{id}/$export for every
// group a match named (1upHealth), and one POST Patient/$export with the
// patient parameter for matches that named only a patient (HRex). base
// carries the filters (types, since, ...) to apply to each.
func RosterRequests(matches []Match, base extract.Request) []extract.Request {
	var reqs []extract.Request
	var groups, patients []string
	for _, m := range matches {
		switch {
		case m.Result.Status != extract.Matched:
		case m.Result.GroupID != "":
			if !slices.Contains(groups, m.Result.GroupID) {
				groups = append(groups, m.Result.GroupID)
			}
		case m.Result.PatientRef != "":
			patients = append(patients, m.Result.PatientRef)
		}
	}
	for _, g := range groups {
		r := base
		r.Group, r.Patient, r.Patients = g, false, nil
		reqs = append(reqs, r)
	}
	if len(patients) > 0 {
		r := base
		r.Group, r.Patient, r.Post, r.Patients = "", true, true, patients
		reqs = append(reqs, r)
	}
	return reqs
}
