package extract

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Request says what to export. The zero value is a system-level export of
// everything.
type Request struct {
	// Group exports Group/{Group}/$export; empty means a system or
	// Patient-level export.
	Group string `json:"group,omitempty"`
	// Patient selects Patient/$export when Group is empty.
	Patient bool `json:"patient,omitempty"`
	// ExportType, with Group, uses the Da Vinci PDex operation
	// Group/{id}/$davinci-data-export with this exportType
	// (e.g. hl7.fhir.us.davinci-pdex#provider-download).
	ExportType string `json:"exportType,omitempty"`
	// Types is the _type filter; empty means every type the server offers.
	Types []string `json:"types,omitempty"`
	// Since is the _since filter; zero means everything.
	Since time.Time `json:"since,omitzero"`
	// TypeFilters are _typeFilter queries, e.g. "Observation?category=laboratory".
	TypeFilters []string `json:"typeFilters,omitempty"`
	// Elements is the _elements filter.
	Elements []string `json:"elements,omitempty"`
	// OutputFormat is _outputFormat; empty leaves the server default (ndjson).
	OutputFormat string `json:"outputFormat,omitempty"`
	// IncludeAssociatedData values, e.g. LatestProvenanceResources.
	IncludeAssociatedData []string `json:"includeAssociatedData,omitempty"`
	// Patients restricts the export to these patient references
	// ("Patient/123"); only with Post.
	Patients []string `json:"patients,omitempty"`
	// OrganizeOutputBy asks the server to group output by a resource type.
	OrganizeOutputBy string `json:"organizeOutputBy,omitempty"`
	// AllowPartialManifests lets the server list files while the export
	// runs (a manifest in a 202): they are downloaded while it goes on.
	AllowPartialManifests bool `json:"allowPartialManifests,omitempty"`
	// Post kicks off with POST and a FHIR Parameters body instead of GET.
	Post bool `json:"post,omitempty"`
}

