package extract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
)

// ErrUnsupportedFilter means a _typeFilter the server refused holds a
// search fhirlake cannot evaluate itself: the export would hold more
// than was asked for, so it is not run.
var ErrUnsupportedFilter = errors.New("_typeFilter fhirlake cannot evaluate")

// A server that refuses _typeFilter exports everything of the type; the
// client then keeps, of each file of a filtered type, the resources that
// match one of the type's filters (FHIR search semantics for the common
// token and date parameters). Written here rather than taken from a
// library: no Go library evaluates FHIR search parameters on resources,
// and the few we need are a table of element paths.

// searchKind is how a search parameter compares.
type searchKind int

const (
	tokenSearch searchKind = iota
	dateSearch
)

// searchParam is one search parameter: its kind and the element paths it
// reads (dot-separated; a last segment without a match in the resource
// matches a choice type: effective reads effectiveDateTime or
// effectivePeriod).
type searchParam struct {
	kind  searchKind
	paths []string
}

// searchParams are the parameters fhirlake evaluates, by resource type
// ("" for every type); the paths follow the FHIR R4 search parameter
// definitions (and CARIN Blue Button's for ExplanationOfBenefit).
var searchParams = map[string]map[string]searchParam{
	"": {
		"_id":          {tokenSearch, []string{"id"}},
		"_lastUpdated": {dateSearch, []string{"meta.lastUpdated"}},
		"status":       {tokenSearch, []string{"status"}},
	},
	"AllergyIntolerance": {"clinical-status": {tokenSearch, []string{"clinicalStatus"}}, "category": {tokenSearch, []string{"category"}}, "code": {tokenSearch, []string{"code"}}},
	"Condition": {
		"category": {tokenSearch, []string{"category"}}, "code": {tokenSearch, []string{"code"}},
		"clinical-status": {tokenSearch, []string{"clinicalStatus"}}, "onset-date": {dateSearch, []string{"onset"}},
		"recorded-date": {dateSearch, []string{"recordedDate"}},
	},
	"Coverage":         {"type": {tokenSearch, []string{"type"}}},
	"DiagnosticReport": {"category": {tokenSearch, []string{"category"}}, "code": {tokenSearch, []string{"code"}}, "date": {dateSearch, []string{"effective"}}},
	"Encounter":        {"class": {tokenSearch, []string{"class"}}, "type": {tokenSearch, []string{"type"}}, "date": {dateSearch, []string{"period"}}},
	"ExplanationOfBenefit": {
		"type": {tokenSearch, []string{"type"}}, "created": {dateSearch, []string{"created"}},
		"service-date": {dateSearch, []string{"billablePeriod", "item.serviced"}},
	},
	"Immunization":       {"date": {dateSearch, []string{"occurrence"}}, "vaccine-code": {tokenSearch, []string{"vaccineCode"}}},
	"MedicationDispense": {"code": {tokenSearch, []string{"medicationCodeableConcept"}}, "whenhandedover": {dateSearch, []string{"whenHandedOver"}}},
	"MedicationRequest": {
		"intent": {tokenSearch, []string{"intent"}}, "code": {tokenSearch, []string{"medicationCodeableConcept"}},
		"authoredon": {dateSearch, []string{"authoredOn"}},
	},
	"Observation": {"category": {tokenSearch, []string{"category"}}, "code": {tokenSearch, []string{"code"}}, "date": {dateSearch, []string{"effective"}}},
	"Procedure":   {"code": {tokenSearch, []string{"code"}}, "date": {dateSearch, []string{"performed"}}},
}

// TypeFilter is one _typeFilter query, "Type?param=value&...": a resource
// of Type matches when it meets every condition (a condition's
// comma-separated values are alternatives).
type TypeFilter struct {
	Type  string
	conds []condition
}

type condition struct {
	param  searchParam
	values []string // for a date: prefix and value, e.g. ge2024-01-01
}

