package sandbox

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type flavour int

const (
	oneUp flavour = iota
	standard
)

// job is one export: its file set is fixed at kick-off.
type job struct {
	id      string
	flavour flavour
	request string    // kick-off URL
	root    string    // scheme://host of the kick-off
	txTime  time.Time // sandbox clock at kick-off
	files   []exportFile
	polls   int
	total   int
}

type exportFile struct {
	name, typ string
	count     int
	body      []byte
}

// serveHTTP routes every request and records it.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		_, hasBearer := bearer(r)
		s.mu.Lock()
		s.requests = append(s.requests, RequestLog{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
			Authorization: hasBearer, Status: rec.status,
		})
		s.mu.Unlock()
	}()
	p := r.URL.Path
	switch {
	case p == TokenPath || p == "/auth/token":
		s.handleToken(rec, r)
	case strings.HasPrefix(p, "/v1/"):
		tenant, rest, _ := strings.Cut(strings.TrimPrefix(p, "/v1/"), "/")
		sub, ok := strings.CutPrefix(rest, "bulk-data/r4/")
		if !ok && rest != "bulk-data/r4" {
			writeOutcome(rec, http.StatusNotFound, "error", "not-found", "no route "+p)
			return
		}
		if tenant != s.cfg.Tenant {
			writeOutcome(rec, http.StatusNotFound, "error", "not-found", "unknown tenant "+tenant)
			return
		}
		s.route(rec, r, oneUp, strings.Split(sub, "/"))
	case p == "/fhir" || strings.HasPrefix(p, "/fhir/"):
		s.route(rec, r, standard, strings.Split(strings.TrimPrefix(strings.TrimPrefix(p, "/fhir"), "/"), "/"))
	default:
		writeOutcome(rec, http.StatusNotFound, "error", "not-found", "no route "+p)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// route serves one FHIR base; seg is the path below the base.
func (s *Server) route(w http.ResponseWriter, r *http.Request, fl flavour, seg []string) {
	if fl == standard && len(seg) == 2 && seg[0] == ".well-known" && seg[1] == "smart-configuration" {
		s.smartConfiguration(w, r)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	n := len(seg)
	switch {
	case n == 1 && seg[0] == "$export":
		s.kickOff(w, r, fl, "", "")
	case n == 2 && seg[0] == "Patient" && seg[1] == "$export":
		s.kickOff(w, r, fl, "Patient", "")
	case n == 3 && seg[0] == "Group" && seg[2] == "$export":
		s.kickOff(w, r, fl, "Group", seg[1])
	case fl == oneUp && n == 3 && seg[0] == "$export" && seg[1] == "job":
		s.status(w, r, fl, seg[2])
	case fl == oneUp && n == 3 && seg[0] == "$export" && seg[1] == "file":
		jobID, name, _ := strings.Cut(seg[2], "_")
		s.file(w, r, fl, jobID, name)
	case fl == standard && n == 2 && seg[0] == "$export-status":
		s.status(w, r, fl, seg[1])
	case fl == standard && n == 3 && seg[0] == "$export-file":
		s.file(w, r, fl, seg[1], seg[2])
	default:
		writeOutcome(w, http.StatusNotFound, "error", "not-found", "no route "+r.URL.Path)
	}
}

func rootOf(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func (s *Server) base(fl flavour, root string) string {
	if fl == oneUp {
		return OneUpBase(root, s.cfg.Tenant)
	}
	return StandardBase(root)
}

func (s *Server) smartConfiguration(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"token_endpoint":                        TokenURL(rootOf(r)),
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"bulk-data|user/*.rs", "member-match|read", "system/*.read"},
		"capabilities":                          []string{"client-confidential-symmetric"},
	})
}

// patientTypes are the types in the Patient compartment, which Patient and
// Group exports are limited to.
var patientTypes = []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Condition", "Observation"}

