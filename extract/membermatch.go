package extract

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Member is one row of a Payer-to-Payer roster: what the new payer knows of
// a member and of the coverage at the old payer, plus the member's consent.
type Member struct {
	Given, Family string
	BirthDate     string // YYYY-MM-DD
	Gender        string // optional
	// MemberID is the member id (subscriber id) on the card of the payer
	// being asked.
	MemberID string
	// ConsentStart and ConsentEnd bound the member's consent (YYYY-MM-DD).
	ConsentStart, ConsentEnd string
	// CoverageToLink is the member id at the requesting payer; optional.
	CoverageToLink string
	// Line is the 1-based CSV line, for error messages.
	Line int
}

// MatchStatus is the outcome of one $member-match.
type MatchStatus string

// Match outcomes.
const (
	Matched         MatchStatus = "matched"
	NotMatched      MatchStatus = "not_matched"
	ConsentRejected MatchStatus = "consent_rejected"
	MatchError      MatchStatus = "error"
)

// MatchResult is what the server answered for one member.
type MatchResult struct {
	Status MatchStatus
	// GroupID is the Group to export (1upHealth answers one per match).
	GroupID string
	// MemberIdentifier is the member's unique identifier at the server
	// (HRex MemberIdentifier, type UMB), as system|value.
	MemberIdentifier string
	// PatientRef is the HRex MemberId reference, e.g. Patient/123.
	PatientRef string
	// Message explains a non-match; it holds the server's diagnostics,
	// which describe the failure, never the member's data.
	Message string
}

// rosterColumns are the CSV header names; the first six are required.
var rosterColumns = []string{"given", "family", "birth_date", "member_id", "consent_start", "consent_end", "coverage_to_link", "gender"}

