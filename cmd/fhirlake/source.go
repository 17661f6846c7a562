package main

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/internal/config"
	"github.com/fhirlake/fhirlake/internal/private"
)

// sourceFlags are the flags that describe a FHIR source, shared by export
// and run. Secrets are never flag values: --client-secret-file names a file,
// or FHIRLAKE_CLIENT_SECRET holds the secret.
func sourceFlags() []cli.Flag {
	flags := append(serverFlags(), kindFlag())
	flags = append(flags, downloadFlags()...)
	flags = append(flags, exportFlags()...)
	return append(flags, authFlags()...)
}

// serverFlags name the server and how hard to push it.
func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "fhir-url", Usage: "FHIR base URL of the payer API (required unless --config gives it); {tenant} is replaced by --tenant", EnvVars: []string{"FHIRLAKE_FHIR_URL"}},
		&cli.StringFlag{Name: "tenant", Usage: "1upHealth tenant, substituted for {tenant} in --fhir-url and --token-url", EnvVars: []string{"FHIRLAKE_TENANT"}},
		&cli.Float64Flag{Name: "rate-limit", Value: extract.DefaultRateLimit, Usage: "most requests per second to each host of the server, polls and downloads together (`N`; 0: no limit)", EnvVars: []string{"FHIRLAKE_RATE_LIMIT"}},
		&cli.IntFlag{Name: "rate-burst", Usage: "requests that may go at once before --rate-limit applies (default: the rate)", EnvVars: []string{"FHIRLAKE_RATE_BURST"}},
		&cli.DurationFlag{Name: "max-wait", Value: 24 * time.Hour, Usage: "give up waiting for the export after this long", EnvVars: []string{"FHIRLAKE_MAX_WAIT"}},
		&cli.DurationFlag{Name: "poll-floor", Value: time.Second, Usage: "shortest wait between status polls, whatever Retry-After says", EnvVars: []string{"FHIRLAKE_POLL_FLOOR"}},
		&cli.DurationFlag{Name: "poll-ceiling", Value: 5 * time.Minute, Usage: "longest wait between status polls, whatever Retry-After says", EnvVars: []string{"FHIRLAKE_POLL_CEILING"}},
	}
}

func kindFlag() cli.Flag {
	return &cli.StringFlag{Name: "kind", Usage: "source kind: provider-access, payer-to-payer (needs --roster) or bulk", EnvVars: []string{"FHIRLAKE_KIND"}}
}

// downloadFlags bound the export's file downloads.
func downloadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "parallel file downloads", EnvVars: []string{"FHIRLAKE_CONCURRENCY"}},
		&cli.StringFlag{Name: "max-file-size", Value: "64GiB", Usage: "largest file to download, once decompressed (e.g. 500MB, 64GiB); a larger one fails the export (exit 2)", EnvVars: []string{"FHIRLAKE_MAX_FILE_SIZE"}},
		&cli.Float64Flag{Name: "max-decompression-ratio", Value: extract.DefaultMaxDecompressionRatio, Usage: "largest ratio of decompressed to downloaded bytes of a gzip-compressed file (FHIR NDJSON: 10-25); more fails the export (exit 2)", EnvVars: []string{"FHIRLAKE_MAX_DECOMPRESSION_RATIO"}},
	}
}

