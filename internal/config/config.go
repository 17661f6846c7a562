// Package config reads fhirlake's YAML configuration: the warehouse, the
// lake and one or more sources (payer APIs) with their authentication.
// Loading never contacts anything; it reports every problem it finds, each
// with its file, line and key, so that one `fhirlake config check` fixes
// them all. Secrets appear only as references (env:NAME or file:PATH).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/fhirlake/fhirlake/internal/fhirtypes"
	"github.com/fhirlake/fhirlake/internal/suggest"
	"math"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a parsed configuration file.
type File struct {
	Path      string `yaml:"-"`
	Warehouse string `yaml:"warehouse"`
	Lake      string `yaml:"lake"`
	// LakeFormat is parquet (the default) or iceberg.
	LakeFormat string `yaml:"lake_format"`
	// Catalog is the Iceberg catalog: sqlite:PATH, a postgres:// URL, or
	// a reference (env:NAME, file:PATH) to one that holds a password.
	Catalog     string   `yaml:"catalog"`
	Namespace   string   `yaml:"namespace"`
	S3Endpoint  string   `yaml:"s3_endpoint"`
	S3PathStyle bool     `yaml:"s3_path_style"`
	WorkDir     string   `yaml:"work_dir"`
	MaxRejects  *int64   `yaml:"max_rejects"`
	Person      Person   `yaml:"person"`
	Sources     []Source `yaml:"sources"`
}

// Person says which identifiers link the records of one human across
// sources, besides the Medicare MBI (always) and Payer-to-Payer matches.
type Person struct {
	// IdentifierSystems are identifier systems whose value names one
	// person wherever it appears (a state Medicaid id, an enterprise MPI).
	IdentifierSystems []string `yaml:"identifier_systems"`
	// RosterMemberSystem is the identifier system of your own member
	// numbers, the roster's coverage_to_link.
	RosterMemberSystem string `yaml:"roster_member_system"`
}

// Source is one payer API.
type Source struct {
	Name       string   `yaml:"name"`
	Kind       string   `yaml:"kind"`
	FHIRURL    string   `yaml:"fhir_url"`
	TokenURL   string   `yaml:"token_url"`
	Tenant     string   `yaml:"tenant"`
	Auth       Auth     `yaml:"auth"`
	Group      string   `yaml:"group"`
	ExportType string   `yaml:"export_type"`
	Roster     string   `yaml:"roster"`
	Types      []string `yaml:"types"`
	TypeFilter []string `yaml:"type_filter"`
	Post       bool     `yaml:"post"`
	// Concurrency is the number of parallel downloads; 0 means the default.
	Concurrency int `yaml:"concurrency"`
	// RateLimit bounds the requests per second to each host of the
	// server; RateBurst how many may go at once. 0 means the default.
	RateLimit float64 `yaml:"rate_limit"`
	RateBurst int     `yaml:"rate_burst"`
	Polling   Polling `yaml:"polling"`
	// MaxFileSize bounds one downloaded file once decompressed, as a size
	// ParseSize reads (64GiB, 500MB); "" means the default.
	MaxFileSize string `yaml:"max_file_size"`
	// MaxDecompressionRatio bounds the bytes a gzip-compressed file may
	// expand to per byte downloaded; 0 means the default.
	MaxDecompressionRatio float64 `yaml:"max_decompression_ratio"`
}

// Auth says how a source authenticates.
type Auth struct {
	Method string `yaml:"method"`
	// ClientID is not a secret.
	ClientID string `yaml:"client_id"`
	// ClientSecret and PrivateKey are references: env:NAME or file:PATH.
	ClientSecret string `yaml:"client_secret"`
	Basic        bool   `yaml:"basic"`
	PrivateKey   string `yaml:"private_key"`
	KeyID        string `yaml:"key_id"`
	JWTAlg       string `yaml:"jwt_alg"`
	Scope        string `yaml:"scope"`
}

// Polling bounds the wait for an export; zero values mean the defaults.
type Polling struct {
	Floor   Duration `yaml:"floor"`
	Ceiling Duration `yaml:"ceiling"`
	MaxWait Duration `yaml:"max_wait"`
}

