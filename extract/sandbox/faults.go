package sandbox

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Faults are deviations from the happy path that real payer servers show,
// switched on by tests (SetFaults) or at run time over HTTP
// (POST /_admin/faults). Counters (the int fields) count down as they fire;
// the bool and string fields stay until replaced. The zero value is a
// well-behaved server.
//
// Over HTTP the body is a JSON object with these fields, named as the json
// tags below (lower camel, e.g. {"kickoffTooMany":2}); the Go names
// ({"KickoffTooMany":2}) are accepted too, as encoding/json matches names
// case-insensitively. Unknown fields are rejected.
type Faults struct {
	// KickoffTooMany makes the next N kick-offs (that pass validation)
	// answer 429 with an OperationOutcome of code throttled.
	KickoffTooMany int `json:"kickoffTooMany,omitempty"`
	// KickoffRetryAfter is the raw Retry-After header sent with those 429s
	// ("" = none).
	KickoffRetryAfter string `json:"kickoffRetryAfter,omitempty"`
	// KickoffRunningJob makes those 429s carry the Content-Location of the
	// most recent unfinished job (not deleted, manifest never served) of the
	// same flavour, as a server limiting concurrent exports does; there is
	// no header when no such job exists.
	KickoffRunningJob bool `json:"kickoffRunningJob,omitempty"`

	// StatusTooMany makes the next N GETs of a status URL (polls and
	// manifest pages) answer 429 with Retry-After (see StatusRetryAfter).
	StatusTooMany int `json:"statusTooMany,omitempty"`
	// StatusServerErrors makes the next N GETs of a status URL answer 500
	// with an OperationOutcome of code transient. Checked after
	// StatusTooMany. Neither fault counts as a poll of the job.
	StatusServerErrors int `json:"statusServerErrors,omitempty"`
	// StatusRetryAfter is the raw Retry-After sent with 202 and 429 status
	// answers instead of Config.RetryAfter: an HTTP-date, "86400", ..., or
	// "-" to omit the header.
	StatusRetryAfter string `json:"statusRetryAfter,omitempty"`

	// FileServerErrors makes the next N file GETs answer 500.
	FileServerErrors int `json:"fileServerErrors,omitempty"`
	// FileTooMany makes the next N file GETs answer 429 with Retry-After 1.
	// Checked before FileServerErrors.
	FileTooMany int `json:"fileTooMany,omitempty"`
	// FilesGone makes every file GET answer 410 Gone with an
	// OperationOutcome, as servers do once files expire.
	FilesGone bool `json:"filesGone,omitempty"`
	// TruncateFiles makes the next N file GETs send only the first half of
	// the lines (rounded down) and end normally; the manifest count stays
	// the full count. A client downloads such a file again once; the same
	// short body twice is the server's defect, not a dropped connection.
	TruncateFiles int `json:"truncateFiles,omitempty"`
	// RedirectFiles makes file GETs answer 307 to a signed storage URL,
	// /_storage/{job}/{file}?sig=..., on a different host: the primary
	// host when the file was asked on AltHost, AltHost otherwise; without
	// AltHost, localhost:PORT and 127.0.0.1:PORT swap. The storage route
	// takes no bearer token and answers 400 (as S3 does) to a request that
	// carries any Authorization header. The file faults above fire where the
	// content is served, that is at the storage route.
	RedirectFiles bool `json:"redirectFiles,omitempty"`
	// NoAccessToken makes manifests say requiresAccessToken:false and
	// serves files without a token; a file request that carries an
	// Authorization header anyway gets 400.
	NoAccessToken bool `json:"noAccessToken,omitempty"`

	// ManifestPageSize > 0 splits the manifest output[] into pages of this
	// many entries; each page but the last has
	// "link":[{"relation":"next","url":"<status URL>?page=N"}]. error[] and
	// deleted[] are on the first page only.
	ManifestPageSize int `json:"manifestPageSize,omitempty"`
	// ErrorFile adds to the manifest error[] one OperationOutcome file of
	// two lines: a warning and an error ("Observation export partially
	// failed").
	ErrorFile bool `json:"errorFile,omitempty"`
	// ErrorFileCount, when not 0, is the count the manifest declares for
	// that error file instead of its two lines, as servers do that count
	// the resources that failed rather than the OperationOutcomes.
	ErrorFileCount int `json:"errorFileCount,omitempty"`
	// ErrorFileStatus, when not 0, answers every GET of that error file
	// with this status and an OperationOutcome (404, 410, ...); the other
	// files are served as usual.
	ErrorFileStatus int `json:"errorFileStatus,omitempty"`
	// ExpiresInString makes token answers send "expires_in" as a JSON
	// string ("3600"), as BCDA does.
	ExpiresInString bool `json:"expiresInString,omitempty"`
	// TokenLoginPage makes the token endpoint answer 200 with an HTML
	// login page, as a token URL that points at a portal does.
	TokenLoginPage bool `json:"tokenLoginPage,omitempty"`
	// TokenInvalidScope makes the token endpoint refuse the scope asked
	// (400 invalid_scope).
	TokenInvalidScope bool `json:"tokenInvalidScope,omitempty"`
	// RefuseParams makes kick-offs that carry any of these parameters
	// (_typeFilter, _since, _elements, ...) answer 400 not-supported,
	// naming it, as servers that support less than the spec do. With
	// LenientIgnores, a kick-off with Prefer: handling=lenient is taken
	// instead, the refused parameters ignored.
	RefuseParams   []string `json:"refuseParams,omitempty"`
	LenientIgnores bool     `json:"lenientIgnores,omitempty"`
	// StatusOutcome, when set, makes every status poll answer 500 with an
	// OperationOutcome of this issue code (too-costly, processing, ...)
	// and diagnostics that say why.
	StatusOutcome string `json:"statusOutcome,omitempty"`
	// JobFails makes the export fail once its polls are done. 1up flavour:
	// 200 with {"status":"Failed", ...} and no output. Standard flavour: 500
	// with an OperationOutcome of code exception (not transient: retrying
	// the poll will not help, the export must start again).
	JobFails bool `json:"jobFails,omitempty"`
}