// Key fingerprints the base URL and the request: the same arguments give
// the same key, so a restarted process finds and resumes its job.
func (r Request) Key(baseURL string) string {
	b, _ := json.Marshal(struct {
		Base string  `json:"base"`
		Req  Request `json:"req"`
	}{strings.TrimRight(baseURL, "/"), r})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// validate rejects requests no server can take.
func (r Request) validate() error {
	if len(r.Patients) > 0 && !r.Post {
		return errors.New("the patient parameter needs a POST kick-off (--post)")
	}
	if r.ExportType != "" && r.Group == "" {
		return errors.New("exportType ($davinci-data-export) needs a group")
	}
	return nil
}

// kickoffURL builds the kick-off URL, with the parameters in the query
// string unless the request is a POST.
func (c *Client) kickoffURL(r Request) (string, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if u, err := url.Parse(base); err != nil || base == "" || u.Host == "" {
		return "", fmt.Errorf("invalid FHIR base URL %q", c.BaseURL)
	}
	var path string
	switch {
	case r.Group != "" && r.ExportType != "":
		path = "/Group/" + url.PathEscape(r.Group) + "/$davinci-data-export"
	case r.Group != "":
		path = "/Group/" + url.PathEscape(r.Group) + "/$export"
	case r.Patient:
		path = "/Patient/$export"
	default:
		path = "/$export"
	}
	u := base + path
	if r.Post {
		return u, nil
	}
	q := url.Values{}
	if len(r.Types) > 0 {
		q.Set("_type", strings.Join(r.Types, ","))
	}
	if !r.Since.IsZero() {
		q.Set("_since", r.Since.UTC().Format(time.RFC3339Nano))
	}
	for _, f := range r.TypeFilters {
		q.Add("_typeFilter", f)
	}
	if len(r.Elements) > 0 {
		q.Set("_elements", strings.Join(r.Elements, ","))
	}
	if r.OutputFormat != "" {
		q.Set("_outputFormat", r.OutputFormat)
	}
	if len(r.IncludeAssociatedData) > 0 {
		q.Set("includeAssociatedData", strings.Join(r.IncludeAssociatedData, ","))
	}
	if r.OrganizeOutputBy != "" {
		q.Set("organizeOutputBy", r.OrganizeOutputBy)
	}
	if r.AllowPartialManifests {
		q.Set("allowPartialManifests", "true")
	}
	if r.ExportType != "" {
		q.Set("exportType", r.ExportType)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, nil
}

// parametersBody is the FHIR Parameters resource of a POST kick-off.
func parametersBody(r Request) ([]byte, error) {
	type param struct {
		Name           string          `json:"name"`
		ValueString    string          `json:"valueString,omitempty"`
		ValueInstant   string          `json:"valueInstant,omitempty"`
		ValueCode      string          `json:"valueCode,omitempty"`
		ValueBoolean   *bool           `json:"valueBoolean,omitempty"`
		ValueReference *map[string]any `json:"valueReference,omitempty"`
	}
	var ps []param
	if r.OutputFormat != "" {
		ps = append(ps, param{Name: "_outputFormat", ValueString: r.OutputFormat})
	}
	if !r.Since.IsZero() {
		ps = append(ps, param{Name: "_since", ValueInstant: r.Since.UTC().Format(time.RFC3339Nano)})
	}
	if len(r.Types) > 0 {
		ps = append(ps, param{Name: "_type", ValueString: strings.Join(r.Types, ",")})
	}
	for _, f := range r.TypeFilters {
		ps = append(ps, param{Name: "_typeFilter", ValueString: f})
	}
	if len(r.Elements) > 0 {
		ps = append(ps, param{Name: "_elements", ValueString: strings.Join(r.Elements, ",")})
	}
	for _, v := range r.IncludeAssociatedData {
		ps = append(ps, param{Name: "includeAssociatedData", ValueCode: v})
	}
	for _, p := range r.Patients {
		ref := map[string]any{"reference": p}
		ps = append(ps, param{Name: "patient", ValueReference: &ref})
	}
	if r.OrganizeOutputBy != "" {
		ps = append(ps, param{Name: "organizeOutputBy", ValueString: r.OrganizeOutputBy})
	}
	if r.AllowPartialManifests {
		ps = append(ps, param{Name: "allowPartialManifests", ValueBoolean: new(true)})
	}
	if r.ExportType != "" {
		ps = append(ps, param{Name: "exportType", ValueCode: r.ExportType})
	}
	return json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": ps})
}

// Kickoff starts an export and returns its status URL. A 429 that names a
// running job (Content-Location) adopts that job; a 429 without one waits
// (Retry-After, else backoff) and tries again.
func (c *Client) Kickoff(ctx context.Context, r Request) (string, error) {
	status, err := c.kickoff(ctx, r, false)
	if refusedParameters(err) {
		err = typesHint(err, r.Types)
	}
	return status, err
}

// Refusal is a kick-off parameter the server refused, and what fhirlake
// did instead.
type Refusal struct {
	Parameter string `json:"parameter"`
	Action    string `json:"action"`
}

// droppable are the kick-off parameters fhirlake can do without, in the
// order it drops them when the server names none: whole resources instead
// of _elements (the views read what they need), its own filtering instead
// of _typeFilter, and a full export instead of _since (newest-wins keeps
// the result the same).
var droppable = []string{"_elements", "_typeFilter", "_since"}

// kickoffAdapting starts the export of r on a server that may refuse
// optional parameters (400 or 422): it asks again with Prefer:
// handling=lenient, then without the parameter the server's answer names
// (else, in turn, those of droppable). It returns the status URL, what
// was refused and done instead, and the _typeFilter queries fhirlake must
// apply itself (the server refused them, or may have ignored them).
func (c *Client) kickoffAdapting(ctx context.Context, r Request) (string, []Refusal, []string, error) {
	status, refused, local, err := c.adaptKickoff(ctx, r)
	if refusedParameters(err) {
		err = typesHint(err, r.Types)
	}
	return status, refused, local, err
}

// typesHint adds to a refused kick-off what to change when the types
// asked for may be the cause: the types the server's answer names, else
// all of them.
func typesHint(err error, types []string) error {
	if len(types) == 0 {
		return err
	}
	var named []string
	for _, t := range types {
		if regexp.MustCompile(`\b` + regexp.QuoteMeta(t) + `\b`).MatchString(err.Error()) {
			named = append(named, t)
		}
	}
	if len(named) > 0 {
		return fmt.Errorf("%w; the server names %s, which it may not export: remove it from --types (types in the config)", err, strings.Join(named, ", "))
	}
	return fmt.Errorf("%w; if the server does not export one of the types asked for (%s), remove it from --types (types in the config)", err, strings.Join(types, ","))
}

// adaptKickoff is kickoffAdapting before the types hint.
func (c *Client) adaptKickoff(ctx context.Context, r Request) (string, []Refusal, []string, error) {
	status, err := c.kickoff(ctx, r, false)
	if !refusedParameters(err) || len(present(r)) == 0 {
		return status, nil, nil, err
	}
	first := err
	filtersOK := true
	for _, f := range r.TypeFilters {
		if _, perr := ParseTypeFilter(f); perr != nil {
			filtersOK = false
		}
	}
	c.log(ctx).Warn("the server refused the export's parameters; asking again with Prefer: handling=lenient", "error", err.Error())
	if status, err = c.kickoff(ctx, r, true); err == nil {
		action := "the server took the export only with Prefer: handling=lenient, which lets it ignore parameters it does not support"
		var local []string
		if len(r.TypeFilters) > 0 && filtersOK {
			action += "; fhirlake applies _typeFilter to the files as well"
			local = r.TypeFilters
		} else if len(r.TypeFilters) > 0 {
			action += "; fhirlake cannot check that _typeFilter was applied"
		}
		return status, []Refusal{{Parameter: "Prefer: handling=lenient", Action: action}}, local, nil
	}
	if !refusedParameters(err) {
		return "", nil, nil, err
	}
	var refused []Refusal
	var local []string
	for {
		p := namedParameter(err, present(r))
		if p == "" {
			return "", refused, nil, first
		}
		var action string
		switch p {
		case "_elements":
			r.Elements = nil
			action = "whole resources are exported; the views read the elements they need"
		case "_typeFilter":
			for _, f := range r.TypeFilters {
				if _, perr := ParseTypeFilter(f); perr != nil {
					return "", refused, nil, fmt.Errorf("the server refused _typeFilter (%w), and %w", err, perr)
				}
			}
			local, r.TypeFilters = r.TypeFilters, nil
			action = "every resource of the filtered types is exported; fhirlake keeps those that match the filters"
		case "_since":
			r.Since = time.Time{}
			action = "everything in scope is exported; newest-wins keeps the tables as an incremental run would"
		}
		refused = append(refused, Refusal{Parameter: p, Action: action})
		c.log(ctx).Warn("the server refused a kick-off parameter; exporting without it", "parameter", p, "instead", action)
		if status, err = c.kickoff(ctx, r, true); err == nil {
			return status, refused, local, nil
		}
		if !refusedParameters(err) {
			return "", refused, nil, err
		}
	}
}

// refusedParameters reports whether err is a kick-off answer that refuses
// the request as asked (400 or 422).
func refusedParameters(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == http.StatusBadRequest || se.Status == http.StatusUnprocessableEntity)
}

// present lists the droppable parameters r carries, in droppable's order.
func present(r Request) []string {
	var out []string
	for _, p := range droppable {
		if p == "_elements" && len(r.Elements) > 0 || p == "_typeFilter" && len(r.TypeFilters) > 0 || p == "_since" && !r.Since.IsZero() {
			out = append(out, p)
		}
	}
	return out
}

// namedParameter is the parameter of candidates the server's answer names,
// else the first of them ("" for none).
func namedParameter(err error, candidates []string) string {
	for _, p := range candidates {
		if strings.Contains(err.Error(), p) {
			return p
		}
	}
	if len(candidates) == 0 {
		return ""
	}
	return candidates[0]
}

func (c *Client) kickoff(ctx context.Context, r Request, lenient bool) (string, error) {
	if err := r.validate(); err != nil {
		return "", err
	}
	u, err := c.kickoffURL(r)
	if err != nil {
		return "", err
	}
	method := http.MethodGet
	var body []byte
	h := http.Header{
		"Accept": {"application/fhir+json"},
		"Prefer": {"respond-async"},
	}
	if lenient {
		h.Set("Prefer", "respond-async, handling=lenient")
	}
	if r.Post {
		method = http.MethodPost
		if body, err = parametersBody(r); err != nil {
			return "", fmt.Errorf("kick-off parameters: %w", err)
		}
		h.Set("Content-Type", "application/fhir+json")
	}
	var status string
	err = c.retrying(ctx, "kick-off", func() (time.Duration, error) {
		resp, err := c.send(ctx, method, u, h, body, true)
		if err != nil {
			return 0, fmt.Errorf("kick-off: %w", err)
		}
		switch resp.StatusCode {
		case http.StatusAccepted:
			defer drain(resp)
			status, err = statusLocation(resp, u)
			return 0, err
		case http.StatusTooManyRequests:
			if loc := resp.Header.Get("Content-Location"); loc != "" {
				// The server limits concurrent exports and names ours.
				defer drain(resp)
				status, err = statusLocation(resp, u)
				if err == nil {
					c.log(ctx).Info("server is already running an export for this client; resuming it", "job", redact(status))
				}
				return 0, err
			}
		}
		ra := retryAfter(resp.Header.Get("Retry-After"), c.now())
		kind := classify(resp.StatusCode)
		if kind == ErrExportExpired { // 404 at kick-off: wrong URL or group, not an expired job
			kind = ErrProtocol
		}
		return ra, statusError("kick-off", resp, kind)
	})
	if err != nil {
		return "", err
	}
	c.log(ctx).Info("export started", "job", redact(status))
	return status, nil
}
