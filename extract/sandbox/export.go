package sandbox

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
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
	seq     int // kick-off order
	flavour flavour
	request string    // kick-off URL
	host    string    // Host of the kick-off
	link    string    // scheme://host of status and file URLs (AltHost or the kick-off host)
	txTime  time.Time // sandbox clock at kick-off
	files   []exportFile
	deleted []exportFile // nil unless the kick-off had _since
	errFile exportFile   // listed only under Faults.ErrorFile
	// organizedBy is organizeOutputBy: files then mix types, one block
	// per Patient, each introduced by a header Parameters resource.
	organizedBy string
	// partial is allowPartialManifests: each poll before the end answers
	// 202 with a manifest of the files made so far (a growing share).
	partial bool
	polls   int
	total   int
	served  bool // a manifest has been answered
	// sp holds the job's files: a temporary file of its own, already
	// unlinked, whose space goes back to the disk once the job is deleted
	// and the last download of its files is done (the os.File is then
	// unreachable and closed), so that a sandbox serving export after
	// export does not fill its disk.
	sp *spill
}

type exportFile struct {
	name, typ string
	count     int
	body      []byte // small files; the others are in the job's spill file
	sp        *spill
	off       int64
	size      int
	errors    bool // the error[] file: Faults.ErrorFileCount and ErrorFileStatus apply
}

// content is the file's bytes.
func (f exportFile) content() []byte {
	if f.sp != nil {
		return f.sp.get(f.off, f.size)
	}
	return f.body
}

// fileBuilder cuts lines into export files of max lines, each written to
// the job's spill file as it fills: an export of any size holds one
// file's lines in memory.
type fileBuilder struct {
	sp          *spill
	max         int
	prefix, typ string
	buf         bytes.Buffer
	n           int
	files       []exportFile
	err         error
}

func (s *Server) newFileBuilder(j *job, prefix, typ string) *fileBuilder {
	return &fileBuilder{sp: j.sp, max: s.cfg.MaxLinesPerFile, prefix: prefix, typ: typ}
}

func (b *fileBuilder) add(line []byte) {
	b.write(line)
	if b.n == b.max {
		b.flush()
	}
}

// write adds a line to the open file, whatever its length.
func (b *fileBuilder) write(line []byte) {
	b.buf.Write(line)
	b.buf.WriteByte('\n')
	b.n++
}

func (b *fileBuilder) flush() {
	if b.n == 0 || b.err != nil {
		return
	}
	off, err := b.sp.put(b.buf.Bytes())
	if err != nil {
		b.err = err
		return
	}
	b.files = append(b.files, exportFile{name: fmt.Sprintf("%s-%d.ndjson", b.prefix, len(b.files)+1), typ: b.typ, count: b.n,
		sp: b.sp, off: off, size: b.buf.Len()})
	b.buf.Reset()
	b.n = 0
}

// done returns the files, the last one flushed.
func (b *fileBuilder) done() ([]exportFile, error) {
	b.flush()
	return b.files, b.err
}

