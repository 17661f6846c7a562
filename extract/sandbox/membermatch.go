package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Consent policy URIs of Da Vinci HRex. The sandbox accepts regular only.
const (
	ConsentRegular   = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#regular"
	ConsentSensitive = "http://hl7.org/fhir/us/davinci-hrex/StructureDefinition-hrex-consent.html#sensitive"
)

const (
	sysMemberID = "https://bison.example.org/fhir/memberidentifier"
	sysV2_0203U = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// MemberInfo is what a client needs to build a $member-match request for
// one generated member.
type MemberInfo struct {
	PatientID    string // e.g. "pat-0001"
	Family       string // Patient.name[0].family
	Given        string
	BirthDate    string // YYYY-MM-DD
	Gender       string
	MemberID     string // the member number: Patient/Coverage identifier of type MB
	SubscriberID string // Coverage.subscriberId
}

// MemberMatchInfo returns the matching data of the i-th Patient (0-based,
// store order), or false when there is none.
func (s *Server) MemberMatchInfo(i int) (MemberInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pats := s.store.byType["Patient"]
	if i < 0 || i >= len(pats) {
		return MemberInfo{}, false
	}
	p := decodeMember(pats[i].raw())
	info := MemberInfo{PatientID: pats[i].id, BirthDate: p.BirthDate, Gender: p.Gender, MemberID: p.memberID()}
	if len(p.Name) > 0 {
		info.Family = p.Name[0].Family
		if len(p.Name[0].Given) > 0 {
			info.Given = p.Name[0].Given[0]
		}
	}
	if c := s.coverageOf(pats[i].id); c != nil {
		info.SubscriberID = c.SubscriberID
	}
	return info, true
}

// fhirPatient and fhirCoverage are the parts of Patient and Coverage that
// matching reads.
type fhirPatient struct {
	ResourceType string
	Name         []struct {
		Family string
		Given  []string
	}
	BirthDate  string
	Gender     string
	Identifier []fhirIdentifier
}

type fhirIdentifier struct {
	Type struct {
		Coding []struct{ System, Code string }
	}
	System, Value string
}

func (id fhirIdentifier) isMB() bool {
	return slices.ContainsFunc(id.Type.Coding, func(c struct{ System, Code string }) bool { return c.Code == "MB" })
}

func (p fhirPatient) memberID() string {
	for _, id := range p.Identifier {
		if id.isMB() {
			return id.Value
		}
	}
	return ""
}

type fhirCoverage struct {
	ResourceType string
	SubscriberID string `json:"subscriberId"`
	Identifier   []fhirIdentifier
	Beneficiary  jsonRef
}

func decodeMember(raw []byte) fhirPatient {
	var p fhirPatient
	_ = json.Unmarshal(raw, &p)
	return p
}

// coverageOf returns the Coverage whose beneficiary is patient. Callers
// hold s.mu.
func (s *Server) coverageOf(patient string) *fhirCoverage {
	for _, rec := range s.store.byType["Coverage"] {
		if rec.patient == patient {
			var c fhirCoverage
			if json.Unmarshal(rec.raw(), &c) == nil {
				return &c
			}
		}
	}
	return nil
}

// memberMatch answers Da Vinci HRex $member-match. Matching: the member
// whose family name (case-insensitive), birthDate and member id all match,
// where the member id is CoverageToMatch.subscriberId equal to the
// sandbox Coverage.subscriberId, or a CoverageToMatch.identifier of type MB
// equal to the member number (MemberInfo.MemberID). The 1up routes need a
// token whose scope includes member-match and also answer a groupId: a new
// Group holding only the matched member, for Group/{groupId}/$export.
func (s *Server) memberMatch(w http.ResponseWriter, r *http.Request, fl flavour) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "$member-match is POST")
		return
	}
	if fl == oneUp { // the standard route checked the token already
		tok, ok := s.authorized(w, r)
		if !ok {
			return
		}
		if !slices.ContainsFunc(strings.Fields(tok.scope), func(sc string) bool { return strings.HasPrefix(sc, "member-match") }) {
			writeOutcome(w, http.StatusForbidden, "error", "forbidden", "token scope lacks member-match")
			return
		}
	}
	var body struct {
		ResourceType string
		Parameter    []memberParam
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil || body.ResourceType != "Parameters" {
		writeOutcome(w, http.StatusBadRequest, "error", "invalid", "body must be a FHIR Parameters resource")
		return
	}
	now := s.clock.Now()
	patientID, memberID, code, text := s.matchMember(body.Parameter, now)
	if code != "" {
		writeOutcome(w, http.StatusUnprocessableEntity, "error", code, text)
		return
	}
	s.mu.Lock()
	matches := []string{patientID}
	out := []obj{
		o("name", "MemberIdentifier", "valueIdentifier", o(
			"type", o("coding", []obj{o("system", sysV2_0203U, "code", "UMB")}),
			"system", sysMemberID,
			"value", memberID,
		)),
		o("name", "MemberId", "valueReference", ref("Patient/"+matches[0])),
	}
	if fl == oneUp {
		gid := "mm-" + randomID(8)
		g := o(
			"resourceType", "Group", "id", gid,
			"meta", o("lastUpdated", instant(now)),
			"active", true,
			"type", "person",
			"actual", true,
			"name", "$member-match result",
			"quantity", 1,
			"member", []obj{o("entity", ref("Patient/"+matches[0]))},
		)
		raw, _ := g.MarshalJSON()
		if err := s.store.putJSON(raw, now); err != nil {
			s.mu.Unlock()
			writeOutcome(w, http.StatusInternalServerError, "error", "exception", "store group: "+err.Error())
			return
		}
		out = append(out, o("name", "groupId", "valueString", gid))
	}
	s.mu.Unlock()
	writeJSON(w, "application/fhir+json", http.StatusOK, o("resourceType", "Parameters", "parameter", out))
}

