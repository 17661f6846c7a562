package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TokenSource supplies bearer tokens for FHIR requests. Unlike
// oauth2.TokenSource it takes a context on every call, so a token fetch is
// cancelled with the run that needs it.
type TokenSource interface {
	// Token returns a token that is valid now. Implementations may cache.
	Token(ctx context.Context) (string, error)
}

// Invalidator is implemented by token sources that cache: after a 401 the
// client calls Invalidate so that the next Token call fetches a fresh one.
type Invalidator interface {
	Invalidate()
}

// ClientSecretConfig configures OAuth2 client credentials with a shared
// secret.
type ClientSecretConfig struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// Basic sends the credentials with HTTP Basic instead of the form body.
	Basic bool
	// HTTP is the client used to reach the token endpoint; nil means
	// http.DefaultClient.
	HTTP *http.Client
}

// NewClientSecretSource returns a caching TokenSource for the OAuth2 client
// credentials grant with a client secret. Tokens are reused until shortly
// before they expire.
func NewClientSecretSource(cfg ClientSecretConfig) TokenSource {
	style := oauth2.AuthStyleInParams
	if cfg.Basic {
		style = oauth2.AuthStyleInHeader
	}
	cc := &clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		TokenURL:     cfg.TokenURL,
		Scopes:       cfg.Scopes,
		AuthStyle:    style,
	}
	fetch := func(ctx context.Context) (*oauth2.Token, error) {
		return fetchToken(ctx, cc, cfg.HTTP, "client id and secret")
	}
	return &cachingSource{fetch: fetch, now: time.Now}
}

// fetchToken runs the client credentials grant of cc through hc (nil:
// http.DefaultClient) and explains a failure (tokenError), looking at
// the token endpoint's answer itself where oauth2 does not say what came
// back.
func fetchToken(ctx context.Context, cc *clientcredentials.Config, hc *http.Client, check string) (*oauth2.Token, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	rec := &answerRecorder{base: hc.Transport}
	if rec.base == nil {
		rec.base = http.DefaultTransport
	}
	client := *hc
	client.Transport = rec
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, &client))
	if err != nil {
		return nil, tokenError(cc.ClientID, check, err, rec.last)
	}
	return tok, nil
}

// answer is what the token endpoint answered, without the body.
type answer struct {
	status      int
	contentType string
	length      int64 // -1 when the server did not say
}

// answerRecorder remembers the last answer of the token endpoint. One
// fetch runs at a time per source (cachingSource holds its lock).
type answerRecorder struct {
	base http.RoundTripper
	last *answer
}

func (r *answerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.base.RoundTrip(req)
	if err == nil {
		r.last = &answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), length: resp.ContentLength}
	}
	return resp, err
}

// tokenError turns an oauth2 failure into an error a person can act on. It
// names the client id (not a secret) and never includes the response body.
// last is the endpoint's answer, nil when none came. Answers that will be
// the same on every try are configuration errors (ErrUnauthorized, exit
// 3), never transient: a token URL that names no token endpoint (404,
// 405, or a 200 whose body is not a token, such as a login page), a scope
// the server does not grant, rejected credentials.
func tokenError(clientID, check string, err error, last *answer) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		status := re.Response.StatusCode
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(status)
		}
		if status >= 200 && status < 300 {
			return notAToken(clientID, &answer{status: status, contentType: re.Response.Header.Get("Content-Type"), length: int64(len(re.Body))})
		}
		kind := classify(status)
		switch {
		case status == 400 && (code == "invalid_client" || code == "unauthorized_client" || code == "invalid_grant"):
			kind = ErrUnauthorized
		case code == "invalid_scope":
			return fmt.Errorf("token endpoint refused the scopes asked for client %q (%d %s): check the scopes (--scope, scope in the config) against what the server grants this client: %w", clientID, status, code, ErrUnauthorized)
		case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			return fmt.Errorf("token endpoint answered %d %s for client %q: check the token URL (--token-url, token_url in the config): %w", status, code, clientID, ErrUnauthorized)
		}
		if kind == ErrUnauthorized {
			return fmt.Errorf("token endpoint rejected client %q (%d %s): check %s: %w", clientID, status, code, check, kind)
		}
		if kind == nil {
			kind = ErrProtocol
		}
		return fmt.Errorf("token endpoint answered %d %s for client %q: %w", status, code, clientID, kind)
	}
	if last != nil && last.status >= 200 && last.status < 300 {
		return notAToken(clientID, last)
	}
	// Network errors and the like: safe to retry. The oauth2 error text
	// holds the URL and a transport message, never the secret.
	return fmt.Errorf("fetch token for client %q: %w: %w", clientID, ErrTransient, err)
}

// notAToken explains a successful answer that holds no token: what came
// back (its type and size), never the body.
func notAToken(clientID string, a *answer) error {
	ct := a.contentType
	if ct == "" {
		ct = "no Content-Type"
	}
	size := "of unknown length"
	if a.length >= 0 {
		size = fmt.Sprintf("of %d bytes", a.length)
	}
	return fmt.Errorf("token endpoint answered %d with a body %s (%s) that holds no OAuth2 access token for client %q: the token URL (--token-url, token_url in the config) names something else, such as a login page: %w",
		a.status, size, clean(ct, 80), clientID, ErrUnauthorized)
}

// refreshMargin is how long before its expiry a cached token that lived
// for lifetime is replaced, so that a request never leaves with a token
// about to die in flight: a tenth of its life, at least 10 seconds (a
// 60-second token is used for 50 seconds, a one-hour token for 54
// minutes).
func refreshMargin(lifetime time.Duration) time.Duration {
	return max(10*time.Second, lifetime/10)
}

// cachingSource caches one token and refetches it shortly before expiry or
// after Invalidate.
type cachingSource struct {
	fetch func(context.Context) (*oauth2.Token, error)
	now   func() time.Time

	mu      sync.Mutex // guards tok and fetched; held during a fetch so concurrent callers share one
	tok     *oauth2.Token
	fetched time.Time // when tok was fetched
}

var (
	_ TokenSource = (*cachingSource)(nil)
	_ Invalidator = (*cachingSource)(nil)
)

func (s *cachingSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && (s.tok.Expiry.IsZero() || s.now().Add(refreshMargin(s.tok.Expiry.Sub(s.fetched))).Before(s.tok.Expiry)) {
		return s.tok.AccessToken, nil
	}
	fetched := s.now()
	tok, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint returned no access_token: %w", ErrProtocol)
	}
	s.tok, s.fetched = tok, fetched
	return tok.AccessToken, nil
}

func (s *cachingSource) Invalidate() {
	s.mu.Lock()
	s.tok = nil
	s.mu.Unlock()
}

// StaticToken is a TokenSource that always returns the same token; for
// servers that hand out long-lived tokens and for tests.
type StaticToken string

// Token returns the token.
func (t StaticToken) Token(context.Context) (string, error) { return string(t), nil }
