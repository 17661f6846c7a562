package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
)

// sourceFlags are the flags that describe a FHIR source, shared by export
// and run. Secrets are never flag values: --client-secret-file names a file,
// or FHIRLAKE_CLIENT_SECRET holds the secret.
func sourceFlags() []cli.Flag {
	flags := append([]cli.Flag{}, baseFlags()...)
	flags = append(flags, exportFlags()...)
	return append(flags, authFlags()...)
}

// baseFlags name the server and how hard to push it.
func baseFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "fhir-url", Usage: "FHIR base URL of the payer API", EnvVars: []string{"FHIRLAKE_FHIR_URL"}, Required: true},
		&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "parallel file downloads", EnvVars: []string{"FHIRLAKE_CONCURRENCY"}},
		&cli.DurationFlag{Name: "max-wait", Value: 24 * time.Hour, Usage: "give up waiting for the export after this long", EnvVars: []string{"FHIRLAKE_MAX_WAIT"}},
		&cli.DurationFlag{Name: "poll-floor", Value: time.Second, Usage: "shortest wait between status polls, whatever Retry-After says", EnvVars: []string{"FHIRLAKE_POLL_FLOOR"}},
		&cli.DurationFlag{Name: "poll-ceiling", Value: 5 * time.Minute, Usage: "longest wait between status polls, whatever Retry-After says", EnvVars: []string{"FHIRLAKE_POLL_CEILING"}},
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
		&cli.StringFlag{Name: "organize-output-by", Usage: "organizeOutputBy: ask the server to group output files by this resource type", EnvVars: []string{"FHIRLAKE_ORGANIZE_OUTPUT_BY"}},
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
	client  *extract.Client
	request extract.Request
}

// parseSource turns the source flags into a configured client and request.
func parseSource(c *cli.Context, log *slog.Logger) (sourceOptions, error) {
	req := extract.Request{
		Group:                 c.String("group"),
		Patient:               c.Bool("patient-export"),
		ExportType:            c.String("export-type"),
		Post:                  c.Bool("post"),
		TypeFilters:           c.StringSlice("type-filter"),
		Elements:              splitList(c.String("elements")),
		OutputFormat:          c.String("output-format"),
		IncludeAssociatedData: c.StringSlice("include-associated-data"),
		Patients:              c.StringSlice("patient"),
		OrganizeOutputBy:      c.String("organize-output-by"),
	}
	if len(req.Patients) > 0 && !req.Post {
		return sourceOptions{}, usagef("--patient needs --post (the patient parameter exists only in a POST kick-off)")
	}
	if req.ExportType != "" && req.Group == "" {
		return sourceOptions{}, usagef("--export-type needs --group")
	}
	req.Types = splitList(c.String("types"))
	if s := c.String("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return sourceOptions{}, usagef("--since %q is not an RFC 3339 instant (e.g. 2026-01-02T00:00:00Z)", s)
		}
		req.Since = t
	}
	cl, err := newClient(c, log)
	if err != nil {
		return sourceOptions{}, err
	}
	return sourceOptions{client: cl, request: req}, nil
}

// newClient builds the extract client from the base and auth flags.
func newClient(c *cli.Context, log *slog.Logger) (*extract.Client, error) {
	if c.Int("concurrency") < 1 {
		return nil, usagef("--concurrency must be at least 1")
	}
	if c.Duration("poll-floor") <= 0 || c.Duration("poll-ceiling") < c.Duration("poll-floor") {
		return nil, usagef("--poll-floor must be positive and at most --poll-ceiling")
	}
	cl := &extract.Client{
		BaseURL:     c.String("fhir-url"),
		Concurrency: c.Int("concurrency"),
		MaxWait:     c.Duration("max-wait"),
		PollFloor:   c.Duration("poll-floor"),
		PollCeiling: c.Duration("poll-ceiling"),
		Log:         log,
	}
	tokens, err := tokenSource(c)
	if err != nil {
		return nil, err
	}
	cl.Tokens = tokens
	return cl, nil
}

// tokenSource builds the authentication the flags ask for.
func tokenSource(c *cli.Context) (extract.TokenSource, error) {
	auth := c.String("auth")
	if auth == "" {
		auth = "none"
		if c.String("token-url") != "" {
			auth = "client-secret"
		}
	}
	if auth == "none" {
		return nil, nil
	}
	if c.String("token-url") == "" || c.String("client-id") == "" {
		return nil, usagef("--auth %s needs --token-url and --client-id", auth)
	}
	scopes := strings.Fields(c.String("scope"))
	switch auth {
	case "client-secret":
		secret, err := clientSecret(c.String("client-secret-file"))
		if err != nil {
			return nil, err
		}
		return extract.NewClientSecretSource(extract.ClientSecretConfig{
			TokenURL:     c.String("token-url"),
			ClientID:     c.String("client-id"),
			ClientSecret: secret,
			Scopes:       scopes,
			Basic:        c.Bool("client-secret-basic"),
		}), nil
	case "private-key-jwt":
		if c.String("private-key") == "" {
			return nil, usagef("--auth private-key-jwt needs --private-key FILE")
		}
		key, kid, err := extract.LoadPrivateKey(c.String("private-key"))
		if err != nil {
			return nil, usagef("%v", err)
		}
		if k := c.String("key-id"); k != "" {
			kid = k
		}
		if kid == "" {
			return nil, usagef("--auth private-key-jwt needs --key-id (the kid registered with the payer)")
		}
		ts, err := extract.NewPrivateKeyJWTSource(extract.PrivateKeyJWTConfig{
			TokenURL: c.String("token-url"),
			ClientID: c.String("client-id"),
			Key:      key,
			KeyID:    kid,
			Alg:      c.String("jwt-alg"),
			Scopes:   scopes,
		})
		if err != nil {
			return nil, usagef("%v", err)
		}
		return ts, nil
	default:
		return nil, usagef("--auth %q: want none, client-secret or private-key-jwt", auth)
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

// clientSecret reads the secret from the named file, else from
// FHIRLAKE_CLIENT_SECRET. Error messages never include the secret.
func clientSecret(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usagef("read --client-secret-file: %v", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", usagef("--client-secret-file %s is empty", file)
		}
		return s, nil
	}
	if s := os.Getenv("FHIRLAKE_CLIENT_SECRET"); s != "" {
		return s, nil
	}
	return "", usagef("no client secret: pass --client-secret-file FILE or set FHIRLAKE_CLIENT_SECRET")
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