// SetFaults replaces the current faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the current faults, counters as they stand.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// handleAdminFaults serves GET and POST /_admin/faults. Admin routes take
// no token: the sandbox is for tests and demos only.
func (s *Server) handleAdminFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		var f Faults
		if err := dec.Decode(&f); err != nil {
			writeOutcome(w, http.StatusBadRequest, "error", "invalid", "faults body: "+err.Error())
			return
		}
		s.SetFaults(f)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeOutcome(w, http.StatusMethodNotAllowed, "error", "not-supported", "faults are GET or POST")
		return
	}
	writeJSON(w, "application/json", http.StatusOK, s.Faults())
}

// statusRetryAfter returns the Retry-After for 202 and 429 status answers;
// false means send none. Callers hold s.mu.
func (s *Server) statusRetryAfter() (string, bool) {
	switch v := s.faults.StatusRetryAfter; v {
	case "-":
		return "", false
	case "":
		return strconv.Itoa(int((s.cfg.RetryAfter + time.Second - 1) / time.Second)), true
	default:
		return v, true
	}
}

// takeStatusFault consumes a status fault, if one is due, and reports the
// answer to send instead of the status: 0 means none.
func (s *Server) takeStatusFault() int {
	switch {
	case s.faults.StatusTooMany > 0:
		s.faults.StatusTooMany--
		return http.StatusTooManyRequests
	case s.faults.StatusServerErrors > 0:
		s.faults.StatusServerErrors--
		return http.StatusInternalServerError
	}
	return 0
}

// takeFileFault consumes a file fault for a GET (HEAD only sees FilesGone)
// and reports the status to answer instead (0 = serve) and whether to
// truncate the body.
func (s *Server) takeFileFault(get bool) (status int, truncate bool) {
	f := &s.faults
	switch {
	case f.FilesGone:
		return http.StatusGone, false
	case !get:
		return 0, false
	case f.FileTooMany > 0:
		f.FileTooMany--
		return http.StatusTooManyRequests, false
	case f.FileServerErrors > 0:
		f.FileServerErrors--
		return http.StatusInternalServerError, false
	case f.TruncateFiles > 0:
		f.TruncateFiles--
		return 0, true
	}
	return 0, false
}

// refuseParams applies RefuseParams to a kick-off's parameters: it drops
// them (a lenient request to a LenientIgnores server) or refuses the
// request.
func (s *Server) refuseParams(ps []param, r *http.Request) ([]param, *apiError) {
	s.mu.Lock()
	refuse, ignores := s.faults.RefuseParams, s.faults.LenientIgnores
	s.mu.Unlock()
	lenient := strings.Contains(strings.ToLower(r.Header.Get("Prefer")), "handling=lenient")
	kept := ps[:0:0]
	for _, p := range ps {
		if !slices.Contains(refuse, p.name) {
			kept = append(kept, p)
			continue
		}
		if !(lenient && ignores) {
			return nil, badRequest("not-supported", "the parameter %s is not supported by this server", p.name)
		}
	}
	return kept, nil
}
