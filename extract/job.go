package extract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// JobFile is the name of the job state file in an export directory.
const JobFile = "job.json"

// ManifestFile is the name under which Export keeps the manifest beside the
// files it describes.
const ManifestFile = "manifest.json"

// ErrJobMismatch means the export directory holds the state of a job with
// other parameters; resuming it would mix two exports.
var ErrJobMismatch = errors.New("directory holds a different export job")

// Job is the persisted state of one export: enough to resume polling the
// same server job after a crash and to skip files already verified. It is
// rewritten atomically after every step.
type Job struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"`
	BaseURL   string    `json:"baseUrl"`
	Request   Request   `json:"request"`
	StatusURL string    `json:"statusUrl,omitempty"`
	KickedOff time.Time `json:"kickedOff,omitzero"`
	// Manifest is the complete manifest (all pages merged), once ready.
	Manifest json.RawMessage `json:"manifest,omitempty"`
	// Files are the verified files by name, with their checksums.
	Files map[string]File `json:"files,omitempty"`
	// Failure is how the last attempt at this job failed (its message
	// with the numbers taken out), and Failures how many attempts in a
	// row failed so.
	Failure  string `json:"failure,omitempty"`
	Failures int    `json:"failures,omitempty"`
	// Refused lists the kick-off parameters the server refused, and
	// LocalFilters the _typeFilter queries fhirlake applies itself.
	Refused      []Refusal `json:"refused,omitempty"`
	LocalFilters []string  `json:"localFilters,omitempty"`
}

// MaxSameFailures is how many times in a row an export job may fail the
// same way before Export cancels it on the server: a job that keeps
// failing so will not recover, and the next run starts a new export.
const MaxSameFailures = 3

// numbersRE finds the numbers of an error message: counts, waits and
// ports vary between attempts that fail the same way.
var numbersRE = regexp.MustCompile(`[0-9]+`)

// LoadJob reads the job state in dir; it returns nil, nil when there is none.
func LoadJob(dir string) (*Job, error) {
	b, err := os.ReadFile(filepath.Join(dir, JobFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job state: %w", err)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("job state %s is corrupt (remove it to start over): %w", filepath.Join(dir, JobFile), err)
	}
	return &j, nil
}

// jobStore saves a job after each step. Downloads update it from several
// goroutines.
type jobStore struct {
	c    *Client // writes the file with the client's file mode
	path string
	mu   sync.Mutex // guards job and serialises writes of the file
	job  Job
}

func (s *jobStore) save() error {
	b, err := json.MarshalIndent(&s.job, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job state: %w", err)
	}
	if err := s.c.writeFile(s.path, b); err != nil {
		return fmt.Errorf("save job state: %w", err)
	}
	return nil
}

func (s *jobStore) update(fn func(j *Job)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.job)
	return s.save()
}

// Export runs the whole lifecycle into dir, resuming whatever a previous
// attempt with the same base URL and request left there: it re-polls the
// same server job instead of starting a new one, and skips files already
// downloaded and verified. The manifest is saved as dir/manifest.json. The
// job state stays in dir/job.json until the caller removes dir or calls
// ResetJob. Directories Export creates are private to the owner (0700),
// files 0600, whatever the umask (see GroupReadable).
//
// A resumed job whose status URL the server no longer knows (404/410) is
// replaced by a new export. Files that expired (410) fail with
// ErrExportExpired: ResetJob and call Export again for a new export.
func (c *Client) Export(ctx context.Context, r Request, dir string) (*Result, error) {
	if err := c.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create export dir: %w", err)
	}
	key := r.Key(c.BaseURL)
	prev, err := LoadJob(dir)
	if err != nil {
		return nil, err
	}
	st := &jobStore{c: c, path: filepath.Join(dir, JobFile), job: Job{Version: 1, Key: key, BaseURL: c.BaseURL, Request: r}}
	if prev != nil {
		if prev.Key != key {
			return nil, fmt.Errorf("%s: %w (started for %s); cancel it or use another directory", dir, ErrJobMismatch, prev.BaseURL)
		}
		st.job = *prev
	}
	res, err := c.export(ctx, r, dir, st, prev)
	// Failures of our own (a full disk) say nothing about the job.
	var local localError
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrExportExpired) || errors.As(err, &local) || st.job.StatusURL == "" {
		return res, err
	}
	return nil, c.countFailure(ctx, dir, st, err)
}