// exportFlags say what to export.
func exportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "group", Usage: "export Group/`ID`/$export instead of the system-level $export", EnvVars: []string{"FHIRLAKE_GROUP"}},
		&cli.StringFlag{Name: "types", Usage: "comma-separated resource types (_type); default: all the server offers", EnvVars: []string{"FHIRLAKE_TYPES"}},
		&cli.StringFlag{Name: "since", Usage: "only resources updated at or after this RFC 3339 instant (_since)", EnvVars: []string{"FHIRLAKE_SINCE"}},
		&cli.BoolFlag{Name: "patient-export", Usage: "export Patient/$export instead of the system-level $export", EnvVars: []string{"FHIRLAKE_PATIENT_EXPORT"}},
		&cli.StringFlag{Name: "export-type", Usage: "with --group, use Group/ID/$davinci-data-export with this exportType (Da Vinci PDex), e.g. hl7.fhir.us.davinci-pdex#provider-download", EnvVars: []string{"FHIRLAKE_EXPORT_TYPE"}},
		&cli.BoolFlag{Name: "post", Usage: "kick off with POST and a FHIR Parameters body instead of GET", EnvVars: []string{"FHIRLAKE_POST"}},
		&cli.StringSliceFlag{Name: "type-filter", Usage: "_typeFilter query, e.g. 'Observation?category=laboratory' (repeatable)", EnvVars: []string{"FHIRLAKE_TYPE_FILTER"}},
		&cli.StringFlag{Name: "elements", Usage: "_elements: comma-separated elements to keep", EnvVars: []string{"FHIRLAKE_ELEMENTS"}},
		&cli.StringFlag{Name: "output-format", Usage: "_outputFormat (default: the server's, NDJSON)", EnvVars: []string{"FHIRLAKE_OUTPUT_FORMAT"}},
		&cli.StringSliceFlag{Name: "include-associated-data", Usage: "includeAssociatedData value, e.g. LatestProvenanceResources (repeatable)", EnvVars: []string{"FHIRLAKE_INCLUDE_ASSOCIATED_DATA"}},
		&cli.StringSliceFlag{Name: "patient", Usage: "restrict to this patient reference, e.g. Patient/123 (repeatable; needs --post)", EnvVars: []string{"FHIRLAKE_PATIENT"}},
		&cli.StringFlag{Name: "organize-output-by", Usage: "organizeOutputBy: ask the server to group output files by this resource type (files of many types, read as such)", EnvVars: []string{"FHIRLAKE_ORGANIZE_OUTPUT_BY"}},
		&cli.BoolFlag{Name: "allow-partial-manifests", Usage: "allowPartialManifests: let the server list files while the export runs, and download them meanwhile", EnvVars: []string{"FHIRLAKE_ALLOW_PARTIAL_MANIFESTS"}},
	}
}

// authFlags say how to authenticate.
func authFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "auth", Usage: "none, client-secret or private-key-jwt (default: client-secret when --token-url is set, else none)", EnvVars: []string{"FHIRLAKE_AUTH"}},
		&cli.StringFlag{Name: "token-url", Usage: "OAuth2 token endpoint", EnvVars: []string{"FHIRLAKE_TOKEN_URL"}},
		&cli.StringFlag{Name: "client-id", Usage: "OAuth2 client id", EnvVars: []string{"FHIRLAKE_CLIENT_ID"}},
		&cli.StringFlag{Name: "client-secret-file", Usage: "file holding the client secret (or set FHIRLAKE_CLIENT_SECRET)", EnvVars: []string{"FHIRLAKE_CLIENT_SECRET_FILE"}},
		&cli.BoolFlag{Name: "client-secret-basic", Usage: "send the client id and secret with HTTP Basic instead of the form body", EnvVars: []string{"FHIRLAKE_CLIENT_SECRET_BASIC"}},
		&cli.StringFlag{Name: "private-key", Usage: "private key `FILE` (PEM or JWK) for --auth private-key-jwt", EnvVars: []string{"FHIRLAKE_PRIVATE_KEY"}},
		&cli.StringFlag{Name: "key-id", Usage: "kid of the registered public key (default: the JWK's kid)", EnvVars: []string{"FHIRLAKE_KEY_ID"}},
		&cli.StringFlag{Name: "jwt-alg", Usage: "RS384 or ES384 (default: the one that fits the key)", EnvVars: []string{"FHIRLAKE_JWT_ALG"}},
		&cli.StringFlag{Name: "scope", Usage: "OAuth2 scopes, space-separated (1upHealth: bulk-data|user/*.rs)", EnvVars: []string{"FHIRLAKE_SCOPE"}},
	}
}

