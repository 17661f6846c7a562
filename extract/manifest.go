package extract

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Manifest is the completion answer of a Bulk Data export (the body of the
// final 200 on the status URL). Fields beyond the standard ones are the
// 1upHealth extras, kept for diagnostics.
type Manifest struct {
	// TransactionTime is the server's time when the export started; every
	// resource in the files was last updated at or before it. It is the
	// watermark of the data, never the client's clock.
	TransactionTime     time.Time   `json:"-"`
	RawTransactionTime  string      `json:"transactionTime"`
	Request             string      `json:"request"`
	RequiresAccessToken bool        `json:"requiresAccessToken"`
	Output              []FileEntry `json:"output"`
	Error               []FileEntry `json:"error"`
	Deleted             []FileEntry `json:"deleted,omitempty"`
	// OutputOrganizedBy is the resource type the output files are
	// organized by (organizeOutputBy): each file then holds many types,
	// in blocks that each start with a header Parameters resource, and
	// its entry may have no type.
	OutputOrganizedBy string `json:"outputOrganizedBy,omitempty"`

	// Status is 1upHealth's job status ("Successful", "Failed", ...).
	Status        string `json:"status,omitempty"`
	ResourceCount int64  `json:"resourceCount,omitempty"`

	// Raw is the manifest exactly as the server sent it.
	Raw []byte `json:"-"`
}

// FileEntry is one file of a manifest.
type FileEntry struct {
	Type string `json:"type"`
	URL  string `json:"url"`
	// Count is the number of resources in the file, when the server says.
	Count *int64 `json:"count,omitempty"`
	// Extension may carry a checksum (see checksum).
	Extension map[string]any `json:"extension,omitempty"`
}

// checksum returns the SHA-256 (lower-case hex) the server gives for the
// file in an extension whose key mentions sha256 or checksum, with or
// without a "sha256:" prefix; "" when there is none.
func (f FileEntry) checksum() string {
	for k, v := range f.Extension {
		s, ok := v.(string)
		lk := strings.ToLower(k)
		if !ok || !(strings.Contains(lk, "sha256") || strings.Contains(lk, "checksum")) {
			continue
		}
		s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:"))
		if len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" {
			return s
		}
	}
	return ""
}

// parseManifest decodes and checks a manifest body: a transactionTime
// that is an instant, and entries in output, error and deleted that each
// have a type and an absolute http or https url. Errors wrap ErrProtocol.
func parseManifest(body []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w: %w", ErrProtocol, err)
	}
	if m.RawTransactionTime == "" {
		return nil, fmt.Errorf("manifest has no transactionTime: %w", ErrProtocol)
	}
	t, err := parseInstant(m.RawTransactionTime)
	if err != nil {
		return nil, fmt.Errorf("manifest transactionTime %q: %w: %w", clean(m.RawTransactionTime, 64), ErrProtocol, err)
	}
	m.TransactionTime = t
	m.Raw = append([]byte(nil), body...)
	for _, list := range []struct {
		name    string
		entries []FileEntry
	}{{"output", m.Output}, {"error", m.Error}, {"deleted", m.Deleted}} {
		for i, f := range list.entries {
			if f.URL == "" || f.Type == "" && !(list.name == "output" && m.OutputOrganizedBy != "") {
				return nil, fmt.Errorf("manifest %s[%d] lacks type or url: %w", list.name, i, ErrProtocol)
			}
			if err := checkHTTPURL(f.URL); err != nil {
				return nil, fmt.Errorf("manifest %s[%d] url: %w", list.name, i, err)
			}
		}
	}
	return &m, nil
}

// parseInstant accepts the FHIR instant forms servers send: RFC 3339 with
// or without fractional seconds, and (seen in the wild) without a zone,
// which we read as UTC. The zero time.Time (0001-01-01T00:00:00Z) is no
// server's transaction time and is rejected: callers take zero for "none".
func parseInstant(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.IsZero() {
				return time.Time{}, errors.New("the zero instant")
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not an instant")
}

// ReadManifest reads a manifest saved beside downloaded files.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