// countFailure records that the job in st failed with err, and cancels
// it on the server when it failed the same way MaxSameFailures times in a
// row. The error keeps err's classification: a transient failure is
// still worth a retry, which starts a new export.
func (c *Client) countFailure(ctx context.Context, dir string, st *jobStore, err error) error {
	sig := numbersRE.ReplaceAllString(clean(err.Error(), 300), "#")
	var n int
	if uerr := st.update(func(j *Job) {
		if j.Failure != sig {
			j.Failure, j.Failures = sig, 0
		}
		j.Failures++
		n = j.Failures
	}); uerr != nil {
		return errors.Join(err, uerr)
	}
	if n < MaxSameFailures {
		return err
	}
	status := st.job.StatusURL
	c.log(ctx).Warn("the export job failed the same way too many times; cancelling it", "job", redact(status), "failures", n)
	if cerr := c.Cancel(context.WithoutCancel(ctx), status); cerr != nil {
		c.log(ctx).Warn("could not cancel the export job on the server", "job", redact(status), "error", cerr.Error())
	}
	if rerr := ResetJob(dir); rerr != nil {
		return errors.Join(err, rerr)
	}
	return fmt.Errorf("%w (the export job failed this way %d times in a row: it was cancelled, and the next run starts a new export)", err, n)
}

// export is Export's work on the job in st.
func (c *Client) export(ctx context.Context, r Request, dir string, st *jobStore, prev *Job) (*Result, error) {
	var m *Manifest
	var err error
	for attempt := 0; m == nil; attempt++ {
		if st.job.StatusURL == "" {
			status, refused, local, err := c.kickoffAdapting(ctx, r)
			if err != nil {
				return nil, err
			}
			if err := st.update(func(j *Job) {
				j.StatusURL, j.KickedOff, j.Refused, j.LocalFilters = status, c.now().UTC(), refused, local
			}); err != nil {
				return nil, err
			}
		} else if st.job.Manifest == nil {
			c.log(ctx).Info("resuming export job", "job", redact(st.job.StatusURL))
		}
		if st.job.Manifest != nil {
			if m, err = parseManifest(st.job.Manifest); err != nil {
				return nil, err
			}
			break
		}
		var onPartial func(*Manifest) error
		if r.AllowPartialManifests {
			onPartial = func(pm *Manifest) error {
				_, _, err := c.download(ctx, pm, dir, st)
				return err
			}
		}
		m, err = c.poll(ctx, st.job.StatusURL, onPartial)
		if errors.Is(err, ErrExportExpired) && attempt == 0 && prev != nil {
			c.log(ctx).Warn("the resumed export job is gone on the server; starting a new export", "job", redact(st.job.StatusURL))
			st.job.StatusURL = ""
			continue
		}
		if err != nil {
			return nil, err
		}
		if m, err = c.followPages(ctx, m); err != nil {
			return nil, err
		}
		if err := st.update(func(j *Job) { j.Manifest = m.Raw }); err != nil {
			return nil, err
		}
	}

	files, missing, err := c.download(ctx, m, dir, st)
	if err != nil {
		return nil, err
	}
	var filters []TypeFilter
	for _, q := range st.job.LocalFilters {
		f, err := ParseTypeFilter(q)
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
	}
	var filteredOut int64
	if files, filteredOut, err = c.rewriteFiles(dir, files, filters, st); err != nil {
		return nil, err
	}
	if len(filters) > 0 {
		c.log(ctx).Info("applied _typeFilter to the downloaded files", "dropped", filteredOut)
	}
	if err := c.writeFile(filepath.Join(dir, ManifestFile), m.Raw); err != nil {
		return nil, fmt.Errorf("save manifest: %w", err)
	}
	res := &Result{StatusURL: st.job.StatusURL, Manifest: m, Dir: dir, Files: files, Refused: st.job.Refused, FilteredOut: filteredOut}
	res.Errors = summarizeErrors(dir, files)
	res.Errors.MissingFiles = missing
	res.Errors.Errors += missing
	if res.Errors.Errors+res.Errors.Warnings > 0 {
		c.log(ctx).Warn("server reported export issues", "errors", res.Errors.Errors, "warnings", res.Errors.Warnings,
			"types", strings.Join(res.Errors.Types, ","), "missing_error_files", missing)
	}
	return res, nil
}

// ResetJob forgets the job in dir so that the next Export starts a new
// one. It removes only what the job wrote: the files its state records as
// downloaded, manifest.json when it holds the job's manifest, temporary
// files of the job's writes, and last the state (job.json) itself. Anything
// else in dir stays: dir may be a folder that holds other things. It does
// nothing when dir holds no job, and does not contact the server.
func ResetJob(dir string) error {
	j, err := LoadJob(dir)
	if err != nil || j == nil {
		return err
	}
	var planned []string // every name the job may write
	var m *Manifest
	if j.Manifest != nil {
		if m, err = parseManifest(j.Manifest); err != nil {
			return fmt.Errorf("reset job: %w", err)
		}
		for _, pj := range plan(m) {
			planned = append(planned, pj.name)
		}
	}
	remove := func(name string) error {
		path := filepath.Join(dir, name)
		if fi, err := os.Lstat(path); err != nil || fi.IsDir() {
			return nil // gone already, or not a file the job wrote
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reset job: %w", err)
		}
		return nil
	}
	for name := range j.Files {
		if !slices.Contains(planned, name) {
			continue // not a name this job gives its files
		}
		if err := remove(name); err != nil {
			return err
		}
	}
	if m != nil && sameManifest(filepath.Join(dir, ManifestFile), m.Raw) {
		if err := remove(ManifestFile); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reset job: %w", err)
	}
	targets := append(planned, ManifestFile, JobFile)
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && isTempOf(n, targets) {
			if err := remove(n); err != nil {
				return err
			}
		}
	}
	return remove(JobFile)
}

