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
	return []cli.Flag{
		&cli.StringFlag{Name: "fhir-url", Usage: "FHIR base URL of the payer API", EnvVars: []string{"FHIRLAKE_FHIR_URL"}, Required: true},
		&cli.StringFlag{Name: "group", Usage: "export Group/`ID`/$export instead of the system-level $export", EnvVars: []string{"FHIRLAKE_GROUP"}},
		&cli.StringFlag{Name: "types", Usage: "comma-separated resource types (_type); default: all the server offers", EnvVars: []string{"FHIRLAKE_TYPES"}},
		&cli.StringFlag{Name: "since", Usage: "only resources updated at or after this RFC 3339 instant (_since)", EnvVars: []string{"FHIRLAKE_SINCE"}},
		&cli.StringFlag{Name: "token-url", Usage: "OAuth2 token endpoint; without it no token is sent", EnvVars: []string{"FHIRLAKE_TOKEN_URL"}},
		&cli.StringFlag{Name: "client-id", Usage: "OAuth2 client id", EnvVars: []string{"FHIRLAKE_CLIENT_ID"}},
		&cli.StringFlag{Name: "client-secret-file", Usage: "file holding the client secret (or set FHIRLAKE_CLIENT_SECRET)", EnvVars: []string{"FHIRLAKE_CLIENT_SECRET_FILE"}},
		&cli.StringFlag{Name: "scope", Usage: "OAuth2 scopes, space-separated (1upHealth: bulk-data|user/*.rs)", EnvVars: []string{"FHIRLAKE_SCOPE"}},
		&cli.IntFlag{Name: "concurrency", Value: 4, Usage: "parallel file downloads", EnvVars: []string{"FHIRLAKE_CONCURRENCY"}},
		&cli.DurationFlag{Name: "max-wait", Value: 24 * time.Hour, Usage: "give up waiting for the export after this long", EnvVars: []string{"FHIRLAKE_MAX_WAIT"}},
		&cli.DurationFlag{Name: "poll-ceiling", Value: 5 * time.Minute, Usage: "longest wait between status polls, whatever Retry-After says", EnvVars: []string{"FHIRLAKE_POLL_CEILING"}},
	}
}

// sourceOptions is a parsed source.
type sourceOptions struct {
	client  *extract.Client
	request extract.Request
}

// parseSource turns the source flags into a configured client and request.
func parseSource(c *cli.Context, log *slog.Logger) (sourceOptions, error) {
	var req extract.Request
	req.Group = c.String("group")
	for _, t := range strings.Split(c.String("types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			req.Types = append(req.Types, t)
		}
	}
	if s := c.String("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return sourceOptions{}, usagef("--since %q is not an RFC 3339 instant (e.g. 2026-01-02T00:00:00Z)", s)
		}
		req.Since = t
	}
	if c.Int("concurrency") < 1 {
		return sourceOptions{}, usagef("--concurrency must be at least 1")
	}
	cl := &extract.Client{
		BaseURL:     c.String("fhir-url"),
		Concurrency: c.Int("concurrency"),
		MaxWait:     c.Duration("max-wait"),
		PollCeiling: c.Duration("poll-ceiling"),
		Log:         log,
	}
	if tokenURL := c.String("token-url"); tokenURL != "" {
		if c.String("client-id") == "" {
			return sourceOptions{}, usagef("--token-url needs --client-id")
		}
		secret, err := clientSecret(c.String("client-secret-file"))
		if err != nil {
			return sourceOptions{}, err
		}
		cl.Tokens = extract.NewClientSecretSource(extract.ClientSecretConfig{
			TokenURL:     tokenURL,
			ClientID:     c.String("client-id"),
			ClientSecret: secret,
			Scopes:       strings.Fields(c.String("scope")),
		})
	}
	return sourceOptions{client: cl, request: req}, nil
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
	if r.Group != "" {
		s = "group " + r.Group
	}
	if len(r.Types) > 0 {
		s += fmt.Sprintf(", types %s", strings.Join(r.Types, ","))
	}
	if !r.Since.IsZero() {
		s += ", since " + r.Since.Format(time.RFC3339)
	}
	return s
}