// kickOff starts an export; level is "", "Patient" or "Group".
func (s *Server) kickOff(w http.ResponseWriter, r *http.Request, fl flavour, level, groupID string) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "kick-off is GET")
		return
	}
	if !strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async") {
		writeOutcome(w, http.StatusBadRequest, "error", "invalid", "Prefer: respond-async is required")
		return
	}
	q := r.URL.Query()
	if f := q.Get("_outputFormat"); f != "" && !slices.Contains([]string{"application/fhir+ndjson", "application/ndjson", "ndjson"}, f) {
		writeOutcome(w, http.StatusBadRequest, "error", "not-supported", "unsupported _outputFormat "+f)
		return
	}
	scope := resourceTypes
	if level != "" {
		scope = patientTypes
		if level == "Group" {
			scope = append(slices.Clone(patientTypes), "Group")
		}
	}
	types := scope
	if tp := q.Get("_type"); tp != "" {
		types = nil
		for _, t := range strings.Split(tp, ",") {
			t = strings.TrimSpace(t)
			if !slices.Contains(resourceTypes, t) {
				writeOutcome(w, http.StatusBadRequest, "error", "not-supported", "unsupported _type "+t)
				return
			}
			if slices.Contains(scope, t) && !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
		// Export order follows resourceTypes, whatever order _type lists.
		slices.SortFunc(types, func(a, b string) int {
			return slices.Index(resourceTypes, a) - slices.Index(resourceTypes, b)
		})
	}
	var since time.Time
	if v := q.Get("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeOutcome(w, http.StatusBadRequest, "error", "invalid", "_since must be a FHIR instant: "+v)
			return
		}
		since = t
	}

	now := s.clock.Now()
	s.mu.Lock()
	var members map[string]bool
	if level == "Group" {
		var ok bool
		if members, ok = s.store.groupMembers(groupID); !ok {
			s.mu.Unlock()
			writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown Group "+groupID)
			return
		}
	}
	j := &job{id: randomID(16), flavour: fl, root: rootOf(r), txTime: now}
	j.request = j.root + r.URL.RequestURI()
	for _, t := range types {
		var lines [][]byte
		for _, rec := range s.store.byType[t] {
			switch {
			case !since.IsZero() && rec.updated.Before(since):
				continue
			case level == "Patient" && rec.patient == "":
				continue
			case level == "Group" && !(members[rec.patient] || (t == "Group" && rec.id == groupID)):
				continue
			}
			lines = append(lines, rec.raw)
		}
		for k := 0; len(lines) > 0; k++ {
			n := min(len(lines), s.cfg.MaxLinesPerFile)
			var body bytes.Buffer
			for _, l := range lines[:n] {
				body.Write(l)
				body.WriteByte('\n')
			}
			j.files = append(j.files, exportFile{name: fmt.Sprintf("%s-%d.ndjson", t, k+1), typ: t, count: n, body: body.Bytes()})
			j.total += n
			lines = lines[n:]
		}
	}
	s.jobs[j.id] = j
	s.mu.Unlock()

	statusURL := s.statusURL(j)
	if fl == standard {
		w.Header().Set("Content-Location", statusURL)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !s.cfg.OmitContentLocation {
		w.Header().Set("Content-Location", statusURL)
	}
	writeOutcome(w, http.StatusAccepted, "information", "informational", "Asynchronous export running. Track job at "+statusURL)
}

func (s *Server) statusURL(j *job) string {
	if j.flavour == oneUp {
		return s.base(oneUp, j.root) + "/$export/job/" + j.id
	}
	return s.base(standard, j.root) + "/$export-status/" + j.id
}

func (s *Server) fileURL(j *job, f exportFile) string {
	if j.flavour == oneUp {
		return s.base(oneUp, j.root) + "/$export/file/" + j.id + "_" + f.name
	}
	return s.base(standard, j.root) + "/$export-file/" + j.id + "/" + f.name
}

// lookup returns the job with id in flavour fl, or nil.
func (s *Server) lookup(fl flavour, id string) *job {
	j := s.jobs[id]
	if j == nil || j.flavour != fl {
		return nil
	}
	return j
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, fl flavour, id string) {
	s.mu.Lock()
	j := s.lookup(fl, id)
	if j == nil {
		s.mu.Unlock()
		writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown export job "+id)
		return
	}
	switch r.Method {
	case http.MethodDelete:
		delete(s.jobs, id)
		s.mu.Unlock()
		writeOutcome(w, http.StatusAccepted, "information", "informational", "export job "+id+" deleted")
		return
	case http.MethodGet:
	default:
		s.mu.Unlock()
		w.Header().Set("Allow", "GET, DELETE")
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "status is GET or DELETE")
		return
	}
	j.polls++
	polls := j.polls
	s.mu.Unlock()

	if polls <= s.cfg.PollsBeforeReady {
		secs := int((s.cfg.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("X-Progress", fmt.Sprintf("in progress %d%%", polls*100/(s.cfg.PollsBeforeReady+1)))
		w.WriteHeader(http.StatusAccepted)
		return
	}
	output := []obj{}
	for _, f := range j.files { // files never change after kick-off
		output = append(output, o("type", f.typ, "url", s.fileURL(j, f), "count", f.count))
	}
	kv := []any{
		"transactionTime", instant(j.txTime),
		"request", j.request,
		"requiresAccessToken", true,
		"output", output,
		"error", []obj{},
	}
	if fl == oneUp {
		kv = append(kv, "status", "Successful", "batches", len(j.files), "resourceCount", j.total)
	}
	manifest := obj{}
	for k := 0; k < len(kv); k += 2 {
		// Not o(): empty output and error arrays are part of the manifest.
		manifest = append(manifest, field{kv[k].(string), kv[k+1]})
	}
	w.Header().Set("Expires", j.txTime.Add(24*time.Hour).Format(http.TimeFormat))
	writeJSON(w, "application/json", http.StatusOK, manifest)
}

func (s *Server) file(w http.ResponseWriter, r *http.Request, fl flavour, jobID, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "files are GET")
		return
	}
	s.mu.Lock()
	var body []byte
	if j := s.lookup(fl, jobID); j != nil {
		for _, f := range j.files {
			if f.name == name {
				body = f.body
			}
		}
	}
	s.mu.Unlock()
	if body == nil {
		writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown export file "+name)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
