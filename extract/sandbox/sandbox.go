// Package sandbox is a payer FHIR API for tests and demos: an HTTP server that
// speaks OAuth2 client credentials and the HL7 Bulk Data $export protocol, in
// both the 1upHealth flavour (/v1/{tenant}/bulk-data/r4) and the standard
// flavour (/fhir), over a deterministic synthetic population of members
// (CARIN Blue Button / US Core shaped resources).
//
// The server keeps its own clock (see Clock): transaction times, token expiry
// and _since filtering follow it, so tests move time instead of sleeping.
//
// Nothing in the production extract path imports this package; only tests and
// the sandbox/demo commands do.
package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Public sandbox defaults. DefaultClientSecret is a documented, public
// sandbox credential, not a secret.
const (
	DefaultTenant       = "bison"
	DefaultClientID     = "fhirlake-sandbox"
	DefaultClientSecret = "sandbox-secret"
	// TokenPath is where the sandbox answers OAuth2 token requests (the 1up
	// Keycloak path). POST /auth/token is an alias.
	TokenPath = "/auth/realms/dev-portal/protocol/openid-connect/token"
)

// DefaultStart is the default sandbox clock start.
var DefaultStart = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// Config configures a Server. Zero fields take the documented defaults,
// applied in one place by New.
type Config struct {
	Members int   // members generated; default 200
	Seed    int64 // generator seed; default 1
	// HistoryYears is how many years of visits (claims, encounters, labs)
	// each member has before Start; default 1.
	HistoryYears int
	// ImplausibleVisits keeps the visits (claims, encounters, labs) the
	// generator draws before a member's birth or coverage start, for
	// testing how views treat claims no coverage explains; by default a
	// member has none.
	ImplausibleVisits bool
	Tenant            string // 1up tenant; default DefaultTenant
	ClientID          string // default DefaultClientID
	ClientSecret      string // default DefaultClientSecret

	// Start is the sandbox clock start; default DefaultStart. Generated
	// data is last updated during the year before Start.
	Start time.Time
	// ClockRuns makes the sandbox clock follow the wall clock from Start
	// (for standalone servers). By default the clock is frozen and only
	// moves by Clock.Set and Clock.Advance.
	ClockRuns bool
	// TokenTTL is the access token lifetime by the sandbox clock; default 1h.
	TokenTTL time.Duration
	// PollsBeforeReady is the number of status polls answered 202 before
	// the manifest; default 1; negative means the first poll gets it.
	PollsBeforeReady int
	// RetryAfter is sent with 202 status answers, in whole seconds rounded
	// up; default 1s.
	RetryAfter time.Duration
	// OmitContentLocation makes 1up kick-off answers carry the status URL
	// only in the OperationOutcome body, as 1up sometimes does.
	OmitContentLocation bool
	// MaxLinesPerFile splits output files; default 5000.
	MaxLinesPerFile int
	// ChangesPerRun, when positive, changes that many resources before
	// every export after the first: new versions, deletions and new
	// members, so that incremental runs have something to pick up.
	ChangesPerRun int
	// AltHost, when set (e.g. "localhost:PORT" for a server listening on
	// 127.0.0.1:PORT), is the host of the status and file URLs the server
	// hands out (http://AltHost/...), whatever host the kick-off used, as
	// 1up's file URLs sit on another gateway host. Both hosts must reach the
	// same handler; tokens are valid on both.
	AltHost string
	// BulkMemberMatch serves Da Vinci PDex $bulk-member-match on the
	// standard base (Group/$bulk-member-match, asynchronous) and
	// advertises it in the CapabilityStatement (GET /fhir/metadata).
	BulkMemberMatch bool
}