// ParseTypeFilter reads a _typeFilter query. A parameter or modifier
// fhirlake cannot evaluate is ErrUnsupportedFilter, naming it.
func ParseTypeFilter(q string) (TypeFilter, error) {
	typ, query, ok := strings.Cut(q, "?")
	if !ok || typ == "" || !unicode.IsUpper(rune(typ[0])) {
		return TypeFilter{}, fmt.Errorf("_typeFilter %q: want Type?search: %w", q, ErrUnsupportedFilter)
	}
	vals, err := url.ParseQuery(query)
	if err != nil || len(vals) == 0 {
		return TypeFilter{}, fmt.Errorf("_typeFilter %q: unreadable search: %w", q, ErrUnsupportedFilter)
	}
	f := TypeFilter{Type: typ}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range vals {
			if !yield(k) {
				return
			}
		}
	}) {
		p, ok := searchParams[typ][name]
		if !ok {
			p, ok = searchParams[""][name]
		}
		if !ok {
			if strings.Contains(name, ":") {
				return TypeFilter{}, fmt.Errorf("_typeFilter %q: the modifier of %s: %w", q, name, ErrUnsupportedFilter)
			}
			return TypeFilter{}, fmt.Errorf("_typeFilter %q: the search parameter %s of %s: %w", q, name, typ, ErrUnsupportedFilter)
		}
		for _, v := range vals[name] {
			c := condition{param: p, values: strings.Split(v, ",")}
			if p.kind == dateSearch {
				for _, d := range c.values {
					if _, _, _, err := parseDateSearch(d); err != nil {
						return TypeFilter{}, fmt.Errorf("_typeFilter %q: %s=%s: %v: %w", q, name, d, err, ErrUnsupportedFilter)
					}
				}
			}
			f.conds = append(f.conds, c)
		}
	}
	return f, nil
}

// Match reports whether the resource (decoded JSON) meets every
// condition of the filter.
func (f TypeFilter) Match(res map[string]any) bool {
	for _, c := range f.conds {
		if !c.match(res) {
			return false
		}
	}
	return true
}

func (c condition) match(res map[string]any) bool {
	var found []any
	for _, p := range c.param.paths {
		found = append(found, lookup(res, strings.Split(p, "."))...)
	}
	for _, v := range c.values {
		for _, x := range found {
			if c.param.kind == tokenSearch && tokenMatch(x, v) || c.param.kind == dateSearch && dateMatch(x, v) {
				return true
			}
		}
	}
	return false
}

// lookup returns the values at path in v, through arrays; a last segment
// that names no member matches a choice type's (effective:
// effectiveDateTime, effectivePeriod).
func lookup(v any, path []string) []any {
	if len(path) == 0 {
		if arr, ok := v.([]any); ok {
			return arr
		}
		return []any{v}
	}
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, lookup(e, path)...)
		}
		return out
	case map[string]any:
		if next, ok := x[path[0]]; ok {
			return lookup(next, path[1:])
		}
		if len(path) == 1 {
			for k, next := range x {
				if rest, ok := strings.CutPrefix(k, path[0]); ok && rest != "" && unicode.IsUpper(rune(rest[0])) {
					return lookup(next, nil)
				}
			}
		}
	}
	return nil
}

// tokenMatch matches a token search value (code, system|code, system|,
// |code) against a code, a Coding, a CodeableConcept or an Identifier.
func tokenMatch(x any, v string) bool {
	system, code, hasSystem := strings.Cut(v, "|")
	if !hasSystem {
		code, system = system, ""
	}
	switch t := x.(type) {
	case string:
		return !hasSystem && t == code
	case map[string]any:
		if codings, ok := t["coding"].([]any); ok {
			for _, cd := range codings {
				if tokenMatch(cd, v) {
					return true
				}
			}
			return false
		}
		s, _ := t["system"].(string)
		c, _ := t["code"].(string)
		if c == "" {
			c, _ = t["value"].(string) // an Identifier
		}
		switch {
		case !hasSystem:
			return c == code
		case code == "":
			return s == system
		case system == "":
			return s == "" && c == code
		default:
			return s == system && c == code
		}
	}
	return false
}

// parseDateSearch reads a date search value: a prefix (eq by default) and
// a date, dateTime or instant, as the range of instants it covers.
func parseDateSearch(v string) (prefix string, lo, hi time.Time, err error) {
	prefix = "eq"
	if len(v) > 2 && unicode.IsLetter(rune(v[0])) {
		prefix, v = v[:2], v[2:]
	}
	if !slices.Contains([]string{"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"}, prefix) {
		return "", lo, hi, fmt.Errorf("the prefix %s", prefix)
	}
	lo, hi, ok := dateRange(v)
	if !ok {
		return "", lo, hi, fmt.Errorf("not a FHIR date, dateTime or instant")
	}
	return prefix, lo, hi, nil
}

// dateRange is the range of instants a FHIR date, dateTime or instant
// covers: a year, a month, a day, or one instant. A dateTime without a
// zone is read as UTC.
func dateRange(s string) (lo, hi time.Time, ok bool) {
	for _, l := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	} {
		if t, err := time.Parse(l.layout, s); err == nil {
			return t, l.next(t).Add(-time.Nanosecond), true
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, t, true
		}
	}
	return lo, hi, false
}