// sourceOptions is a parsed source.
type sourceOptions struct {
	name    string // the config source name; "" from flags alone
	kind    string
	roster  string
	client  *extract.Client
	request extract.Request
}

// parseSource builds the source from the flags alone.
func parseSource(c *cli.Context, log *slog.Logger) (sourceOptions, error) {
	return resolveSettings(c, nil).source(log)
}

// settings is one source's effective configuration. Each value comes from
// its flag or environment variable when set (urfave/cli gives the flag
// precedence over the variable), else from the config file, else from the
// flag's default: flag > env > file > default.
type settings struct {
	name, kind                                    string
	fhirURL, tokenURL, auth, clientID, secretRef  string
	keyRef, keyID, jwtAlg, scope                  string
	basic, post, patientExport, partial           bool
	group, exportType, roster                     string
	types, typeFilters, elements, assoc, patients []string
	outputFormat, organizeBy, since               string
	concurrency, rateBurst                        int
	rateLimit                                     float64
	floor, ceiling, maxWait                       time.Duration
	maxFileSize                                   string // as ParseSize reads it
	maxRatio                                      float64
}

// resolveSettings merges the flags with src (nil without a config file).
func resolveSettings(c *cli.Context, src *config.Source) settings {
	if src == nil {
		src = &config.Source{}
	}
	str := func(flag, file string) string {
		if c.IsSet(flag) || file == "" {
			return c.String(flag)
		}
		return file
	}
	list := func(flag string, file []string, comma bool) []string {
		if c.IsSet(flag) || len(file) == 0 {
			if comma {
				return splitList(c.String(flag))
			}
			return c.StringSlice(flag)
		}
		return file
	}
	boolean := func(flag string, file bool) bool {
		if c.IsSet(flag) {
			return c.Bool(flag)
		}
		return file || c.Bool(flag)
	}
	dur := func(flag string, file config.Duration) time.Duration {
		if c.IsSet(flag) || file == 0 {
			return c.Duration(flag)
		}
		return time.Duration(file)
	}
	tenant := str("tenant", src.Tenant)
	s := settings{
		name: src.Name, kind: str("kind", src.Kind),
		fhirURL:  config.Expand(str("fhir-url", src.FHIRURL), tenant),
		tokenURL: config.Expand(str("token-url", src.TokenURL), tenant),
		auth:     str("auth", src.Auth.Method), clientID: str("client-id", src.Auth.ClientID),
		keyID: str("key-id", src.Auth.KeyID), jwtAlg: str("jwt-alg", src.Auth.JWTAlg), scope: str("scope", src.Auth.Scope),
		basic: boolean("client-secret-basic", src.Auth.Basic), post: boolean("post", src.Post),
		patientExport: c.Bool("patient-export"), partial: c.Bool("allow-partial-manifests"),
		group: str("group", src.Group), exportType: str("export-type", src.ExportType), roster: str("roster", src.Roster),
		types: list("types", src.Types, true), typeFilters: list("type-filter", src.TypeFilter, false),
		elements: splitList(c.String("elements")), assoc: c.StringSlice("include-associated-data"), patients: c.StringSlice("patient"),
		outputFormat: c.String("output-format"), organizeBy: c.String("organize-output-by"), since: c.String("since"),
		concurrency: c.Int("concurrency"),
		floor:       dur("poll-floor", src.Polling.Floor), ceiling: dur("poll-ceiling", src.Polling.Ceiling), maxWait: dur("max-wait", src.Polling.MaxWait),
	}
	if !c.IsSet("concurrency") && src.Concurrency > 0 {
		s.concurrency = src.Concurrency
	}
	if s.concurrency == 0 && !slices.ContainsFunc(c.Command.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "concurrency") }) {
		s.concurrency = 1 // a command that downloads nothing (member-match)
	}
	s.rateLimit, s.rateBurst = c.Float64("rate-limit"), c.Int("rate-burst")
	if !c.IsSet("rate-limit") && src.RateLimit != 0 {
		s.rateLimit = src.RateLimit
	}
	if !c.IsSet("rate-burst") && src.RateBurst != 0 {
		s.rateBurst = src.RateBurst
	}
	s.maxFileSize = str("max-file-size", src.MaxFileSize)
	s.maxRatio = c.Float64("max-decompression-ratio")
	if !c.IsSet("max-decompression-ratio") && src.MaxDecompressionRatio != 0 {
		s.maxRatio = src.MaxDecompressionRatio
	}
	// Secrets are references: env:NAME or file:PATH.
	switch {
	case c.IsSet("client-secret-file"):
		s.secretRef = "file:" + c.String("client-secret-file")
	case os.Getenv("FHIRLAKE_CLIENT_SECRET") != "":
		s.secretRef = "env:FHIRLAKE_CLIENT_SECRET"
	default:
		s.secretRef = src.Auth.ClientSecret
	}
	if c.IsSet("private-key") {
		s.keyRef = "file:" + c.String("private-key")
	} else {
		s.keyRef = src.Auth.PrivateKey
	}
	return s
}

