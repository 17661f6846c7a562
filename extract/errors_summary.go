package extract

import (
	"bytes"
	"cmp"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// ErrorSummary counts the issues of an export's error files (manifest
// error[], OperationOutcomes the server wrote about the export) by
// severity. Types lists the resource types the error-severity issues name
// (from the issue expression/location or the diagnostics text); an empty
// Types with Errors > 0 means the server did not say which types failed.
//
// An error file the server no longer had (404 or 410) counts in
// MissingFiles and, since its issues are unknown, as one error that names
// no type: a caller that holds back the types with errors holds back all.
type ErrorSummary struct {
	Errors   int64    `json:"errors"`
	Warnings int64    `json:"warnings"`
	Types    []string `json:"types,omitempty"`
	// ByType breaks the issues down by the resource type they name ("" for
	// none) and severity, sorted by type then severity. An issue that
	// names two types counts under each.
	ByType []IssueCount `json:"by_type,omitempty"`
	// MissingFiles counts error files that answered 404 or 410.
	MissingFiles int64 `json:"missing_files,omitempty"`
}

// IssueCount is the number of issues of one severity that name one
// resource type, in the error files of an export.
type IssueCount struct {
	// ResourceType is the type the issues name, "" when they name none.
	ResourceType string `json:"resource_type"`
	// Severity is fatal, error, warning, information, or unknown for a
	// value outside FHIR's IssueSeverity.
	Severity string `json:"severity"`
	Issues   int64  `json:"issues"`
	// Codes are the distinct FHIR IssueType codes of the issues (such as
	// exception, incomplete, not-found), sorted; codes outside that value
	// set are left out.
	Codes []string `json:"codes,omitempty"`
}

// resourceTypes are the names looked for in diagnostics.
var resourceTypes = []string{
	"AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "ClaimResponse", "Condition", "Coverage",
	"Device", "DiagnosticReport", "DocumentReference", "Encounter", "ExplanationOfBenefit", "Goal",
	"Group", "Immunization", "Location", "Medication", "MedicationDispense", "MedicationRequest",
	"Observation", "Organization", "Patient", "Practitioner", "PractitionerRole", "Procedure",
	"Provenance", "RelatedPerson", "ServiceRequest",
}

// resourceTypeNames are resourceTypes as bytes.
var resourceTypeNames = func() [][]byte {
	out := make([][]byte, len(resourceTypes))
	for i, t := range resourceTypes {
		out[i] = []byte(t)
	}
	return out
}()

// severities are FHIR's IssueSeverity codes, then the name for any other
// value.
var severities = []string{"fatal", "error", "warning", "information", "unknown"}

// issueCodes are FHIR R4's IssueType codes: the only codes a summary
// repeats, so that nothing else a server writes reaches a log or a table.
var issueCodes = []string{
	"invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
	"expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
	"multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
	"too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
	"exception", "timeout", "incomplete", "throttled", "informational",
}

// tally counts issues by (type index, severity index); type index
// len(resourceTypes) stands for "no type".
type tally struct {
	issues [][]int64  // [type][severity]
	codes  [][]uint64 // [type][severity]: bit k set for issueCodes[k]
}

func newTally() *tally {
	t := &tally{issues: make([][]int64, len(resourceTypes)+1), codes: make([][]uint64, len(resourceTypes)+1)}
	for i := range t.issues {
		t.issues[i] = make([]int64, len(severities))
		t.codes[i] = make([]uint64, len(severities))
	}
	return t
}

// summarizeErrors reads the OperationOutcomes of the error files. Content is
// never logged; only counts, type names, severities and FHIR issue codes
// leave this function. Its memory is a line and the scanner's buffers,
// whatever the lines hold.
func summarizeErrors(dir string, files []File) ErrorSummary {
	var s ErrorSummary
	t := newTally()
	var js jsonScanner
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
				continue
			}
			if ok, _, _ := js.scan(line); !ok {
				continue
			}
			eachElement(js.field(line, "issue"), func(is []byte) bool {
				js.countIssue(is, &s, t)
				return true
			})
		}
		fh.Close()
	}
	for ti, bySev := range t.issues {
		typ := ""
		if ti < len(resourceTypes) {
			typ = resourceTypes[ti]
		}
		for si, n := range bySev {
			if n == 0 {
				continue
			}
			ic := IssueCount{ResourceType: typ, Severity: severities[si], Issues: n}
			for k, code := range issueCodes {
				if t.codes[ti][si]&(1<<k) != 0 {
					ic.Codes = append(ic.Codes, code)
				}
			}
			sort.Strings(ic.Codes)
			s.ByType = append(s.ByType, ic)
			if typ != "" && (si == 0 || si == 1) {
				s.Types = append(s.Types, typ)
			}
		}
	}
	s.Types = slices.Compact(s.Types) // both fatal and error add a type
	sort.Strings(s.Types)
	slices.SortFunc(s.ByType, func(a, b IssueCount) int {
		return cmp.Or(cmp.Compare(a.ResourceType, b.ResourceType), cmp.Compare(a.Severity, b.Severity))
	})
	return s
}