// file returns the job's file called name.
func (j *job) file(name string) (exportFile, bool) {
	for _, f := range slices.Concat(j.files, j.deleted, []exportFile{j.errFile}) {
		if f.name == name {
			return f, true
		}
	}
	return exportFile{}, false
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
	case p == "/_admin/faults":
		s.handleAdminFaults(rec, r)
	case strings.HasPrefix(p, "/_storage/"):
		s.storage(rec, r, strings.TrimPrefix(p, "/_storage/"))
	case strings.HasPrefix(p, "/v1/"):
		tenant, rest, _ := strings.Cut(strings.TrimPrefix(p, "/v1/"), "/")
		if tenant != s.cfg.Tenant {
			writeOutcome(rec, http.StatusNotFound, "error", "not-found", "unknown tenant "+tenant)
			return
		}
		if rest == "member-match/$member-match" || rest == "member-match-sandbox/$member-match" {
			s.memberMatch(rec, r, oneUp)
			return
		}
		sub, ok := strings.CutPrefix(rest, "bulk-data/r4/")
		if !ok && rest != "bulk-data/r4" {
			writeOutcome(rec, http.StatusNotFound, "error", "not-found", "no route "+p)
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
	n := len(seg)
	switch {
	case fl == standard && n == 2 && seg[0] == ".well-known" && seg[1] == "smart-configuration":
		s.smartConfiguration(w, r)
		return
	// Files check the token themselves: Faults.NoAccessToken.
	case fl == oneUp && n == 3 && seg[0] == "$export" && seg[1] == "file":
		jobID, name, _ := strings.Cut(seg[2], "_")
		s.file(w, r, fl, jobID, name)
		return
	case fl == standard && n == 3 && seg[0] == "$export-file":
		s.file(w, r, fl, seg[1], seg[2])
		return
	case fl == standard && n == 1 && seg[0] == "metadata":
		s.capabilities(w, r)
		return
	}
	if _, ok := s.authorized(w, r); !ok {
		return
	}
	switch {
	case n == 1 && seg[0] == "$export":
		s.kickOff(w, r, fl, "", "", false)
	case n == 2 && seg[0] == "Patient" && seg[1] == "$export":
		s.kickOff(w, r, fl, "Patient", "", false)
	case n == 3 && seg[0] == "Group" && seg[2] == "$export":
		s.kickOff(w, r, fl, "Group", seg[1], false)
	case n == 3 && seg[0] == "Group" && seg[2] == "$davinci-data-export":
		s.kickOff(w, r, fl, "Group", seg[1], true)
	case fl == standard && n == 2 && seg[0] == "Patient" && seg[1] == "$member-match":
		s.memberMatch(w, r, fl)
	case fl == standard && n == 2 && seg[0] == "Group" && seg[1] == "$bulk-member-match" && s.cfg.BulkMemberMatch:
		s.bulkMemberMatch(w, r)
	case fl == standard && n == 2 && seg[0] == "$bulk-member-match-status" && s.cfg.BulkMemberMatch:
		s.bulkMatchStatus(w, r, seg[1])
	case fl == oneUp && n == 3 && seg[0] == "$export" && seg[1] == "job":
		s.status(w, r, fl, seg[2])
	case fl == standard && n == 2 && seg[0] == "$export-status":
		s.status(w, r, fl, seg[1])
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
		"token_endpoint":                                   TokenURL(rootOf(r)),
		"grant_types_supported":                            []string{"client_credentials"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384"},
		"scopes_supported":                                 []string{"bulk-data|user/*.rs", "member-match|read", "system/*.read"},
		"capabilities":                                     []string{"client-confidential-symmetric", "client-confidential-asymmetric"},
	})
}

// patientTypes are the types in the Patient compartment, which Patient and
// Group exports are limited to.
var patientTypes = []string{"Patient", "Coverage", "ExplanationOfBenefit", "Encounter", "Condition", "Observation"}

// kickOff starts an export; level is "", "Patient" or "Group"; davinci
// marks $davinci-data-export, a Group export that needs exportType.
func (s *Server) kickOff(w http.ResponseWriter, r *http.Request, fl flavour, level, groupID string, davinci bool) {
	var ps []param
	var aerr *apiError
	switch r.Method {
	case http.MethodGet:
		ps, aerr = queryParams(r)
	case http.MethodPost:
		if ps, aerr = queryParams(r); aerr == nil {
			var body []param
			body, aerr = bodyParams(r)
			ps = append(ps, body...)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "kick-off is GET or POST")
		return
	}
	switch {
	case !strings.Contains(strings.ToLower(r.Header.Get("Accept")), "application/fhir+json"):
		aerr = badRequest("invalid", "Accept: application/fhir+json is required")
	case !strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "respond-async"):
		aerr = badRequest("invalid", "Prefer: respond-async is required")
	}
	if aerr != nil {
		aerr.write(w)
		return
	}
	if ps, aerr = s.refuseParams(ps, r); aerr != nil {
		aerr.write(w)
		return
	}
	ep, aerr := parseExport(ps, level, davinci)
	if aerr != nil {
		aerr.write(w)
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
	if ep.types != nil {
		types = nil
		for _, t := range ep.types {
			if slices.Contains(scope, t) {
				types = append(types, t)
			}
		}
	}

	now := s.clock.Now()
	s.mu.Lock()
	// inScope reports whether a resource in the compartment of patient
	// belongs in the export.
	inScope := func(patient string) bool { return level == "" || patient != "" }
	if level == "Group" {
		members, ok := s.store.groupMembers(groupID)
		if !ok {
			s.mu.Unlock()
			writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown Group "+groupID)
			return
		}
		inScope = func(patient string) bool { return members[patient] }
	}
	if ep.patients != nil {
		for _, p := range ep.patients {
			if s.store.get("Patient", p) == nil {
				s.mu.Unlock()
				badRequest("invalid", "unknown patient Patient/%s", p).write(w)
				return
			}
		}
		outer := inScope
		inScope = func(patient string) bool { return outer(patient) && slices.Contains(ep.patients, patient) }
	}
	if s.faults.KickoffTooMany > 0 {
		s.faults.KickoffTooMany--
		var running *job
		if s.faults.KickoffRunningJob {
			for _, j := range s.jobs {
				if j.flavour == fl && !j.served && (running == nil || j.seq > running.seq) {
					running = j
				}
			}
		}
		if ra := s.faults.KickoffRetryAfter; ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		s.mu.Unlock()
		text := "too many concurrent export requests"
		if running != nil {
			w.Header().Set("Content-Location", s.statusURL(running))
			text += "; export already running at " + s.statusURL(running)
		}
		writeOutcome(w, http.StatusTooManyRequests, "error", "throttled", text)
		return
	}
	s.seq++
	if s.cfg.ChangesPerRun > 0 && s.seq > 1 {
		// Dated at the kick-off: this export holds them (an export
		// _since the previous one's transactionTime picks them up).
		if err := s.applyChanges(s.cfg.ChangesPerRun, s.seq, now); err != nil {
			s.mu.Unlock()
			writeOutcome(w, http.StatusInternalServerError, "error", "exception", err.Error())
			return
		}
	}
	j := &job{id: randomID(16), seq: s.seq, flavour: fl, host: r.Host, link: rootOf(r), txTime: now}
	j.request = rootOf(r) + r.URL.RequestURI()
	if s.cfg.AltHost != "" {
		j.link = "http://" + s.cfg.AltHost
	}
	j.organizedBy, j.partial = ep.organizeBy, ep.partial
	// failed answers 500 for a kick-off the sandbox could not make (its
	// temporary file), with s.mu held.
	failed := func(err error) {
		s.mu.Unlock()
		writeOutcome(w, http.StatusInternalServerError, "error", "exception", "sandbox: "+err.Error())
	}
	var err error
	if j.sp, err = newSpill(); err != nil {
		failed(err)
		return
	}
	// Organized output: where each line is in the job's spill file, by
	// patient ("" for none).
	blocks := map[string][]span{}
	for _, t := range types {
		fb := s.newFileBuilder(j, t, t)
		for _, rec := range s.store.byType[t] {
			switch {
			case !ep.since.IsZero() && rec.updated.Before(ep.since):
				continue
			case level == "Group" && t == "Group":
				if rec.id != groupID {
					continue
				}
			case !inScope(rec.patient):
				continue
			}
			if fs, ok := ep.filters[t]; ok && !slices.ContainsFunc(fs, func(f typeFilter) bool { return f.match(rec) }) {
				continue
			}
			line := rec.raw()
			if ep.elements != nil {
				line = applyElements(line, t, ep.elements)
			}
			if j.organizedBy != "" {
				off, err := j.sp.put(line)
				if err != nil {
					failed(err)
					return
				}
				blocks[rec.patient] = append(blocks[rec.patient], span{off, len(line)})
				continue
			}
			fb.add(line)
		}
		if j.organizedBy != "" {
			continue
		}
		files, err := fb.done()
		if err != nil {
			failed(err)
			return
		}
		j.files = append(j.files, files...)
		for _, f := range files {
			j.total += f.count
		}
	}
	if j.organizedBy != "" {
		files, err := s.splitBlocks(j, blocks)
		if err != nil {
			failed(err)
			return
		}
		j.files = files
		for _, f := range j.files {
			j.total += f.count
		}
	}
	if !ep.since.IsZero() {
		j.deleted = []exportFile{}
		for _, t := range types {
			fb := s.newFileBuilder(j, t+"-deleted", "Bundle")
			for _, ts := range s.store.tombstones {
				if ts.typ == t && !ts.at.Before(ep.since) && inScope(ts.patient) {
					fb.add(deletionBundle(ts))
				}
			}
			files, err := fb.done()
			if err != nil {
				failed(err)
				return
			}
			j.deleted = append(j.deleted, files...)
		}
	}
	j.errFile = errorFile()
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

// outputEntries lists files as manifest output entries.
func (s *Server) outputEntries(j *job, files []exportFile) []obj {
	output := []obj{}
	for _, ef := range files {
		if ef.typ == "" { // organized output: a file of many types has none
			output = append(output, o("url", s.fileURL(j, ef), "count", ef.count))
			continue
		}
		output = append(output, o("type", ef.typ, "url", s.fileURL(j, ef), "count", ef.count))
	}
	return output
}

// span is where a line is in a spill file.
type span struct {
	off int64
	n   int
}

// splitBlocks makes the files of output organized by Patient from the
// lines of each patient (in j's spill file): each patient's block is a
// header Parameters resource naming the patient, then the resources of
// its compartment; the resources of no patient form a block without
// header, first. Files hold whole blocks, of about MaxLinesPerFile lines
// (a larger block gets a file of its own). Memory holds one file.
func (s *Server) splitBlocks(j *job, blocks map[string][]span) ([]exportFile, error) {
	fb := s.newFileBuilder(j, "organized", "")
	for _, patient := range slices.Sorted(maps.Keys(blocks)) {
		lines := blocks[patient]
		size := len(lines)
		if patient != "" {
			size++
		}
		if fb.n > 0 && fb.n+size > fb.max {
			fb.flush()
		}
		if patient != "" {
			header, _ := o("resourceType", "Parameters", "parameter", []obj{
				o("name", "header", "valueReference", o("reference", "Patient/"+patient)),
			}).MarshalJSON()
			fb.write(header)
		}
		for _, l := range lines {
			fb.write(j.sp.get(l.off, l.n))
		}
	}
	return fb.done()
}

// deletionBundle is the deleted[] line for a tombstone: a transaction
// Bundle with one DELETE entry, as the Bulk Data IG shows.
func deletionBundle(ts tombstone) []byte {
	b, _ := o("resourceType", "Bundle", "type", "transaction", "entry", []obj{
		o("request", o("method", "DELETE", "url", ts.typ+"/"+ts.id)),
	}).MarshalJSON()
	return b
}

// errorFile is the error[] file Faults.ErrorFile lists.
func errorFile() exportFile {
	var body bytes.Buffer
	for _, oo := range []obj{
		outcome("warning", "incomplete", "Observation: 2 resources skipped (missing subject)"),
		outcome("error", "exception", "Observation export partially failed"),
	} {
		b, _ := oo.MarshalJSON()
		body.Write(b)
		body.WriteByte('\n')
	}
	return exportFile{name: "OperationOutcome-1.ndjson", typ: "OperationOutcome", count: 2, body: body.Bytes(), errors: true}
}

func (s *Server) statusURL(j *job) string {
	if j.flavour == oneUp {
		return s.base(oneUp, j.link) + "/$export/job/" + j.id
	}
	return s.base(standard, j.link) + "/$export-status/" + j.id
}

func (s *Server) fileURL(j *job, f exportFile) string {
	if j.flavour == oneUp {
		return s.base(oneUp, j.link) + "/$export/file/" + j.id + "_" + f.name
	}
	return s.base(standard, j.link) + "/$export-file/" + j.id + "/" + f.name
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
	if code := s.faults.StatusOutcome; code != "" {
		s.mu.Unlock()
		writeOutcome(w, http.StatusInternalServerError, "error", code, "the export cannot be completed ("+code+"): ask for fewer members or types")
		return
	}
	retryAfter, sendRetryAfter := s.statusRetryAfter()
	switch s.takeStatusFault() {
	case http.StatusTooManyRequests:
		s.mu.Unlock()
		if sendRetryAfter {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeOutcome(w, http.StatusTooManyRequests, "error", "throttled", "too many status requests")
		return
	case http.StatusInternalServerError:
		s.mu.Unlock()
		writeOutcome(w, http.StatusInternalServerError, "error", "transient", "status temporarily unavailable, try again")
		return
	}
	j.polls++
	polls := j.polls
	f := s.faults
	if polls > s.cfg.PollsBeforeReady && !f.JobFails {
		j.served = true
	}
	s.mu.Unlock()

	if polls <= s.cfg.PollsBeforeReady {
		if sendRetryAfter {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("X-Progress", fmt.Sprintf("in progress %d%%", polls*100/(s.cfg.PollsBeforeReady+1)))
		if ready := len(j.files) * polls / (s.cfg.PollsBeforeReady + 1); j.partial && ready > 0 {
			writeJSON(w, "application/json", http.StatusAccepted, obj{
				{"transactionTime", instant(j.txTime)},
				{"request", j.request},
				{"requiresAccessToken", !f.NoAccessToken},
				{"output", s.outputEntries(j, j.files[:ready])},
				{"error", []obj{}},
			})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if f.JobFails {
		if fl == standard {
			writeOutcome(w, http.StatusInternalServerError, "error", "exception", "export job "+id+" failed")
			return
		}
		writeJSON(w, "application/json", http.StatusOK, obj{
			{"status", "Failed"},
			{"transactionTime", instant(j.txTime)},
			{"request", j.request},
			{"requiresAccessToken", true},
			{"output", []obj{}},
			{"error", []obj{}},
			{"batches", 0},
			{"resourceCount", 0},
			{"message", "export job " + id + " failed"},
		})
		return
	}

	output := s.outputEntries(j, j.files) // files never change after kick-off
	page, pages := 1, 1
	if f.ManifestPageSize > 0 && len(output) > 0 {
		pages = (len(output) + f.ManifestPageSize - 1) / f.ManifestPageSize
	}
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > pages {
			writeOutcome(w, http.StatusNotFound, "error", "not-found", "no manifest page "+v)
			return
		}
		page = n
	}
	if pages > 1 {
		output = output[(page-1)*f.ManifestPageSize : min(len(output), page*f.ManifestPageSize)]
	}
	manifest := obj{
		{"transactionTime", instant(j.txTime)},
		{"request", j.request},
		{"requiresAccessToken", !f.NoAccessToken},
		{"output", output},
	}
	if j.organizedBy != "" {
		manifest = append(manifest, field{"outputOrganizedBy", j.organizedBy})
	}
	// Not o(): empty output, error and deleted arrays are part of the
	// manifest.
	errs := []obj{}
	if f.ErrorFile && page == 1 {
		count := j.errFile.count
		if f.ErrorFileCount != 0 {
			count = f.ErrorFileCount
		}
		errs = append(errs, o("type", j.errFile.typ, "url", s.fileURL(j, j.errFile), "count", count))
	}
	manifest = append(manifest, field{"error", errs})
	if j.deleted != nil && page == 1 {
		del := []obj{}
		for _, df := range j.deleted {
			del = append(del, o("type", df.typ, "url", s.fileURL(j, df), "count", df.count))
		}
		manifest = append(manifest, field{"deleted", del})
	}
	if page < pages {
		manifest = append(manifest, field{"link", []obj{o("relation", "next", "url", s.statusURL(j)+"?page="+strconv.Itoa(page+1))}})
	}
	if fl == oneUp {
		manifest = append(manifest, field{"status", "Successful"}, field{"batches", len(j.files)}, field{"resourceCount", j.total})
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
	f := s.Faults()
	if f.NoAccessToken {
		if r.Header.Get("Authorization") != "" {
			writeOutcome(w, http.StatusBadRequest, "error", "invalid", "requiresAccessToken is false: send no Authorization header")
			return
		}
	} else if _, ok := s.authorized(w, r); !ok {
		return
	}
	s.mu.Lock()
	var ef exportFile
	j := s.lookup(fl, jobID)
	found := false
	if j != nil {
		ef, found = j.file(name)
	}
	s.mu.Unlock()
	if !found {
		writeOutcome(w, http.StatusNotFound, "error", "not-found", "unknown export file "+name)
		return
	}
	if f.RedirectFiles && !f.FilesGone {
		path := jobID + "/" + name
		target := "http://" + s.otherHost(r.Host, j.host) + "/_storage/" + path + "?sig=" + s.sign(path)
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return
	}
	s.serveFile(w, r, ef)
}

// otherHost is the host a redirect to storage goes to: see
// Faults.RedirectFiles.
func (s *Server) otherHost(host, kickoffHost string) string {
	alt := s.cfg.AltHost
	switch {
	case alt != "" && host != alt:
		return alt
	case alt != "" && kickoffHost != alt:
		return kickoffHost
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		return host
	}
	switch h {
	case "localhost":
		return net.JoinHostPort("127.0.0.1", port)
	case "127.0.0.1":
		return net.JoinHostPort("localhost", port)
	}
	return host
}

// sign is the storage URL signature of path.
func (s *Server) sign(path string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(path))
	return hex.EncodeToString(m.Sum(nil))
}

// storage serves /_storage/{job}/{file}?sig=..., the signed storage URLs
// file GETs redirect to under Faults.RedirectFiles. Like S3 presigned URLs
// it takes no bearer token and refuses one.
func (s *Server) storage(w http.ResponseWriter, r *http.Request, path string) {
	s3Error := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s3Error(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		s3Error(http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}
	if !hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(s.sign(path))) {
		s3Error(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	jobID, name, _ := strings.Cut(path, "/")
	s.mu.Lock()
	var ef exportFile
	found := false
	if j := s.jobs[jobID]; j != nil {
		ef, found = j.file(name)
	}
	s.mu.Unlock()
	if !found {
		s3Error(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	s.serveFile(w, r, ef)
}

// serveFile answers with the body of ef, or with the file fault due.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, ef exportFile) {
	s.mu.Lock()
	status, truncate := s.takeFileFault(r.Method == http.MethodGet)
	if st := s.faults.ErrorFileStatus; ef.errors && st != 0 && status == 0 {
		status = st
	}
	s.mu.Unlock()
	switch status {
	case http.StatusGone:
		writeOutcome(w, http.StatusGone, "error", "expired", "export file "+ef.name+" has expired; start a new export")
		return
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		writeOutcome(w, http.StatusTooManyRequests, "error", "throttled", "too many file requests")
		return
	case http.StatusInternalServerError:
		writeOutcome(w, http.StatusInternalServerError, "error", "transient", "file temporarily unavailable, try again")
		return
	case 0:
	default:
		code := map[int]string{http.StatusNotFound: "not-found", http.StatusGone: "expired"}[status]
		writeOutcome(w, status, "error", cmp.Or(code, "exception"), "export file "+ef.name+" is not available")
		return
	}
	body := ef.content()
	if truncate {
		body = firstLines(body, ef.count/2)
	}
	w.Header().Set("Content-Type", "application/fhir+ndjson")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// firstLines returns the first n lines of body.
func firstLines(body []byte, n int) []byte {
	end := 0
	for range n {
		i := bytes.IndexByte(body[end:], '\n')
		if i < 0 {
			return body
		}
		end += i + 1
	}
	return body[:end]
}