// ReadRoster parses a roster CSV with a header row naming the columns
// given, family, birth_date, member_id, consent_start, consent_end and
// optionally coverage_to_link and gender, in any order. Every error in the
// roster names the line ("roster line N: ...") and the column at fault,
// never a value: the roster holds names and birth dates. (A failure to
// read r is "roster: ...".)
func ReadRoster(r io.Reader) ([]Member, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("roster line 1: no header row")
	}
	if err != nil {
		return nil, rosterError(err)
	}
	hline, _ := cr.FieldPos(0)
	idx := map[string]int{}
	for i, h := range header {
		c := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := idx[c]; dup && slices.Contains(rosterColumns, c) {
			return nil, fmt.Errorf("roster line %d: column %s appears twice in the header", hline, c)
		}
		idx[c] = i
	}
	for _, c := range rosterColumns[:6] {
		if _, ok := idx[c]; !ok {
			return nil, fmt.Errorf("roster line %d: header lacks column %q (need %s)", hline, c, strings.Join(rosterColumns[:6], ", "))
		}
	}
	var out []Member
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, rosterError(err)
		}
		get := func(c string) string {
			if i, ok := idx[c]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		// lineOf is the line where column c of this record starts, which
		// differs from the record's first line after a quoted newline.
		lineOf := func(c string) int {
			line, _ := cr.FieldPos(idx[c])
			return line
		}
		m := Member{
			Given: get("given"), Family: get("family"), BirthDate: get("birth_date"), Gender: get("gender"),
			MemberID: get("member_id"), ConsentStart: get("consent_start"), ConsentEnd: get("consent_end"),
			CoverageToLink: get("coverage_to_link"),
		}
		m.Line, _ = cr.FieldPos(0)
		for _, c := range rosterColumns[:6] {
			if get(c) == "" {
				return nil, fmt.Errorf("roster line %d: column %s is empty", lineOf(c), c)
			}
		}
		for _, c := range []string{"birth_date", "consent_start", "consent_end"} {
			if _, err := time.Parse(time.DateOnly, get(c)); err != nil {
				return nil, fmt.Errorf("roster line %d: column %s is not a date (YYYY-MM-DD)", lineOf(c), c)
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// rosterError puts a CSV syntax error in the form of the roster's other
// errors, line first. encoding/csv errors carry positions, never values.
func rosterError(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("roster: %w", err)
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("roster line %d: %w (the header has another number)", pe.Line, pe.Err)
	}
	return fmt.Errorf("roster line %d: %w at byte %d", pe.Line, pe.Err, pe.Column)
}

// HRex and terminology URLs used in the request.
const (
	consentPolicyRegular = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
	v20203               = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// memberMatchBody builds the HRex Parameters for one member: exactly one
// MemberPatient, CoverageToMatch and Consent, and CoverageToLink when the
// roster gives one.
func memberMatchBody(m Member, requester string) ([]byte, error) {
	return json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": memberParts(m, requester, "member")})
}

// memberParts are the parameters of one member's match: a MemberPatient
// with id patientID (which the other resources reference), a
// CoverageToMatch, a Consent, and a CoverageToLink when the roster gives
// one.
func memberParts(m Member, requester, patientID string) []any {
	patientRef := "Patient/" + patientID
	patient := map[string]any{
		"resourceType": "Patient", "id": patientID,
		"name":      []any{map[string]any{"family": m.Family, "given": []string{m.Given}}},
		"birthDate": m.BirthDate,
	}
	if m.Gender != "" {
		patient["gender"] = m.Gender
	}
	coverage := func(id, memberID, payor string) map[string]any {
		return map[string]any{
			"resourceType": "Coverage", "id": id, "status": "active",
			"subscriberId": memberID,
			"identifier": []any{map[string]any{
				"type":  map[string]any{"coding": []any{map[string]any{"system": v20203, "code": "MB"}}},
				"value": memberID,
			}},
			"beneficiary": map[string]any{"reference": patientRef},
			"payor":       []any{map[string]any{"display": payor}},
		}
	}
	consent := map[string]any{
		"resourceType": "Consent", "id": "consent", "status": "active",
		"scope": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}}},
		"category":  []any{map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "64292-6"}}}},
		"patient":   map[string]any{"reference": patientRef},
		"performer": []any{map[string]any{"reference": patientRef}},
		"sourceReference": map[string]any{
			"reference": "http://example.org/DocumentReference/consent-source"},
		"policy": []any{map[string]any{"uri": consentPolicyRegular}},
		"provision": map[string]any{
			"type":   "permit",
			"period": map[string]any{"start": m.ConsentStart, "end": m.ConsentEnd},
			"actor": []any{map[string]any{
				"role":      map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}}},
				"reference": map[string]any{"display": requester},
			}},
			"action": []any{map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "disclose"}}}},
		},
	}
	params := []any{
		map[string]any{"name": "MemberPatient", "resource": patient},
		map[string]any{"name": "CoverageToMatch", "resource": coverage("match", m.MemberID, "")},
	}
	if m.CoverageToLink != "" {
		params = append(params, map[string]any{"name": "CoverageToLink", "resource": coverage("link", m.CoverageToLink, requester)})
	}
	return append(params, map[string]any{"name": "Consent", "resource": consent})
}

// MemberMatchURL derives the $member-match endpoint from a FHIR base: the
// 1upHealth route when the base is a 1up bulk-data base, else the HRex
// Patient/$member-match.
func MemberMatchURL(base string) string {
	base = strings.TrimRight(base, "/")
	if i := strings.Index(base, "/bulk-data/r4"); i >= 0 {
		return base[:i] + "/member-match/$member-match"
	}
	return base + "/Patient/$member-match"
}

// MemberMatch sends one HRex $member-match to endpoint. A 422 is an answer
// (no match, consent rejected or bad input), not an error; transport
// failures, 401/403 and 5xx after retries are.
func (c *Client) MemberMatch(ctx context.Context, endpoint string, m Member, requester string) (MatchResult, error) {
	body, err := memberMatchBody(m, requester)
	if err != nil {
		return MatchResult{}, fmt.Errorf("member-match body: %w", err)
	}
	h := http.Header{"Accept": {"application/fhir+json"}, "Content-Type": {"application/fhir+json"}}
	var res MatchResult
	err = c.retrying(ctx, "member-match", func() (time.Duration, error) {
		resp, err := c.send(ctx, http.MethodPost, endpoint, h, body, true)
		if err != nil {
			return 0, fmt.Errorf("member-match: %w", err)
		}
		defer drain(resp)
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		switch {
		case resp.StatusCode == http.StatusOK:
			res, err = parseMatch(b)
			return 0, err
		case resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusBadRequest:
			res = parseNoMatch(b)
			return 0, nil
		default:
			kind := classify(resp.StatusCode)
			if kind == nil || kind == ErrExportExpired {
				kind = ErrProtocol
			}
			return retryAfter(resp.Header.Get("Retry-After"), c.now()),
				&StatusError{Op: "member-match", Status: resp.StatusCode, Summary: outcomeSummary(b), kind: kind}
		}
	})
	return res, err
}

