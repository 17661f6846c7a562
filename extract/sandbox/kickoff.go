package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// apiError is a request the sandbox refuses, answered as an
// OperationOutcome.
type apiError struct {
	status int
	code   string // OperationOutcome issue code
	text   string
}

func (e *apiError) write(w http.ResponseWriter) { writeOutcome(w, e.status, "error", e.code, e.text) }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, code, fmt.Sprintf(format, args...)}
}

// exportTypes are the Da Vinci PDex exportType values $davinci-data-export
// takes.
var exportTypes = []string{
	"hl7.fhir.us.davinci-pdex#provider-download",
	"hl7.fhir.us.davinci-pdex#provider-snapshot",
	"hl7.fhir.us.davinci-pdex#provider-delta",
	"hl7.fhir.us.davinci-pdex#payertopayer",
}

// exportParams are the parsed kick-off parameters, from the query string
// (GET) or a Parameters body (POST).
type exportParams struct {
	types      []string // in export order; nil = the whole scope
	since      time.Time
	filters    map[string][]typeFilter // by type; a resource passes one of them
	elements   []string                // "name" or "Type.name"
	patients   []string                // Patient ids; nil = no restriction
	exportType string
	organizeBy string // organizeOutputBy: "" or Patient
	partial    bool   // allowPartialManifests
}

// param is one kick-off parameter, its value as a string.
type param struct{ name, value string }

// queryParams returns the parameters of a GET kick-off. _typeFilter is split
// on literal commas before unescaping, so a query can carry an escaped
// comma (%2C) inside, as the Bulk Data IG asks.
func queryParams(r *http.Request) ([]param, *apiError) {
	var out []param
	for _, kv := range strings.Split(r.URL.RawQuery, "&") {
		if kv == "" {
			continue
		}
		rk, rv, _ := strings.Cut(kv, "=")
		k, err := url.QueryUnescape(rk)
		if err != nil {
			return nil, badRequest("invalid", "unreadable query parameter %q", rk)
		}
		parts := []string{rv}
		if k == "_typeFilter" {
			parts = strings.Split(rv, ",")
		}
		for _, p := range parts {
			v, err := url.QueryUnescape(p)
			if err != nil {
				return nil, badRequest("invalid", "unreadable value of %s", k)
			}
			out = append(out, param{k, v})
		}
	}
	return out, nil
}

// bodyParams returns the parameters of a POST kick-off: a FHIR Parameters
// resource.
func bodyParams(r *http.Request) ([]param, *apiError) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		return nil, badRequest("invalid", "POST kick-off needs Content-Type application/fhir+json")
	}
	var body struct {
		ResourceType string `json:"resourceType"`
		Parameter    []map[string]json.RawMessage
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20)).Decode(&body); err != nil {
		return nil, badRequest("invalid", "unreadable Parameters body: %v", err)
	}
	if body.ResourceType != "Parameters" {
		return nil, badRequest("invalid", "POST kick-off body must be a Parameters resource, not %q", body.ResourceType)
	}
	var out []param
	for _, p := range body.Parameter {
		var name string
		_ = json.Unmarshal(p["name"], &name)
		var value string
		n := 0
		for k, raw := range p {
			if !strings.HasPrefix(k, "value") {
				continue
			}
			n++
			if k == "valueReference" {
				var ref jsonRef
				_ = json.Unmarshal(raw, &ref)
				value = ref.Reference
				continue
			}
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				value = string(raw) // valueBoolean, valueInteger
			} else {
				value = str
			}
		}
		if name == "" || n != 1 {
			return nil, badRequest("invalid", "parameter %q: needs a name and one value[x]", name)
		}
		out = append(out, param{name, value})
	}
	return out, nil
}

var elementRE = regexp.MustCompile(`^(?:([A-Z][A-Za-z]+)\.)?([a-z][A-Za-z0-9]*)$`)