// countIssue adds one issue of an OperationOutcome to s and t.
func (js *jsonScanner) countIssue(is []byte, s *ErrorSummary, t *tally) {
	if len(is) == 0 || is[0] != '{' {
		return
	}
	var sev string
	var types uint32 // bit k set for resourceTypes[k]
	code := -1
	eachMember(is, func(key, val []byte) bool {
		switch {
		case js.keyIs(key, "severity"):
			if v, ok := js.str(val); ok && sev == "" {
				sev = severityOf(v)
			}
		case js.keyIs(key, "code"):
			if v, ok := js.str(val); ok && code < 0 {
				code = slices.Index(issueCodes, string(v))
			}
		case js.keyIs(key, "expression"), js.keyIs(key, "location"):
			eachElement(val, func(e []byte) bool {
				if v, ok := js.str(e); ok {
					types |= typesIn(v)
				}
				return true
			})
		case js.keyIs(key, "diagnostics"):
			if v, ok := js.str(val); ok {
				types |= typesIn(v)
			}
		case js.keyIs(key, "details"):
			if v, ok := js.str(js.field(val, "text")); ok {
				types |= typesIn(v)
			}
		}
		return true
	})
	switch sev {
	case "":
		return // not an issue we can count
	case "error", "fatal":
		s.Errors++
	case "warning":
		s.Warnings++
	}
	si := slices.Index(severities, sev)
	add := func(ti int) {
		t.issues[ti][si]++
		if code >= 0 {
			t.codes[ti][si] |= 1 << code
		}
	}
	if types == 0 {
		add(len(resourceTypes))
	}
	for ti := range resourceTypes {
		if types&(1<<ti) != 0 {
			add(ti)
		}
	}
}

// severityOf maps an issue severity to one of severities.
func severityOf(v []byte) string {
	for _, s := range severities[:4] {
		if string(v) == s {
			return s
		}
	}
	return "unknown"
}

// typesIn returns the resource types text mentions, as a set of bits.
func typesIn(text []byte) uint32 {
	var out uint32
	for i, t := range resourceTypeNames {
		if containsWord(text, t) {
			out |= 1 << i
		}
	}
	return out
}

// containsWord reports whether word occurs in s not as part of a longer
// identifier (so "Claim" does not match "ClaimResponse").
func containsWord(s, word []byte) bool {
	for i := 0; ; {
		j := bytes.Index(s[i:], word)
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

// Merge adds the issues of o to s: the summary of the error files of
// several exports loaded as one run.
func (s ErrorSummary) Merge(o ErrorSummary) ErrorSummary {
	out := ErrorSummary{
		Errors: s.Errors + o.Errors, Warnings: s.Warnings + o.Warnings, MissingFiles: s.MissingFiles + o.MissingFiles,
		Types: slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(s.Types), o.Types...)))),
	}
	for _, c := range append(slices.Clone(s.ByType), o.ByType...) {
		i := slices.IndexFunc(out.ByType, func(d IssueCount) bool {
			return d.ResourceType == c.ResourceType && d.Severity == c.Severity
		})
		if i < 0 {
			c.Codes = slices.Clone(c.Codes)
			out.ByType = append(out.ByType, c)
			continue
		}
		out.ByType[i].Issues += c.Issues
		out.ByType[i].Codes = slices.Compact(slices.Sorted(slices.Values(append(out.ByType[i].Codes, c.Codes...))))
	}
	slices.SortFunc(out.ByType, func(a, b IssueCount) int {
		return cmp.Or(cmp.Compare(a.ResourceType, b.ResourceType), cmp.Compare(a.Severity, b.Severity))
	})
	if len(out.Types) == 0 {
		out.Types = nil
	}
	return out
}