// patientRefRE is the reference a MemberId may hold: Patient/{id},
// maybe absolute, maybe versioned.
var patientRefRE = regexp.MustCompile(`^(https?://[^\s/]+(/[^\s/]+)*/)?Patient/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?$`)

// parseMatch reads a match: HRex Parameters (MemberIdentifier, MemberId)
// plus 1upHealth's groupId, which may also come as a top-level field. A
// group id goes into the path of the next kick-off, so it must be a FHIR
// id; MemberId must reference a Patient. Errors wrap ErrProtocol.
func parseMatch(body []byte) (MatchResult, error) {
	var p struct {
		ResourceType string `json:"resourceType"`
		GroupID      string `json:"groupId"`
		Parameter    []struct {
			Name            string `json:"name"`
			ValueString     string `json:"valueString"`
			ValueID         string `json:"valueId"`
			ValueIdentifier *struct {
				System string `json:"system"`
				Value  string `json:"value"`
			} `json:"valueIdentifier"`
			ValueReference *struct {
				Reference string `json:"reference"`
			} `json:"valueReference"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return MatchResult{}, fmt.Errorf("decode member-match answer: %w: %w", ErrProtocol, err)
	}
	res := MatchResult{Status: Matched, GroupID: p.GroupID}
	for _, prm := range p.Parameter {
		switch strings.ToLower(prm.Name) {
		case "memberidentifier":
			if prm.ValueIdentifier != nil && prm.ValueIdentifier.Value != "" {
				res.MemberIdentifier = strings.TrimPrefix(prm.ValueIdentifier.System+"|"+prm.ValueIdentifier.Value, "|")
			}
		case "memberid":
			if prm.ValueReference != nil {
				res.PatientRef = prm.ValueReference.Reference
			}
		case "groupid", "group":
			switch {
			case prm.ValueString != "":
				res.GroupID = prm.ValueString
			case prm.ValueID != "":
				res.GroupID = prm.ValueID
			case prm.ValueReference != nil:
				res.GroupID = strings.TrimPrefix(prm.ValueReference.Reference, "Group/")
			}
		}
	}
	if res.GroupID == "" && res.MemberIdentifier == "" && res.PatientRef == "" {
		return MatchResult{}, fmt.Errorf("member-match answered 200 without a member identifier or group: %w", ErrProtocol)
	}
	if res.GroupID != "" && !isFHIRID(res.GroupID) {
		return MatchResult{}, fmt.Errorf("member-match answered a group id that is not a FHIR id: %w", ErrProtocol)
	}
	if res.PatientRef != "" && !patientRefRE.MatchString(res.PatientRef) {
		return MatchResult{}, fmt.Errorf("member-match answered a MemberId that is not a Patient reference: %w", ErrProtocol)
	}
	return res, nil
}

// parseNoMatch classifies a 422/400 OperationOutcome.
func parseNoMatch(body []byte) MatchResult {
	var oo operationOutcome
	err := json.Unmarshal(body, &oo) // on an error, what decoded still counts
	res := MatchResult{Status: NotMatched}
	if err == nil && oo.ResourceType == "OperationOutcome" {
		res.Message = oo.summary() // as outcomeSummary(body), without a second decode
	}
	for _, is := range oo.Issue {
		text := strings.ToLower(is.Diagnostics + " " + is.Details.Text)
		switch {
		case strings.Contains(text, "consent"):
			res.Status = ConsentRejected
		case is.Code == "invalid" || is.Code == "required" || is.Code == "structure" || is.Code == "value":
			if res.Status != ConsentRejected {
				res.Status = MatchError
			}
		}
	}
	return res
}

// ErrNoMatches means a roster produced no member to export.
var ErrNoMatches = errors.New("no roster member matched")