// parseExport checks the kick-off parameters for an export at level ("",
// "Patient" or "Group"); davinci marks $davinci-data-export.
func parseExport(ps []param, level string, davinci bool) (exportParams, *apiError) {
	var ep exportParams
	seen := make(map[string]bool)
	for _, p := range ps {
		once := func() *apiError {
			if seen[p.name] {
				return badRequest("invalid", "%s given more than once", p.name)
			}
			seen[p.name] = true
			return nil
		}
		switch p.name {
		case "_outputFormat":
			if e := once(); e != nil {
				return ep, e
			}
			if !slices.Contains([]string{"application/fhir+ndjson", "application/ndjson", "ndjson"}, p.value) {
				return ep, badRequest("not-supported", "unsupported _outputFormat %s", p.value)
			}
		case "_since":
			if e := once(); e != nil {
				return ep, e
			}
			t, err := time.Parse(time.RFC3339Nano, p.value)
			if err != nil {
				return ep, badRequest("invalid", "_since must be a FHIR instant: %s", p.value)
			}
			ep.since = t
		case "_type":
			for _, t := range strings.Split(p.value, ",") {
				t = strings.TrimSpace(t)
				if !slices.Contains(resourceTypes, t) {
					return ep, badRequest("not-supported", "unsupported _type %s", t)
				}
				if !slices.Contains(ep.types, t) {
					ep.types = append(ep.types, t)
				}
			}
		case "_typeFilter":
			typ, f, err := parseTypeFilter(p.value)
			if err != nil {
				return ep, badRequest("not-supported", "unsupported _typeFilter %q: %v", p.value, err)
			}
			if ep.filters == nil {
				ep.filters = make(map[string][]typeFilter)
			}
			ep.filters[typ] = append(ep.filters[typ], f)
		case "_elements":
			for _, e := range strings.Split(p.value, ",") {
				e = strings.TrimSpace(e)
				m := elementRE.FindStringSubmatch(e)
				if m == nil || (m[1] != "" && !slices.Contains(resourceTypes, m[1])) {
					return ep, badRequest("not-supported", "unsupported _elements entry %q", e)
				}
				ep.elements = append(ep.elements, e)
			}
		case "includeAssociatedData":
			for _, v := range strings.Split(p.value, ",") {
				// The sandbox holds no Provenance: nothing to add.
				if v != "LatestProvenanceResources" && v != "RelevantProvenanceResources" {
					return ep, badRequest("not-supported", "unsupported includeAssociatedData %s", v)
				}
			}
		case "patient":
			if level == "" {
				return ep, badRequest("invalid", "patient applies to Patient and Group exports only")
			}
			for _, v := range strings.Split(p.value, ",") {
				id, ok := strings.CutPrefix(strings.TrimSpace(v), "Patient/")
				if !ok || id == "" {
					return ep, badRequest("invalid", "patient must reference Patient/<id>, not %q", v)
				}
				ep.patients = append(ep.patients, id)
			}
		case "allowPartialManifests":
			if e := once(); e != nil {
				return ep, e
			}
			ep.partial = p.value == "true"
		case "organizeOutputBy":
			if e := once(); e != nil {
				return ep, e
			}
			if p.value != "Patient" {
				return ep, badRequest("not-supported", "organizeOutputBy %s is not supported: only Patient", p.value)
			}
			ep.organizeBy = p.value
		case "exportType":
			if !davinci {
				return ep, badRequest("not-supported", "exportType applies to $davinci-data-export only")
			}
			if e := once(); e != nil {
				return ep, e
			}
			if !slices.Contains(exportTypes, p.value) {
				return ep, badRequest("not-supported", "unsupported exportType %s", p.value)
			}
			ep.exportType = p.value
		default:
			return ep, badRequest("not-supported", "unknown parameter %s", p.name)
		}
	}
	if davinci && ep.exportType == "" {
		return ep, badRequest("required", "$davinci-data-export needs exportType (e.g. hl7.fhir.us.davinci-pdex#provider-download)")
	}
	// Export order follows resourceTypes, whatever order _type lists.
	slices.SortFunc(ep.types, func(a, b string) int {
		return slices.Index(resourceTypes, a) - slices.Index(resourceTypes, b)
	})
	return ep, nil
}

// typeFilter is one _typeFilter query: a resource passes when it passes
// every condition.
type typeFilter []func(*record) bool

