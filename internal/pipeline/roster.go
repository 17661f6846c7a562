package pipeline

import (
	"context"
	"fmt"
	"hash/fnv"
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

// MatchMembers matches a roster: with one Da Vinci PDex
// $bulk-member-match per batch of at most batch members (0:
// DefaultMaxPatients) when the server's CapabilityStatement advertises
// it and the roster has more than one member, else with one HRex
// $member-match per member (MatchRoster) at endpoint.
func MatchMembers(ctx context.Context, c *extract.Client, endpoint, requester string, members []extract.Member, batch int) ([]Match, error) {
	if len(members) < 2 || !c.SupportsBulkMemberMatch(ctx) {
		return MatchRoster(ctx, c, endpoint, requester, members)
	}
	if batch <= 0 {
		batch = DefaultMaxPatients
	}
	bulk := extract.BulkMemberMatchURL(c.BaseURL)
	out := make([]Match, 0, len(members))
	for start := 0; start < len(members); start += batch {
		part := members[start:min(start+batch, len(members))]
		res, err := c.BulkMemberMatch(ctx, bulk, part, requester)
		if err != nil {
			return out, fmt.Errorf("bulk member match of roster lines %d to %d: %w", part[0].Line, part[len(part)-1].Line, err)
		}
		for i, m := range part {
			out = append(out, Match{Member: m, Result: res[i]})
		}
	}
	return out, nil
}

// RosterRun is one export a roster needs, with the matches it carries:
// they are recorded with the run and link the exported Patients to the
// roster's members (see load.PersonRule). Scope, when set, is the
// watermark scope of the run (Pipeline.ScopeName).
type RosterRun struct {
	Request extract.Request
	Matches []load.MemberMatch
	Scope   string
}

// DefaultMaxPatients is how many patients one patient-filtered export
// asks for at most (RosterRequests): servers limit it (Oracle Health
// recommends about 1,000; 1upHealth takes at most 10,000 per Group).
const DefaultMaxPatients = 1000

// RosterRequests turns matches into exports: Group/{id}/$export for every
// group a match named (1upHealth), and POST Patient/$export with the
// patient parameter for matches that named only a patient (HRex). base
// carries the filters (types, since, ...) to apply to each. More than
// maxPatients patients (0: DefaultMaxPatients) are spread over buckets by
// a hash of their reference, one export each (loaded together in one
// commit: Pipeline.Exports), each with a watermark scope of its own
// (patient/<i>of<k>): a member stays in its bucket from run to run
// while the number of buckets stays, so each bucket's watermark covers
// the same members (a new member is back-filled as any member new to a
// scope is).
func RosterRequests(matches []Match, base extract.Request, maxPatients int) []RosterRun {
	var runs []RosterRun
	groups := map[string]int{} // group id -> index in runs
	shared := map[string]int{} // group id -> matches in it
	for _, m := range matches {
		if m.Result.Status == extract.Matched && m.Result.GroupID != "" {
			shared[m.Result.GroupID]++
		}
	}
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
			mm := load.MemberMatch{MemberID: m.Member.MemberID, LinkID: m.Member.CoverageToLink, GroupID: m.Result.GroupID}
			if shared[m.Result.GroupID] > 1 {
				// A group of many members ($bulk-member-match): a match
				// links only the Patient it names; one that names none
				// links nobody.
				_, id, ok := strings.Cut(m.Result.PatientRef, "Patient/")
				if !ok {
					continue
				}
				mm.PatientID = strings.SplitN(id, "/", 2)[0]
			}
			// A group of one matched member: every Patient its export
			// carries is that member.
			runs[i].Matches = append(runs[i].Matches, mm)
		case m.Result.PatientRef != "":
			patients = append(patients, m.Result.PatientRef)
			_, id, _ := strings.Cut(m.Result.PatientRef, "/")
			byPatient = append(byPatient, load.MemberMatch{MemberID: m.Member.MemberID, LinkID: m.Member.CoverageToLink, PatientID: id})
		}
	}
	if len(patients) == 0 {
		return runs
	}
	if maxPatients <= 0 {
		maxPatients = DefaultMaxPatients
	}
	if len(patients) <= maxPatients {
		r := base
		r.Group, r.Patient, r.Post, r.Patients = "", true, true, patients
		return append(runs, RosterRun{Request: r, Matches: byPatient})
	}
	for i, b := range buckets(patients, maxPatients) {
		r := base
		r.Group, r.Patient, r.Post, r.Patients = "", true, true, nil
		var ms []load.MemberMatch
		for _, j := range b.members {
			r.Patients = append(r.Patients, patients[j])
			ms = append(ms, byPatient[j])
		}
		runs = append(runs, RosterRun{Request: r, Matches: ms, Scope: fmt.Sprintf("patient/%dof%d", i+1, b.of)})
	}
	return runs
}

// bucket is the indexes of the patients of one bucket of of.
type bucket struct {
	members []int
	of      int
}

// buckets spreads patients over the fewest power-of-two number of buckets
// (by an FNV hash of each reference) that keeps every bucket within max;
// empty buckets are left out. A power of two keeps the buckets from run to
// run until the roster doubles or halves.
func buckets(patients []string, max int) []bucket {
	for k := 2; ; k *= 2 {
		idx := make([][]int, k)
		fits := true
		for j, p := range patients {
			h := fnv.New32a()
			h.Write([]byte(p))
			b := int(h.Sum32() % uint32(k))
			idx[b] = append(idx[b], j)
			fits = fits && len(idx[b]) <= max
		}
		if fits || k >= 4*len(patients) {
			var out []bucket
			for _, members := range idx {
				if len(members) > 0 {
					out = append(out, bucket{members: members, of: k})
				}
			}
			return out
		}
	}
}