// checkConsent checks an HRex Consent: a structural problem is code
// invalid, a consent the sandbox refuses is code business-rule with text
// "Consent rejected: ...". code "" means accepted.
func checkConsent(raw json.RawMessage, now time.Time) (code, text string) {
	var c struct {
		Status    string
		Policy    []struct{ URI string }
		Provision struct {
			Period *struct{ Start, End string }
		}
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "invalid", "parameter Consent is unreadable"
	}
	var regular, sensitive bool
	for _, p := range c.Policy {
		regular = regular || p.URI == ConsentRegular
		sensitive = sensitive || p.URI == ConsentSensitive
	}
	if c.Status == "" || (!regular && !sensitive) || c.Provision.Period == nil {
		return "invalid", "parameter Consent needs status, an HRex policy uri (#regular or #sensitive) and provision.period"
	}
	start, err1 := parseFHIRDate(c.Provision.Period.Start, false)
	end, err2 := parseFHIRDate(c.Provision.Period.End, true)
	if err1 != nil || err2 != nil {
		return "invalid", "parameter Consent: provision.period start and end must be FHIR dates"
	}
	switch {
	case c.Status != "active":
		return "business-rule", "Consent rejected: status is " + c.Status + ", not active"
	case !regular:
		return "business-rule", "Consent rejected: only the regular policy is supported, not sensitive"
	case (!start.IsZero() && now.Before(start)) || (!end.IsZero() && !now.Before(end)):
		return "business-rule", "Consent rejected: provision.period does not cover " + instant(now)
	}
	return "", ""
}

// parseFHIRDate parses a FHIR date or dateTime; "" is the zero time (an
// open period boundary). As a period end (end true) a date means the end
// of its day.
func parseFHIRDate(v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err == nil && end {
		t = t.AddDate(0, 0, 1)
	}
	return t, err
}

// memberParam is one parameter of a member match: its name and resource.
type memberParam struct {
	Name     string
	Resource json.RawMessage
}

// matchMember matches one member's parameters (MemberPatient,
// CoverageToMatch, Consent, maybe CoverageToLink): the member whose family
// name (case-insensitive), birthDate and member id all match. It returns
// the matched Patient's id and member number, or the issue code and text
// of a failure (invalid input, a consent refused, no unique match).
// Callers do not hold s.mu.
func (s *Server) matchMember(params []memberParam, now time.Time) (patientID, memberID, code, text string) {
	want := map[string]string{"MemberPatient": "Patient", "CoverageToMatch": "Coverage", "Consent": "Consent", "CoverageToLink": "Coverage"}
	got := make(map[string]json.RawMessage)
	for _, p := range params {
		typ, known := want[p.Name]
		if !known {
			return "", "", "invalid", fmt.Sprintf("unknown parameter %s", p.Name)
		}
		if _, dup := got[p.Name]; dup {
			return "", "", "invalid", fmt.Sprintf("parameter %s given more than once", p.Name)
		}
		var rt struct{ ResourceType string }
		if err := json.Unmarshal(p.Resource, &rt); err != nil || rt.ResourceType != typ {
			return "", "", "invalid", fmt.Sprintf("parameter %s must hold a %s resource", p.Name, typ)
		}
		got[p.Name] = p.Resource
	}
	for _, name := range []string{"MemberPatient", "CoverageToMatch", "Consent"} {
		if got[name] == nil {
			return "", "", "invalid", fmt.Sprintf("parameter %s is required", name)
		}
	}
	patient := decodeMember(got["MemberPatient"])
	family := ""
	for _, n := range patient.Name {
		if n.Family != "" {
			family = n.Family
			break
		}
	}
	if family == "" || patient.BirthDate == "" {
		return "", "", "invalid", "parameter MemberPatient needs a name with family and a birthDate"
	}
	var cov fhirCoverage
	_ = json.Unmarshal(got["CoverageToMatch"], &cov)
	if cov.SubscriberID == "" && len(cov.Identifier) == 0 {
		return "", "", "invalid", "parameter CoverageToMatch needs a subscriberId or an identifier"
	}
	if code, text := checkConsent(got["Consent"], now); code != "" {
		return "", "", code, text
	}

	s.mu.Lock()
	var matches []string
	for _, rec := range s.store.byType["Patient"] {
		p := decodeMember(rec.raw())
		if p.BirthDate != patient.BirthDate || !slices.ContainsFunc(p.Name, func(n struct {
			Family string
			Given  []string
		}) bool {
			return strings.EqualFold(n.Family, family)
		}) {
			continue
		}
		mb := p.memberID()
		sub := ""
		if c := s.coverageOf(rec.id); c != nil {
			sub = c.SubscriberID
		}
		if (cov.SubscriberID != "" && cov.SubscriberID == sub) ||
			slices.ContainsFunc(cov.Identifier, func(id fhirIdentifier) bool { return id.isMB() && id.Value == mb && mb != "" }) {
			matches = append(matches, rec.id)
			memberID = mb
		}
	}
	s.mu.Unlock()
	if len(matches) != 1 {
		return "", "", "not-found", "No unique member match"
	}
	return matches[0], memberID, "", ""
}