// dateMatch compares a resource's date, dateTime, instant or Period with
// a date search value (FHIR search semantics on ranges).
func dateMatch(x any, v string) bool {
	prefix, slo, shi, err := parseDateSearch(v)
	if err != nil {
		return false
	}
	var tlo, thi time.Time
	switch t := x.(type) {
	case string:
		var ok bool
		if tlo, thi, ok = dateRange(t); !ok {
			return false
		}
	case map[string]any: // a Period: an open end is unbounded
		start, _ := t["start"].(string)
		end, _ := t["end"].(string)
		if start == "" && end == "" {
			return false
		}
		tlo, thi = time.Unix(-1<<40, 0), time.Unix(1<<40, 0)
		if lo, _, ok := dateRange(start); ok {
			tlo = lo
		}
		if _, hi, ok := dateRange(end); ok {
			thi = hi
		}
	default:
		return false
	}
	switch prefix {
	case "eq":
		return !tlo.Before(slo) && !thi.After(shi)
	case "ne":
		return tlo.Before(slo) || thi.After(shi)
	case "gt":
		return thi.After(shi)
	case "lt":
		return tlo.Before(slo)
	case "ge":
		return !thi.Before(slo)
	case "le":
		return !tlo.After(shi)
	case "sa":
		return tlo.After(shi)
	case "eb":
		return thi.Before(slo)
	}
	return false
}

// rewriteFile keeps, of the NDJSON file at path, the lines keep accepts,
// and returns the file as it is afterwards and the number of lines
// dropped. A line that is not a JSON object is kept: transform rejects it
// with its line number.
func (c *Client) rewriteFile(path string, f File, keep func(res map[string]any) bool) (File, int64, error) {
	in, err := os.Open(path)
	if err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	defer in.Close()
	out, err := atomicfile.Create(path)
	if err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	defer out.Abort()
	if err := out.Chmod(c.fileMode()); err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	w := bufio.NewWriterSize(localWriter{out}, 1<<20)
	sc := lineScanner(in)
	var kept, dropped int64
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var res map[string]any
		if json.Unmarshal(line, &res) == nil && !keep(res) {
			dropped++
			continue
		}
		kept++
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	if err := w.Flush(); err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	if err := out.Commit(); err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return f, 0, fmt.Errorf("rewrite %s: %w", f.Name, err)
	}
	f.Lines, f.Bytes, f.SHA256, f.Filtered = kept, fi.Size(), sum, true
	f.Invalid, f.FirstInvalid = 0, 0 // counted again by transform
	return f, dropped, nil
}

// isHeader reports whether res is the header of a block of organized
// output: a Parameters resource with a parameter named header.
func isHeader(res map[string]any) bool {
	if res["resourceType"] != "Parameters" {
		return false
	}
	ps, _ := res["parameter"].([]any)
	for _, p := range ps {
		if m, ok := p.(map[string]any); ok && m["name"] == "header" {
			return true
		}
	}
	return false
}

// rewriteFiles rewrites, once each (a resumed job rewrote some), the
// output files that need it: the headers of organized output go, and of
// the types filters name only the resources that match one of the
// type's filters stay. Each rewritten file is recorded in st. It returns
// the files and the number of resources the filters dropped.
func (c *Client) rewriteFiles(dir string, files []File, filters []TypeFilter, st *jobStore) ([]File, int64, error) {
	byType := map[string][]TypeFilter{}
	for _, f := range filters {
		byType[f.Type] = append(byType[f.Type], f)
	}
	var dropped int64
	for i, f := range files {
		if f.Kind != KindOutput || f.Filtered || !f.Organized && len(byType[f.Type]) == 0 {
			continue
		}
		var filteredOut int64
		keep := func(res map[string]any) bool {
			if f.Organized && isHeader(res) {
				return false
			}
			typ, _ := res["resourceType"].(string)
			fs := byType[typ]
			if len(fs) == 0 || slices.ContainsFunc(fs, func(flt TypeFilter) bool { return flt.Match(res) }) {
				return true
			}
			filteredOut++
			return false
		}
		nf, _, err := c.rewriteFile(filepath.Join(dir, f.Name), f, keep)
		if err != nil {
			return nil, 0, err
		}
		if err := st.update(func(j *Job) { j.Files[nf.Name] = nf }); err != nil {
			return nil, 0, err
		}
		files[i] = nf
		dropped += filteredOut
	}
	return files, dropped, nil
}