func (f typeFilter) match(rec *record) bool {
	for _, c := range f {
		if !c(rec) {
			return false
		}
	}
	return true
}

// parseTypeFilter parses "Type?query". The sandbox evaluates _lastUpdated
// (prefixes gt, ge, lt, le; an instant or a date), _id and status (lists
// of values, any matches); anything else is an error.
func parseTypeFilter(s string) (string, typeFilter, error) {
	typ, q, ok := strings.Cut(s, "?")
	if !ok || !slices.Contains(resourceTypes, typ) {
		return "", nil, fmt.Errorf("want Type?search with a known type")
	}
	vals, err := url.ParseQuery(q)
	if err != nil || len(vals) == 0 {
		return "", nil, fmt.Errorf("unreadable search")
	}
	var f typeFilter
	for name, vs := range vals {
		for _, v := range vs {
			switch name {
			case "_lastUpdated":
				c, err := lastUpdatedCond(v)
				if err != nil {
					return "", nil, err
				}
				f = append(f, c)
			case "_id":
				ids := strings.Split(v, ",")
				f = append(f, func(r *record) bool { return slices.Contains(ids, r.id) })
			case "status":
				codes := strings.Split(v, ",")
				f = append(f, func(r *record) bool {
					var x struct{ Status string }
					_ = json.Unmarshal(r.raw(), &x)
					return slices.Contains(codes, x.Status)
				})
			default:
				return "", nil, fmt.Errorf("search parameter %s not supported", name)
			}
		}
	}
	return typ, f, nil
}

func lastUpdatedCond(v string) (func(*record) bool, error) {
	if len(v) < 3 {
		return nil, fmt.Errorf("_lastUpdated %q needs a prefix", v)
	}
	prefix, rest := v[:2], v[2:]
	t, err := time.Parse(time.RFC3339Nano, rest)
	if err != nil {
		if t, err = time.Parse(time.DateOnly, rest); err != nil {
			return nil, fmt.Errorf("_lastUpdated %q: want an instant or a date", v)
		}
	}
	switch prefix {
	case "gt":
		return func(r *record) bool { return r.updated.After(t) }, nil
	case "ge":
		return func(r *record) bool { return !r.updated.Before(t) }, nil
	case "lt":
		return func(r *record) bool { return r.updated.Before(t) }, nil
	case "le":
		return func(r *record) bool { return !r.updated.After(t) }, nil
	}
	return nil, fmt.Errorf("_lastUpdated prefix %q not supported (gt, ge, lt, le)", prefix)
}

// subsetted is the meta.tag _elements adds.
var subsetted = o("system", "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code", "SUBSETTED", "display", "subsetted")

// applyElements keeps resourceType, id, meta and the elements listed for
// typ, and tags the result SUBSETTED. A type no element names is left
// whole.
func applyElements(raw []byte, typ string, elements []string) []byte {
	var keep []string
	for _, e := range elements {
		t, name, ok := strings.Cut(e, ".")
		if !ok {
			keep = append(keep, e)
		} else if t == typ {
			keep = append(keep, name)
		}
	}
	if len(keep) == 0 {
		return raw
	}
	var top orderedObject
	if err := json.Unmarshal(raw, &top); err != nil {
		return raw
	}
	var out orderedObject
	for i, k := range top.keys {
		if k == "resourceType" || k == "id" || k == "meta" || slices.Contains(keep, k) {
			out.set(k, top.vals[i])
		}
	}
	var mt orderedObject
	if m, ok := out.get("meta"); ok {
		_ = json.Unmarshal(m, &mt)
	}
	var tags []json.RawMessage
	if t, ok := mt.get("tag"); ok {
		_ = json.Unmarshal(t, &tags)
	}
	tb, _ := json.Marshal(subsetted)
	tags = append(tags, tb)
	all, _ := json.Marshal(tags)
	mt.set("tag", all)
	mb, _ := json.Marshal(mt)
	if _, ok := out.get("meta"); ok {
		out.set("meta", mb)
	} else {
		out.insertAfter("id", "meta", mb)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return raw
	}
	return b
}