// isTempOf reports whether name is a temporary file atomicfile.Create made
// for one of targets: ".<target>.<digits>.tmp".
func isTempOf(name string, targets []string) bool {
	for _, t := range targets {
		mid, ok := strings.CutPrefix(name, "."+t+".")
		if !ok {
			continue
		}
		if digits, ok := strings.CutSuffix(mid, ".tmp"); ok && digits != "" && strings.Trim(digits, "0123456789") == "" {
			return true
		}
	}
	return false
}

// sameManifest reports whether the file at path holds the manifest raw,
// as Export wrote it. The job state keeps the manifest re-encoded
// (indented, with <, > and & escaped), so both are compared in one form.
func sameManifest(path string, raw []byte) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	norm := func(b []byte) []byte {
		var compact, escaped bytes.Buffer
		if json.Compact(&compact, b) != nil {
			return nil
		}
		json.HTMLEscape(&escaped, compact.Bytes())
		return escaped.Bytes()
	}
	a, want := norm(b), norm(raw)
	return a != nil && bytes.Equal(a, want)
}

// CancelJob sends DELETE for the job recorded in dir, if any, and forgets
// it (ResetJob: only the job's own files are removed). It reports whether
// there was a job.
func (c *Client) CancelJob(ctx context.Context, dir string) (bool, error) {
	j, err := LoadJob(dir)
	if err != nil || j == nil {
		return false, err
	}
	if j.StatusURL != "" {
		if err := c.Cancel(ctx, j.StatusURL); err != nil {
			return true, err
		}
	}
	return true, ResetJob(dir)
}

// link is a manifest paging link.
type link struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// followPages fetches the pages a manifest links to ("next") and merges
// their files into one manifest. Raw becomes the merged manifest.
func (c *Client) followPages(ctx context.Context, m *Manifest) (*Manifest, error) {
	var raw map[string]any
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		return nil, fmt.Errorf("decode manifest: %w: %w", ErrProtocol, err)
	}
	next, err := nextLink(m.Raw)
	if err != nil {
		return nil, err
	}
	if next == "" {
		return m, nil
	}
	seen := map[string]bool{}
	for page := 2; next != ""; page++ {
		if seen[next] || page > 10_000 {
			return nil, fmt.Errorf("manifest paging loops at page %d: %w", page, ErrProtocol)
		}
		seen[next] = true
		var body []byte
		err := c.retrying(ctx, "manifest page", func() (time.Duration, error) {
			resp, err := c.send(ctx, http.MethodGet, next, http.Header{"Accept": {"application/json"}}, nil, true)
			if err != nil {
				return 0, err
			}
			if resp.StatusCode != http.StatusOK {
				return retryAfter(resp.Header.Get("Retry-After"), c.now()), statusError("manifest page", resp, nil)
			}
			defer resp.Body.Close()
			body, err = io.ReadAll(io.LimitReader(resp.Body, 256<<20))
			if err != nil {
				return 0, fmt.Errorf("read manifest page: %w: %w", ErrTransient, err)
			}
			return 0, nil
		})
		if err != nil {
			return nil, err
		}
		pm, err := parseManifest(body)
		if err != nil {
			return nil, fmt.Errorf("manifest page %d: %w", page, err)
		}
		m.Output = append(m.Output, pm.Output...)
		m.Error = append(m.Error, pm.Error...)
		m.Deleted = append(m.Deleted, pm.Deleted...)
		if next, err = nextLink(body); err != nil {
			return nil, fmt.Errorf("manifest page %d: %w", page, err)
		}
	}
	raw["output"], raw["error"], raw["deleted"] = m.Output, m.Error, m.Deleted
	delete(raw, "link")
	merged, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("merge manifest pages: %w", err)
	}
	m.Raw = merged
	c.log(ctx).Info("manifest pages merged", "files", len(m.Output)+len(m.Error)+len(m.Deleted))
	return m, nil
}

// nextLink returns the URL of the "next" link of a manifest page, "" on
// the last page. A link array that does not decode, or a next URL that is
// not an absolute http or https URL, is an ErrProtocol error: ignoring it
// would drop the pages that follow without a word.
func nextLink(body []byte) (string, error) {
	var p struct {
		Link []link `json:"link"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", fmt.Errorf("decode manifest links: %w: %w", ErrProtocol, err)
	}
	for _, l := range p.Link {
		if l.Relation == "next" && l.URL != "" {
			if err := checkHTTPURL(l.URL); err != nil {
				return "", fmt.Errorf("manifest next link: %w", err)
			}
			return l.URL, nil
		}
	}
	return "", nil
}