func (c *Config) applyDefaults() error {
	if c.Members < 0 {
		return fmt.Errorf("sandbox: members %d: must not be negative", c.Members)
	}
	if c.Members == 0 {
		c.Members = 200
	}
	if c.HistoryYears < 0 || c.HistoryYears > 50 {
		return fmt.Errorf("sandbox: history years %d: want 1 to 50", c.HistoryYears)
	}
	if c.HistoryYears == 0 {
		c.HistoryYears = 1
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Tenant == "" {
		c.Tenant = DefaultTenant
	}
	if strings.ContainsAny(c.Tenant, "/?#% ") {
		return fmt.Errorf("sandbox: tenant %q: must be one path segment", c.Tenant)
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.ClientSecret == "" {
		c.ClientSecret = DefaultClientSecret
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC()
	if c.TokenTTL <= 0 {
		c.TokenTTL = time.Hour
	}
	if c.PollsBeforeReady == 0 {
		c.PollsBeforeReady = 1
	} else if c.PollsBeforeReady < 0 {
		c.PollsBeforeReady = 0
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	if c.MaxLinesPerFile <= 0 {
		c.MaxLinesPerFile = 5000
	}
	if strings.ContainsAny(c.AltHost, "/?#@ ") {
		return fmt.Errorf("sandbox: alt host %q: want host:port", c.AltHost)
	}
	return nil
}

// RequestLog is one request the server saw.
type RequestLog struct {
	Method        string
	Path          string // URL path, decoded
	Query         string // raw query string
	Host          string
	Authorization bool // a bearer token was present (valid or not)
	Status        int
}

// Server is the sandbox payer. It is safe for concurrent use.
type Server struct {
	cfg   Config
	clock *Clock

	key []byte // signs storage URLs

	mu       sync.Mutex // guards everything below
	store    *store
	tokens   map[string]token
	jobs     map[string]*job
	seq      int // last job kick-off number
	added    int // members applyChanges added
	requests []RequestLog
	faults   Faults
	jwks     map[string]jose.JSONWebKeySet // private_key_jwt clients by id
	jtis     map[string]bool               // client assertion ids seen
	bulk     map[string]*bulkMatch         // $bulk-member-match answers by id
}

// New generates the data for cfg and returns a server over it.
func New(cfg Config) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	st, err := newStore()
	if err != nil {
		return nil, err
	}
	// Member by member into the store: memory holds the index, not the
	// population (see spill).
	if err := stream(cfg, st.put); err != nil {
		return nil, fmt.Errorf("sandbox: generate: %w", err)
	}
	return &Server{
		cfg:    cfg,
		clock:  newClock(cfg.Start, cfg.ClockRuns),
		key:    []byte(randomID(32)),
		store:  st,
		tokens: make(map[string]token),
		jobs:   make(map[string]*job),
		jwks:   make(map[string]jose.JSONWebKeySet),
		jtis:   make(map[string]bool),
	}, nil
}

// Config returns the server's configuration with defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Handler returns the HTTP handler serving every sandbox route. Mount it at
// the root of a server (httptest.NewServer(s.Handler())).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Clock returns the sandbox clock.
func (s *Server) Clock() *Clock { return s.clock }

// ResourceTypes lists the resource types the server holds, in export order.
func (s *Server) ResourceTypes() []string { return slices.Clone(resourceTypes) }

// Count returns the number of resources of resourceType in the current data.
func (s *Server) Count(resourceType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.store.byType[resourceType])
}

// Resources returns copies of the current JSON of each resource of
// resourceType, in a deterministic order (generation order; new resources
// last).
func (s *Server) Resources(resourceType string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.store.byType[resourceType]
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r.raw() // a fresh copy from the spill file
	}
	return out
}

// GroupIDs returns the ids of the attribution groups, in order.
func (s *Server) GroupIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, r := range s.store.byType["Group"] {
		ids = append(ids, r.id)
	}
	return ids
}

// Put adds or replaces a resource (one JSON object with resourceType and
// id). A missing meta.lastUpdated is set to the sandbox clock. Running
// export jobs are not affected.
func (s *Server) Put(resource []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.putJSON(resource, s.clock.Now())
}

// Touch sets meta.lastUpdated of an existing resource to the sandbox clock,
// as if the payer had updated it.
func (s *Server) Touch(resourceType, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.touch(resourceType, id, s.clock.Now())
}

// Delete removes a resource, recording a tombstone at the sandbox clock:
// exports with a _since at or before that time list it in the manifest's
// deleted[]. Putting the resource again clears the tombstone. Running
// export jobs are not affected.
func (s *Server) Delete(resourceType, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.remove(resourceType, id, s.clock.Now())
}

// Update changes a resource as the payer would: mutate edits a decoded copy
// (numbers as json.Number; it must not change resourceType or id), then
// meta.lastUpdated is set to the sandbox clock and meta.versionId bumped
// (a resource without one counts as version 1, so its first update makes
// "2"). The original key order is kept; new keys follow, sorted. Running
// export jobs are not affected.
func (s *Server) Update(resourceType, id string, mutate func(map[string]any)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.update(resourceType, id, s.clock.Now(), mutate)
}

// Requests returns every request seen so far, in arrival order.
func (s *Server) Requests() []RequestLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// OneUpBase returns the 1up-flavour FHIR base for tenant, where root is
// "http://host:port" of wherever the handler is mounted.
func OneUpBase(root, tenant string) string {
	return strings.TrimSuffix(root, "/") + "/v1/" + tenant + "/bulk-data/r4"
}

// StandardBase returns the standard-flavour FHIR base.
func StandardBase(root string) string { return strings.TrimSuffix(root, "/") + "/fhir" }

// TokenURL returns the token endpoint.
func TokenURL(root string) string { return strings.TrimSuffix(root, "/") + TokenPath }

// Clock is the sandbox clock. It is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex // guards all fields
	now  time.Time
	runs bool      // follows the wall clock from ref
	ref  time.Time // wall time when now was last set
}

func newClock(start time.Time, runs bool) *Clock {
	return &Clock{now: start, runs: runs, ref: time.Now()}
}

// Now returns the sandbox time, in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked()
}

func (c *Clock) nowLocked() time.Time {
	if c.runs {
		return c.now.Add(time.Since(c.ref)).UTC()
	}
	return c.now
}

// Set sets the sandbox time.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.ref = t.UTC(), time.Now()
}

// Advance moves the sandbox time by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.ref = c.nowLocked().Add(d), time.Now()
}

// randomID returns n random bytes, hex encoded.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}

// errNotFound is returned by store operations on unknown resources.
var errNotFound = errors.New("resource not found")