// source checks the settings and builds the client and the request.
func (s settings) source(log *slog.Logger) (sourceOptions, error) {
	where := ""
	if s.name != "" {
		where = "source " + s.name + ": "
	}
	if s.fhirURL == "" {
		return sourceOptions{}, usagef("%sno FHIR base URL: pass --fhir-url or set fhir_url in the config", where)
	}
	if !config.IsURL(s.fhirURL) {
		return sourceOptions{}, usagef("%s--fhir-url %q is not an http(s) URL (for example https://payer.example/fhir)", where, s.fhirURL)
	}
	if s.kind != "" {
		if err := config.CheckKind(s.kind); err != nil {
			return sourceOptions{}, usagef("%s%v", where, err)
		}
		if s.kind == "payer-to-payer" && s.roster == "" {
			return sourceOptions{}, usagef("%sa payer-to-payer source needs a roster: pass --roster or set roster in the config", where)
		}
	}
	req := extract.Request{
		Group: s.group, Patient: s.patientExport, ExportType: s.exportType, Post: s.post,
		Types: s.types, TypeFilters: s.typeFilters, Elements: s.elements, OutputFormat: s.outputFormat,
		IncludeAssociatedData: s.assoc, Patients: s.patients, OrganizeOutputBy: s.organizeBy,
		AllowPartialManifests: s.partial,
	}
	if len(req.Patients) > 0 && !req.Post {
		return sourceOptions{}, usagef("%s--patient needs --post (the patient parameter exists only in a POST kick-off)", where)
	}
	if req.ExportType != "" && req.Group == "" {
		return sourceOptions{}, usagef("%s--export-type needs --group", where)
	}
	if s.since != "" {
		t, err := time.Parse(time.RFC3339Nano, s.since)
		if err != nil {
			return sourceOptions{}, usagef("--since %q is not an RFC 3339 instant (e.g. 2026-01-02T00:00:00Z)", s.since)
		}
		req.Since = t
	}
	if s.concurrency < 1 {
		return sourceOptions{}, usagef("%s--concurrency must be at least 1", where)
	}
	if s.rateLimit < 0 || s.rateBurst < 0 {
		return sourceOptions{}, usagef("%s--rate-limit and --rate-burst must not be negative", where)
	}
	rateLimit := s.rateLimit
	if rateLimit == 0 {
		rateLimit = -1 // none
	}
	if s.floor <= 0 || s.ceiling < s.floor {
		return sourceOptions{}, usagef("%s--poll-floor must be positive and at most --poll-ceiling", where)
	}
	var maxFileSize int64 // 0: the default, for commands without the flag
	if s.maxFileSize != "" {
		n, err := config.ParseSize(s.maxFileSize)
		if err != nil {
			return sourceOptions{}, usagef("%s--max-file-size: %v", where, err)
		}
		maxFileSize = n
	}
	if s.maxRatio != 0 && !(s.maxRatio >= 1) {
		return sourceOptions{}, usagef("%s--max-decompression-ratio must be at least 1", where)
	}
	cl := &extract.Client{
		BaseURL: s.fhirURL, Concurrency: s.concurrency, MaxWait: s.maxWait, RateLimit: rateLimit, RateBurst: s.rateBurst,
		PollFloor: s.floor, PollCeiling: s.ceiling, Log: log,
		MaxFileSize: maxFileSize, MaxDecompressionRatio: s.maxRatio,
		GroupReadable: private.GroupReadable(), // --group-readable
	}
	tokens, err := s.tokenSource(where)
	if err != nil {
		return sourceOptions{}, err
	}
	cl.Tokens = tokens
	return sourceOptions{name: s.name, kind: s.kind, roster: s.roster, client: cl, request: req}, nil
}

