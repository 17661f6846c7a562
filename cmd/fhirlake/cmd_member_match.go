package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/atomicfile"
	"github.com/fhirlake/fhirlake/internal/pipeline"
)

type memberMatchOptions struct {
	client    *extract.Client
	endpoint  string
	requester string
	members   []extract.Member
	out       string
}

// rosterFlags configure Payer-to-Payer matching; run takes them too.
func rosterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "roster", Usage: "roster `CSV`: given, family, birth_date, member_id, consent_start, consent_end[, coverage_to_link, gender]", EnvVars: []string{"FHIRLAKE_ROSTER"}},
		&cli.StringFlag{Name: "member-match-url", Usage: "$member-match endpoint (default: derived from --fhir-url; 1upHealth: /v1/TENANT/member-match/$member-match)", EnvVars: []string{"FHIRLAKE_MEMBER_MATCH_URL"}},
		&cli.StringFlag{Name: "requester", Value: "fhirlake", Usage: "name of the requesting payer, put in the Consent and CoverageToLink", EnvVars: []string{"FHIRLAKE_REQUESTER"}},
	}
}

func memberMatchCommand() *cli.Command {
	flags := append(serverFlags(), authFlags()...)
	flags = append(flags, rosterFlags()...)
	flags = append(flags, &cli.StringFlag{Name: "out", Value: "-", Usage: "result `CSV` (- for stdout): line, member_id, status, group_id, member_identifier, patient_ref, message"})
	return &cli.Command{
		Name:         "member-match",
		Usage:        "Payer-to-Payer: send one HRex $member-match per roster member and record the outcome",
		UsageText:    "fhirlake member-match --fhir-url URL --roster members.csv [auth flags] [--out matches.csv]",
		Flags:        flags,
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			src, err := parseSource(c, log)
			if err != nil {
				return err
			}
			cl := src.client
			members, err := readRoster(c.String("roster"))
			if err != nil {
				return err
			}
			return runMemberMatch(c.Context, c, memberMatchOptions{
				client: cl, endpoint: memberMatchURL(c), requester: c.String("requester"), members: members, out: c.String("out"),
			})
		},
	}
}

func memberMatchURL(c *cli.Context) string {
	if u := c.String("member-match-url"); u != "" {
		return u
	}
	return extract.MemberMatchURL(c.String("fhir-url"))
}

func readRoster(path string) ([]extract.Member, error) {
	if path == "" {
		return nil, usagef("--roster is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--roster: %v", err)
	}
	defer f.Close()
	members, err := extract.ReadRoster(f)
	if err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	if len(members) == 0 {
		return nil, usagef("%s: the roster has no members", path)
	}
	return members, nil
}

func runMemberMatch(ctx context.Context, c *cli.Context, o memberMatchOptions) error {
	matches, err := pipeline.MatchMembers(ctx, o.client, o.endpoint, o.requester, o.members, 0)
	if err != nil {
		return err
	}
	if o.out == "-" {
		return writeMatches(c.App.Writer, matches)
	}
	f, err := atomicfile.Create(o.out)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := writeMatches(f, matches); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	counts := map[extract.MatchStatus]int{}
	for _, m := range matches {
		counts[m.Result.Status]++
	}
	fmt.Fprintf(c.App.Writer, "%d members: %d matched, %d not matched, %d consent rejected, %d errors; results in %s\n",
		len(matches), counts[extract.Matched], counts[extract.NotMatched], counts[extract.ConsentRejected], counts[extract.MatchError], o.out)
	return nil
}

func writeMatches(w io.Writer, matches []pipeline.Match) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"line", "member_id", "status", "group_id", "member_identifier", "patient_ref", "message"})
	for _, m := range matches {
		cw.Write([]string{strconv.Itoa(m.Member.Line), m.Member.MemberID, string(m.Result.Status),
			m.Result.GroupID, m.Result.MemberIdentifier, m.Result.PatientRef, m.Result.Message})
	}
	cw.Flush()
	return cw.Error()
}
