package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Da Vinci PDex $bulk-member-match matches many members in one
// asynchronous request: the answer is a Group of the matched members (to
// export) and Groups of those not matched and of those whose consent was
// refused. Each matched member carries, on its entity, the extension
// bulkMatchExtension naming the MemberPatient it was matched from: that
// is how an answer maps back to the roster.
const bulkMatchExtension = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters"

// BulkMemberMatchURL is the PDex $bulk-member-match endpoint of a FHIR
// base.
func BulkMemberMatchURL(base string) string {
	return strings.TrimRight(base, "/") + "/Group/$bulk-member-match"
}

// SupportsBulkMemberMatch reports whether the server's CapabilityStatement
// (GET [base]/metadata) lists $bulk-member-match. A server whose
// CapabilityStatement cannot be read does not.
func (c *Client) SupportsBulkMemberMatch(ctx context.Context) bool {
	resp, err := c.send(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/metadata", http.Header{"Accept": {"application/fhir+json"}}, nil, true)
	if err != nil {
		return false
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return false
	}
	var cs struct {
		Rest []struct {
			Operation []capOp `json:"operation"`
			Resource  []struct {
				Type      string  `json:"type"`
				Operation []capOp `json:"operation"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&cs) != nil {
		return false
	}
	for _, r := range cs.Rest {
		ops := r.Operation
		for _, res := range r.Resource {
			if res.Type == "Group" {
				ops = append(ops, res.Operation...)
			}
		}
		for _, op := range ops {
			if op.Name == "bulk-member-match" || strings.HasSuffix(op.Definition, "/BulkMemberMatch") {
				return true
			}
		}
	}
	return false
}

type capOp struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// bulkPatientID is the id of member i's MemberPatient in a bulk request.
func bulkPatientID(i int) string { return "member-" + strconv.Itoa(i+1) }

// BulkMemberMatch sends the members in one $bulk-member-match to endpoint
// and returns one result per member, in order: matched (with the Group to
// export, and the Patient when the answer names it), not matched, or
// consent refused. The request is asynchronous (202 and a status URL,
// polled like an export's) or answered at once.
func (c *Client) BulkMemberMatch(ctx context.Context, endpoint string, members []Member, requester string) ([]MatchResult, error) {
	params := make([]any, len(members))
	for i, m := range members {
		params[i] = map[string]any{"name": "MemberBundle", "part": memberParts(m, requester, bulkPatientID(i))}
	}
	body, err := json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
	if err != nil {
		return nil, fmt.Errorf("bulk-member-match body: %w", err)
	}
	h := http.Header{"Accept": {"application/fhir+json"}, "Content-Type": {"application/fhir+json"}, "Prefer": {"respond-async"}}
	var answer []byte
	var status string
	err = c.retrying(ctx, "bulk-member-match", func() (time.Duration, error) {
		resp, err := c.send(ctx, http.MethodPost, endpoint, h, body, true)
		if err != nil {
			return 0, fmt.Errorf("bulk-member-match: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusOK:
			defer resp.Body.Close()
			answer, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
			if err != nil {
				return 0, fmt.Errorf("bulk-member-match: read answer: %w: %w", ErrTransient, err)
			}
			return 0, nil
		case http.StatusAccepted:
			defer drain(resp)
			status, err = statusLocation(resp, endpoint)
			return 0, err
		}
		kind := classify(resp.StatusCode)
		if kind == nil || kind == ErrExportExpired {
			kind = ErrProtocol
		}
		return retryAfter(resp.Header.Get("Retry-After"), c.now()), statusError("bulk-member-match", resp, kind)
	})
	if err != nil {
		return nil, err
	}
	if answer == nil {
		if answer, err = c.awaitAnswer(ctx, status); err != nil {
			return nil, err
		}
	}
	return parseBulkMatch(answer, len(members))
}

// awaitAnswer polls the status URL of an asynchronous operation until it
// answers 200, and returns that answer.
func (c *Client) awaitAnswer(ctx context.Context, status string) ([]byte, error) {
	deadline := c.now().Add(orDefault(c.MaxWait, 24*time.Hour))
	h := http.Header{"Accept": {"application/fhir+json"}}
	for {
		var answer []byte
		var wait time.Duration
		err := c.retrying(ctx, "bulk-member-match status", func() (time.Duration, error) {
			resp, err := c.send(ctx, http.MethodGet, status, h, nil, true)
			if err != nil {
				return 0, fmt.Errorf("bulk-member-match status: %w", err)
			}
			switch resp.StatusCode {
			case http.StatusOK:
				defer resp.Body.Close()
				answer, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
				if err != nil {
					return 0, fmt.Errorf("bulk-member-match status: read answer: %w: %w", ErrTransient, err)
				}
				return 0, nil
			case http.StatusAccepted:
				wait = retryAfter(resp.Header.Get("Retry-After"), c.now())
				drain(resp)
				return 0, nil
			}
			return retryAfter(resp.Header.Get("Retry-After"), c.now()), statusError("bulk-member-match status", resp, nil)
		})
		if err != nil || answer != nil {
			return answer, err
		}
		wait = c.clampPoll(wait)
		if now := c.now(); !now.Before(deadline) {
			return nil, fmt.Errorf("bulk member match not complete after %s (--max-wait): %w", orDefault(c.MaxWait, 24*time.Hour), ErrTransient)
		} else if now.Add(wait).After(deadline) {
			wait = deadline.Sub(now)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// parseBulkMatch maps a $bulk-member-match answer back to the n members
// of the request. A member in no Group of the answer is not matched,
// unless the matched Group holds members it cannot place (no extension
// naming their MemberPatient): those members are matched, in that Group,
// without a Patient.
func parseBulkMatch(body []byte, n int) ([]MatchResult, error) {
	type ref struct {
		Reference string `json:"reference"`
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name     string `json:"name"`
			Resource *struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
				Member       []struct {
					Entity struct {
						Reference string `json:"reference"`
						Extension []struct {
							URL            string `json:"url"`
							ValueReference *ref   `json:"valueReference"`
						} `json:"extension"`
					} `json:"entity"`
				} `json:"member"`
			} `json:"resource"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, fmt.Errorf("decode bulk-member-match answer: not a Parameters resource: %w", ErrProtocol)
	}
	index := func(reference string) int {
		id, ok := strings.CutPrefix(strings.TrimPrefix(reference, "#"), "Patient/")
		if !ok {
			id = strings.TrimPrefix(reference, "#")
		}
		num, ok := strings.CutPrefix(id, "member-")
		i, err := strconv.Atoi(num)
		if !ok || err != nil || i < 1 || i > n {
			return -1
		}
		return i - 1
	}
	out := make([]MatchResult, n)
	for i := range out {
		out[i] = MatchResult{Status: NotMatched, Message: "not named in the bulk match answer"}
	}
	group, unplaced := "", 0
	for _, prm := range p.Parameter {
		g := prm.Resource
		if g == nil || g.ResourceType != "Group" {
			continue
		}
		switch prm.Name {
		case "MatchedMembers":
			if !isFHIRID(g.ID) {
				return nil, fmt.Errorf("bulk-member-match answered a matched Group whose id is not a FHIR id: %w", ErrProtocol)
			}
			group = g.ID
			for _, m := range g.Member {
				placed := false
				for _, ext := range m.Entity.Extension {
					if ext.URL == bulkMatchExtension && ext.ValueReference != nil {
						if i := index(ext.ValueReference.Reference); i >= 0 {
							out[i] = MatchResult{Status: Matched, GroupID: g.ID}
							if patientRefRE.MatchString(m.Entity.Reference) {
								out[i].PatientRef = m.Entity.Reference
							}
							placed = true
						}
					}
				}
				if !placed {
					unplaced++
				}
			}
		case "NonMatchedMembers", "ConsentConstrainedMembers":
			status, msg := NotMatched, "not matched"
			if prm.Name == "ConsentConstrainedMembers" {
				status, msg = ConsentRejected, "the server refused the member's consent"
			}
			for _, m := range g.Member {
				if i := index(m.Entity.Reference); i >= 0 {
					out[i] = MatchResult{Status: status, Message: msg}
				}
			}
		}
	}
	if unplaced > 0 {
		for i := range out {
			if out[i].Message == "not named in the bulk match answer" {
				out[i] = MatchResult{Status: Matched, GroupID: group, Message: "matched in a Group that does not say which member is which"}
			}
		}
	}
	return out, nil
}