// tokenSource builds the authentication the settings ask for.
func (s settings) tokenSource(where string) (extract.TokenSource, error) {
	auth := s.auth
	if auth == "" {
		auth = "none"
		if s.tokenURL != "" {
			auth = "client-secret"
		}
	}
	if auth == "none" {
		return nil, nil
	}
	if s.tokenURL == "" || s.clientID == "" {
		return nil, usagef("%s--auth %s needs --token-url and --client-id", where, auth)
	}
	scopes := strings.Fields(s.scope)
	switch auth {
	case "client-secret":
		if s.secretRef == "" {
			return nil, usagef("%sno client secret: pass --client-secret-file FILE or set FHIRLAKE_CLIENT_SECRET", where)
		}
		secret, err := config.Resolve(s.secretRef)
		if err != nil {
			return nil, usagef("%s%v", where, err)
		}
		if secret == "" {
			return nil, usagef("%sclient secret %s is empty", where, s.secretRef)
		}
		return extract.NewClientSecretSource(extract.ClientSecretConfig{
			TokenURL: s.tokenURL, ClientID: s.clientID, ClientSecret: secret, Scopes: scopes, Basic: s.basic,
		}), nil
	case "private-key-jwt":
		if s.keyRef == "" {
			return nil, usagef("%s--auth private-key-jwt needs --private-key FILE", where)
		}
		pem, err := config.Resolve(s.keyRef)
		if err != nil {
			return nil, usagef("%s%v", where, err)
		}
		key, kid, err := extract.ParsePrivateKey([]byte(pem), s.keyRef)
		if err != nil {
			return nil, usagef("%s%v", where, err)
		}
		if s.keyID != "" {
			kid = s.keyID
		}
		if kid == "" {
			return nil, usagef("%s--auth private-key-jwt needs --key-id (the kid registered with the payer)", where)
		}
		ts, err := extract.NewPrivateKeyJWTSource(extract.PrivateKeyJWTConfig{
			TokenURL: s.tokenURL, ClientID: s.clientID, Key: key, KeyID: kid, Alg: s.jwtAlg, Scopes: scopes,
		})
		if err != nil {
			return nil, usagef("%s%v", where, err)
		}
		return ts, nil
	default:
		return nil, usagef("%s--auth %q: want none, client-secret or private-key-jwt", where, auth)
	}
}

func splitList(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func describeRequest(r extract.Request) string {
	s := "system"
	switch {
	case r.Group != "":
		s = "group " + r.Group
	case r.Patient:
		s = "patient"
	}
	if len(r.Types) > 0 {
		s += fmt.Sprintf(", types %s", strings.Join(r.Types, ","))
	}
	if !r.Since.IsZero() {
		s += ", since " + r.Since.Format(time.RFC3339)
	}
	return s
}