// Duration is a time.Duration written as "90s", "5m", "24h".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 30s, 5m or 24h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// sizeRE is a size: a number, then optionally a unit.
var sizeRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$`)

// sizeUnits are the units ParseSize reads, by their lower-case names.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseSize reads a number of bytes: a plain count (1048576) or a number
// with a unit, decimal (kB, MB, GB, TB: powers of 1000) or binary (KiB,
// MiB, GiB, TiB: powers of 1024), in any case and with or without a space:
// 500MB, 1.5GiB, 64 GiB. The size must be at least one byte.
func ParseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 500MB or 64GiB", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, m[2])
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size such as 500MB or 64GiB", s)
	}
	n := math.Round(v * unit)
	switch {
	case n < 1:
		return 0, fmt.Errorf("%q: a size must be at least 1 byte", s)
	case n >= math.MaxInt64:
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(n), nil
}

// Kinds of source.
var kinds = []string{"provider-access", "payer-to-payer", "bulk"}

// CheckKind validates a source kind given outside a file (a flag).
func CheckKind(kind string) error {
	if !slices.Contains(kinds, kind) {
		return fmt.Errorf("kind %q: want one of %s", kind, strings.Join(kinds, ", "))
	}
	return nil
}

// Auth methods.
var methods = []string{"none", "client-secret", "private-key-jwt"}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Key != "" {
		return fmt.Sprintf("%s: %s: %s", loc, p.Key, p.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, p.Msg)
}

// Problems is every problem found in a file; it is the error Load returns.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s) in the configuration:\n  %s", len(ps), strings.Join(lines, "\n  "))
}

// ErrNoSource means a source name matches no source of the file.
var ErrNoSource = errors.New("no such source")

// Load reads, parses and checks path. The error, when the file parses, is
// Problems; no network or secret store is contacted, but env: and file:
// references are checked to exist.
func Load(path string) (*File, error) {
	return LoadWith(path, Options{})
}

// Options change what Load checks.
type Options struct {
	// NoResolve checks that secrets and the roster are references of
	// the right form, not that they exist here: for the CI of a
	// deployment repository, where they do not.
	NoResolve bool
	// RequireWarehouse reports a file that names no warehouse (nothing
	// else gives one).
	RequireWarehouse bool
}

// LoadWith is Load with options.
func LoadWith(path string, opts Options) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: fmt.Sprintf("cannot read: %v", errors.Unwrap(err))}}
	}
	return ParseWith(path, data, opts)
}

// Parse is Load on data already read.
func Parse(path string, data []byte) (*File, error) {
	return ParseWith(path, data, Options{})
}

// ParseWith is LoadWith on data already read.
func ParseWith(path string, data []byte, opts Options) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		line, why := syntaxLine(data, yamlLine(err), yamlMsg(err))
		return nil, Problems{{File: path, Line: line, Msg: "not valid YAML: " + yamlMsg(err) + why}}
	}
	f := &File{Path: path}
	var probs Problems
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, Problems{{File: path, Line: yamlLine(err), Msg: yamlMsg(err)}}
		}
		for _, e := range te.Errors {
			probs = append(probs, Problem{File: path, Line: yamlLine(errors.New(e)), Msg: unknownKey(yamlMsg(errors.New(e)))})
		}
	}
	f.Path = path
	lines := map[string]int{}
	walk(&root, "", lines)
	probs = append(probs, f.check(lines, opts)...)
	if len(probs) > 0 {
		return f, probs
	}
	return f, nil
}

// Source returns the named source.
func (f *File) Source(name string) (*Source, error) {
	for i := range f.Sources {
		if f.Sources[i].Name == name {
			return &f.Sources[i], nil
		}
	}
	names := make([]string, len(f.Sources))
	for i, s := range f.Sources {
		names[i] = s.Name
	}
	return nil, fmt.Errorf("%s: source %q: %w (have %s)", f.Path, name, ErrNoSource, strings.Join(names, ", "))
}

// check validates the semantics; lines maps key paths to lines.
func (f *File) check(lines map[string]int, opts Options) Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: f.Path, Line: lineOf(lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	checkRef := func(ref string) error {
		if opts.NoResolve {
			return checkRefForm(ref)
		}
		return checkRef(ref)
	}
	if opts.RequireWarehouse && f.Warehouse == "" {
		add("warehouse", "is required: the DuckDB file runs write to (or set FHIRLAKE_WAREHOUSE)")
	}
	if len(f.Sources) == 0 {
		add("sources", "at least one source is needed")
	}
	if f.MaxRejects != nil && *f.MaxRejects < 0 {
		add("max_rejects", "must be 0 or more")
	}
	switch f.LakeFormat {
	case "", "parquet", "iceberg":
	default:
		add("lake_format", "%q: want parquet or iceberg", f.LakeFormat)
	}
	if f.LakeFormat != "iceberg" && strings.Contains(f.Lake, "://") && !strings.HasPrefix(f.Lake, "file://") {
		add("lake", "%q: object storage needs lake_format: iceberg", f.Lake)
	}
	if c := f.Catalog; c != "" {
		switch {
		case strings.HasPrefix(c, "sqlite:"):
		case strings.HasPrefix(c, "env:"), strings.HasPrefix(c, "file:"):
			if err := checkRef(c); err != nil {
				add("catalog", "%v", err)
			}
		case strings.HasPrefix(c, "postgres://"), strings.HasPrefix(c, "postgresql://"):
			userinfo, _, hasAt := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(c, "postgresql://"), "postgres://"), "@")
			if (hasAt && strings.Contains(userinfo, ":")) || strings.Contains(strings.ToLower(c), "password=") {
				add("catalog", "a password belongs in a reference, env:NAME or file:PATH, not in the file")
			}
		default:
			add("catalog", "want sqlite:PATH, a postgres:// URL, or env:NAME / file:PATH")
		}
	}
	if f.S3Endpoint != "" && !IsURL(f.S3Endpoint) {
		add("s3_endpoint", "%q is not an http(s) URL", f.S3Endpoint)
	}
	for i, sys := range f.Person.IdentifierSystems {
		if !isSystem(sys) {
			add(fmt.Sprintf("person.identifier_systems[%d]", i), "%q is not an identifier system URI (http(s)://, urn:oid: or urn:uuid:)", sys)
		}
	}
	if sys := f.Person.RosterMemberSystem; sys != "" && !isSystem(sys) {
		add("person.roster_member_system", "%q is not an identifier system URI (http(s)://, urn:oid: or urn:uuid:)", sys)
	}
	seen := map[string]bool{}
	for i := range f.Sources {
		s := &f.Sources[i]
		k := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			add(k+".name", "is required")
		case !nameRE.MatchString(s.Name):
			add(k+".name", "%q: use lower-case letters, digits, - and _", s.Name)
		case seen[s.Name]:
			add(k+".name", "%q is used by an earlier source", s.Name)
		}
		seen[s.Name] = true
		if s.Kind == "" {
			add(k+".kind", "is required: one of %s", strings.Join(kinds, ", "))
		} else if !slices.Contains(kinds, s.Kind) {
			add(k+".kind", "%q: want one of %s", s.Kind, strings.Join(kinds, ", "))
		}
		fhirURL := Expand(s.FHIRURL, s.Tenant)
		if fhirURL == "" {
			add(k+".fhir_url", "is required")
		} else if !IsURL(fhirURL) {
			add(k+".fhir_url", "%q is not an http(s) URL", fhirURL)
		}
		if s.Tenant != "" && fhirURL != "" && strings.Contains(fhirURL, "/v1/") && !strings.Contains(fhirURL, "/v1/"+s.Tenant+"/") {
			add(k+".tenant", "%q does not match fhir_url (1upHealth URLs hold /v1/<tenant>/)", s.Tenant)
		}
		if s.Kind == "payer-to-payer" && s.Roster == "" {
			add(k+".roster", "a payer-to-payer source needs a roster CSV")
		}
		if s.Roster != "" && !opts.NoResolve {
			if _, err := os.Stat(s.Roster); err != nil {
				add(k+".roster", "cannot read %s", s.Roster)
			}
		}
		for j, t := range s.Types {
			if !fhirtypes.Is(t) {
				msg := fmt.Sprintf("%q is not a FHIR resource type", t)
				if near := suggest.Closest(t, fhirtypes.All()); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				add(fmt.Sprintf("%s.types[%d]", k, j), "%s", msg)
			}
		}
		if s.ExportType != "" && s.Group == "" {
			add(k+".export_type", "needs group")
		}
		if s.RateLimit < 0 {
			add(k+".rate_limit", "must be a positive number of requests per second")
		}
		if s.RateBurst < 0 {
			add(k+".rate_burst", "must be 1 or more")
		}
		if s.Concurrency < 0 {
			add(k+".concurrency", "must be 1 or more")
		}
		if s.Polling.Floor > 0 && s.Polling.Ceiling > 0 && s.Polling.Floor > s.Polling.Ceiling {
			add(k+".polling.floor", "is longer than polling.ceiling")
		}
		if s.MaxFileSize != "" {
			if _, err := ParseSize(s.MaxFileSize); err != nil {
				add(k+".max_file_size", "%v", err)
			}
		}
		if r := s.MaxDecompressionRatio; r != 0 && !(r >= 1) {
			add(k+".max_decompression_ratio", "%v: must be 1 or more (bytes after decompression per byte downloaded)", r)
		}
		ps = append(ps, f.checkAuth(s, k+".auth", lines, checkRef)...)
	}
	return ps
}

func (f *File) checkAuth(s *Source, k string, lines map[string]int, checkRef func(string) error) Problems {
	var ps Problems
	add := func(key, format string, args ...any) {
		ps = append(ps, Problem{File: f.Path, Line: lineOf(lines, key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	a := s.Auth
	method := a.Method
	if method == "" {
		method = "none"
		if s.TokenURL != "" {
			method = "client-secret"
		}
	}
	if !slices.Contains(methods, method) {
		add(k+".method", "%q: want one of %s", a.Method, strings.Join(methods, ", "))
		return ps
	}
	if method == "none" {
		return ps
	}
	if tokenURL := Expand(s.TokenURL, s.Tenant); tokenURL == "" {
		add(strings.TrimSuffix(k, ".auth")+".token_url", "is required with auth method %s", method)
	} else if !IsURL(tokenURL) {
		add(strings.TrimSuffix(k, ".auth")+".token_url", "%q is not an http(s) URL", tokenURL)
	}
	if a.ClientID == "" {
		add(k+".client_id", "is required with auth method %s", method)
	}
	switch method {
	case "client-secret":
		if a.ClientSecret == "" {
			add(k+".client_secret", "is required: env:NAME or file:PATH")
		} else if err := checkRef(a.ClientSecret); err != nil {
			add(k+".client_secret", "%v", err)
		}
	case "private-key-jwt":
		if a.PrivateKey == "" {
			add(k+".private_key", "is required: file:PATH (PEM or JWK) or env:NAME")
		} else if err := checkRef(a.PrivateKey); err != nil {
			add(k+".private_key", "%v", err)
		}
		if a.JWTAlg != "" && a.JWTAlg != "RS384" && a.JWTAlg != "ES384" {
			add(k+".jwt_alg", "%q: want RS384 or ES384", a.JWTAlg)
		}
	}
	return ps
}

// checkRefForm validates the form of a secret reference (env:NAME or
// file:PATH) without looking it up, and without revealing its value.
func checkRefForm(ref string) error {
	kind, name, ok := strings.Cut(ref, ":")
	if !ok || name == "" || kind != "env" && kind != "file" {
		// Not a reference at all, most likely the secret itself (some
		// secrets hold a colon): never repeat any of it.
		return errors.New("must be a reference, env:NAME or file:PATH; secrets are never written in the file")
	}
	return nil
}

// unknownKey rewrites the YAML decoder's "field x not found in type
// config.T" as the key and the closest key T has.
func unknownKey(msg string) string {
	m := unknownFieldRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	out := fmt.Sprintf("unknown key %s", m[1])
	if t, ok := yamlTypes[m[2]]; ok {
		var keys []string
		for i := range t.NumField() {
			if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
				keys = append(keys, k)
			}
		}
		if near := suggest.Closest(m[1], keys); near != "" {
			out += fmt.Sprintf(" (did you mean %s?)", near)
		}
	}
	return out
}

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)

// yamlTypes are the structs a config file decodes into, by name.
var yamlTypes = map[string]reflect.Type{
	"File": reflect.TypeFor[File](), "Person": reflect.TypeFor[Person](), "Source": reflect.TypeFor[Source](),
	"Auth": reflect.TypeFor[Auth](), "Polling": reflect.TypeFor[Polling](),
}

// checkRef validates a secret reference without revealing its value.
func checkRef(ref string) error {
	if err := checkRefForm(ref); err != nil {
		return err
	}
	kind, name, _ := strings.Cut(ref, ":")
	switch kind {
	case "env":
		if os.Getenv(name) == "" {
			return fmt.Errorf("environment variable %s is not set", name)
		}
	case "file":
		if _, err := os.Stat(name); err != nil {
			return fmt.Errorf("cannot read %s", name)
		}
	}
	return nil
}

// Resolve returns the secret a reference names (env:NAME or file:PATH,
// trimmed). Errors name the reference, never the value.
func Resolve(ref string) (string, error) {
	if err := checkRef(ref); err != nil {
		if !strings.HasPrefix(ref, "env:") && !strings.HasPrefix(ref, "file:") {
			return "", fmt.Errorf("secret: %w", err) // ref may be the secret itself
		}
		return "", fmt.Errorf("secret %s: %w", ref, err)
	}
	kind, name, _ := strings.Cut(ref, ":")
	if kind == "env" {
		return strings.TrimSpace(os.Getenv(name)), nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("secret %s: cannot read the file", ref)
	}
	return strings.TrimSpace(string(b)), nil
}

// Expand substitutes the tenant for {tenant} in a URL (1upHealth URLs
// carry the tenant: /v1/{tenant}/bulk-data/r4).
func Expand(url, tenant string) string {
	return strings.ReplaceAll(url, "{tenant}", tenant)
}

// isSystem reports whether s looks like a FHIR identifier system: a URL or
// a URN.
func isSystem(s string) bool {
	return IsURL(s) || strings.HasPrefix(s, "urn:oid:") || strings.HasPrefix(s, "urn:uuid:")
}

// IsURL reports whether s is an http or https URL with a host.
func IsURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// walk records the line of every mapping key, as dotted paths with list
// indexes: sources[0].auth.client_secret.
func walk(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walk(c, path, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			lines[p] = n.Content[i].Line
			walk(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			walk(c, p, lines)
		}
	}
}

// lineOf finds the line of key, or of its nearest present parent (a
// missing key is reported where its mapping starts).
func lineOf(lines map[string]int, key string) int {
	for k := key; k != ""; {
		if l, ok := lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// syntaxLine finds the line a YAML syntax error is on. The decoder names
// the line where the enclosing block starts (a list, a map), which may be
// far above the mistake: the first line at or after it that opens a
// bracket it does not close (when the error is an unclosed one), holds a
// tab in its indentation, or whose indentation matches no enclosing
// block, is the one to fix. why says which; with none, the reported line
// stays.
func syntaxLine(data []byte, reported int, msg string) (int, string) {
	lines := strings.Split(string(data), "\n")
	for _, br := range [][2]string{{"[", "]"}, {"{", "}"}} {
		if !strings.Contains(msg, "expected ',' or '"+br[1]+"'") {
			continue
		}
		for i, l := range lines {
			if i+1 >= reported && strings.Count(l, br[0]) > strings.Count(l, br[1]) {
				return i + 1, " (a " + br[0] + " this line opens is not closed)"
			}
		}
	}
	stack := []int{0}
	for i, l := range lines {
		n := i + 1
		body := strings.TrimLeft(l, " \t")
		if body == "" || strings.HasPrefix(body, "#") {
			continue
		}
		lead := l[:len(l)-len(body)]
		if n >= reported && strings.Contains(lead, "\t") {
			return n, " (a tab in the indentation of this line)"
		}
		ind, popped := len(lead), false
		for len(stack) > 1 && stack[len(stack)-1] > ind {
			stack, popped = stack[:len(stack)-1], true
		}
		if ind > stack[len(stack)-1] {
			if popped && n >= reported {
				return n, " (the indentation of this line matches no enclosing block)"
			}
			stack = append(stack, ind)
		}
	}
	return reported, ""
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlLine(err error) int {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return 0
}

// yamlMsg strips the "yaml: line N:" prefix; the line goes in Problem.Line.
func yamlMsg(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = yamlLineRE.ReplaceAllString(s, "")
	return strings.TrimLeft(s, ": ")
}
