package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// BulkMatchExtension is the Da Vinci PDex extension on Group.member.entity
// that names the MemberPatient a member was matched from.
const BulkMatchExtension = "http://hl7.org/fhir/us/davinci-pdex/StructureDefinition/base-ext-match-parameters"

// capabilities answers GET /fhir/metadata: a CapabilityStatement that
// lists the operations the sandbox serves, $bulk-member-match among them
// when Config.BulkMemberMatch is set.
func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) {
	ops := []obj{o("name", "export", "definition", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export")}
	if s.cfg.BulkMemberMatch {
		ops = append(ops, o("name", "bulk-member-match", "definition", "http://hl7.org/fhir/us/davinci-pdex/OperationDefinition/BulkMemberMatch"))
	}
	writeJSON(w, "application/fhir+json", http.StatusOK, o(
		"resourceType", "CapabilityStatement", "status", "active", "kind", "instance", "fhirVersion", "4.0.1",
		"format", []string{"json"},
		"rest", []obj{o("mode", "server", "resource", []obj{o("type", "Group", "operation", ops)})},
	))
}

// bulkMemberMatch answers Da Vinci PDex $bulk-member-match: one
// MemberBundle parameter per member, each with the parts of a
// $member-match, matched as memberMatch matches. It answers 202 and a
// status URL whose GET gives the Parameters: MatchedMembers, a Group the
// sandbox keeps (for Group/{id}/$export), whose members carry
// BulkMatchExtension naming their MemberPatient (Patient/{its id});
// NonMatchedMembers and ConsentConstrainedMembers, whose members name the
// MemberPatients they stand for.
func (s *Server) bulkMemberMatch(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "$bulk-member-match is POST")
		return
	}
	var body struct {
		ResourceType string
		Parameter    []struct {
			Name string
			Part []memberParam
		}
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&body); err != nil || body.ResourceType != "Parameters" {
		writeOutcome(w, http.StatusBadRequest, "error", "invalid", "body must be a FHIR Parameters resource")
		return
	}
	now := s.clock.Now()
	var matched, unmatched, constrained []obj
	for i, p := range body.Parameter {
		if p.Name != "MemberBundle" {
			writeOutcome(w, http.StatusBadRequest, "error", "invalid", "parameter "+p.Name+": want MemberBundle")
			return
		}
		input := ""
		for _, part := range p.Part {
			if part.Name == "MemberPatient" {
				var id struct{ ID string }
				_ = json.Unmarshal(part.Resource, &id)
				input = "Patient/" + id.ID
			}
		}
		if input == "Patient/" {
			writeOutcome(w, http.StatusBadRequest, "error", "invalid", "MemberBundle "+strconv.Itoa(i+1)+": MemberPatient needs an id")
			return
		}
		named := o("entity", o("reference", input))
		patientID, _, code, text := s.matchMember(p.Part, now)
		switch {
		case code == "":
			matched = append(matched, o("entity", o("reference", "Patient/"+patientID,
				"extension", []obj{o("url", BulkMatchExtension, "valueReference", o("reference", input))})))
		case code == "business-rule" && strings.HasPrefix(text, "Consent rejected"):
			constrained = append(constrained, named)
		default:
			unmatched = append(unmatched, named)
		}
	}
	group := func(id, name string, members []obj) obj {
		return o("resourceType", "Group", "id", id, "meta", o("lastUpdated", instant(now)),
			"active", true, "type", "person", "actual", true, "name", name, "quantity", len(members), "member", members)
	}
	id := randomID(12)
	var out []obj
	s.mu.Lock()
	if len(matched) > 0 {
		g := group("bmm-"+id, "$bulk-member-match matched members", matched)
		raw, _ := g.MarshalJSON()
		if err := s.store.putJSON(raw, now); err != nil {
			s.mu.Unlock()
			writeOutcome(w, http.StatusInternalServerError, "error", "exception", "store group: "+err.Error())
			return
		}
		out = append(out, o("name", "MatchedMembers", "resource", g))
	}
	if len(unmatched) > 0 {
		out = append(out, o("name", "NonMatchedMembers", "resource", group("bmm-"+id+"-none", "$bulk-member-match members not matched", unmatched)))
	}
	if len(constrained) > 0 {
		out = append(out, o("name", "ConsentConstrainedMembers", "resource", group("bmm-"+id+"-consent", "$bulk-member-match members whose consent was refused", constrained)))
	}
	answer, _ := o("resourceType", "Parameters", "parameter", out).MarshalJSON()
	if s.bulk == nil {
		s.bulk = map[string]*bulkMatch{}
	}
	s.bulk[id] = &bulkMatch{answer: answer}
	s.mu.Unlock()
	w.Header().Set("Content-Location", StandardBase(rootOf(r))+"/$bulk-member-match-status/"+id)
	writeOutcome(w, http.StatusAccepted, "information", "informational", "bulk member match accepted")
}

// bulkMatch is a $bulk-member-match answer and whether it was polled.
type bulkMatch struct {
	answer []byte
	polled bool
}

// bulkMatchStatus answers the status URL of a $bulk-member-match: the
// first poll 202, then the answer.
func (s *Server) bulkMatchStatus(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	b := s.bulk[id]
	var polled bool
	if b != nil {
		polled, b.polled = b.polled, true
	}
	s.mu.Unlock()
	switch {
	case b == nil:
		writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown bulk member match "+id)
	case !polled:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusAccepted)
	default:
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Write(b.answer)
	}
}
