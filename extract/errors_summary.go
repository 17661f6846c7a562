package extract

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/valyala/fastjson"
)

// ErrorSummary counts the issues of an export's error files by severity.
// Types lists the resource types the error-severity issues name (from the
// issue expression/location or the diagnostics text); an empty Types with
// Errors > 0 means the server did not say which types failed.
type ErrorSummary struct {
	Errors   int64    `json:"errors"`
	Warnings int64    `json:"warnings"`
	Types    []string `json:"types,omitempty"`
}

// resourceTypes are the names looked for in diagnostics.
var resourceTypes = []string{
	"AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "ClaimResponse", "Condition", "Coverage",
	"Device", "DiagnosticReport", "DocumentReference", "Encounter", "ExplanationOfBenefit", "Goal",
	"Group", "Immunization", "Location", "Medication", "MedicationDispense", "MedicationRequest",
	"Observation", "Organization", "Patient", "Practitioner", "PractitionerRole", "Procedure",
	"Provenance", "RelatedPerson", "ServiceRequest",
}

// summarizeErrors reads the OperationOutcomes of the error files. Content is
// never logged; only counts and type names leave this function.
func summarizeErrors(dir string, files []File) ErrorSummary {
	var s ErrorSummary
	types := map[string]bool{}
	var p fastjson.Parser
	for _, f := range files {
		if f.Kind != KindError {
			continue
		}
		fh, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			continue
		}
		sc := lineScanner(fh)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue // a parse error costs an allocation; a blank line need not
			}
			v, err := p.ParseBytes(line)
			if err != nil {
				continue
			}
			for _, is := range v.GetArray("issue") {
				switch string(is.GetStringBytes("severity")) {
				case "error", "fatal":
					s.Errors++
					for _, t := range issueTypes(is) {
						types[t] = true
					}
				case "warning":
					s.Warnings++
				}
			}
		}
		fh.Close()
	}
	for t := range types {
		s.Types = append(s.Types, t)
	}
	sort.Strings(s.Types)
	return s
}

// issueTypes finds resource type names an issue mentions.
func issueTypes(is *fastjson.Value) []string {
	var texts []string
	for _, k := range []string{"expression", "location"} {
		for _, e := range is.GetArray(k) {
			texts = append(texts, string(e.GetStringBytes()))
		}
	}
	texts = append(texts, string(is.GetStringBytes("diagnostics")), string(is.GetStringBytes("details", "text")))
	var out []string
	for _, t := range resourceTypes {
		for _, txt := range texts {
			if containsWord(txt, t) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// containsWord reports whether word occurs in s not as part of a longer
// identifier (so "Claim" does not match "ClaimResponse").
func containsWord(s, word string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		if (start == 0 || !isIdent(s[start-1])) && (end == len(s) || !isIdent(s[end])) {
			return true
		}
		i = end
	}
}

func isIdent(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_'
}
