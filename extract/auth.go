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
		if cfg.HTTP != nil {
			ctx = context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTP)
		}
		tok, err := cc.Token(ctx)
		if err != nil {
			return nil, tokenError(cfg.ClientID, "client id and secret", err)
		}
		return tok, nil
	}
	return &cachingSource{fetch: fetch, now: time.Now}
}

// tokenError turns an oauth2 failure into an error a person can act on. It
// names the client id (not a secret) and never includes the response body.
func tokenError(clientID, check string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		status := re.Response.StatusCode
		code := re.ErrorCode
		if code == "" {
			code = http.StatusText(status)
		}
		kind := classify(status)
		if status == 400 && (code == "invalid_client" || code == "unauthorized_client" || code == "invalid_grant") {
			kind = ErrUnauthorized
		}
		if kind == ErrUnauthorized {
			return fmt.Errorf("token endpoint rejected client %q (%d %s): check %s: %w", clientID, status, code, check, kind)
		}
		if kind == nil {
			kind = ErrProtocol
		}
		return fmt.Errorf("token endpoint answered %d %s for client %q: %w", status, code, clientID, kind)
	}
	// Network errors and the like: safe to retry. The oauth2 error text
	// holds the URL and a transport message, never the secret.
	return fmt.Errorf("fetch token for client %q: %w: %w", clientID, ErrTransient, err)
}

// refreshMargin is how long before its expiry a cached token is replaced,
// so that a request never leaves with a token about to die in flight.
const refreshMargin = 60 * time.Second

// cachingSource caches one token and refetches it shortly before expiry or
// after Invalidate.
type cachingSource struct {
	fetch func(context.Context) (*oauth2.Token, error)
	now   func() time.Time

	mu  sync.Mutex // guards tok; held during a fetch so concurrent callers share one
	tok *oauth2.Token
}

var (
	_ TokenSource = (*cachingSource)(nil)
	_ Invalidator = (*cachingSource)(nil)
)

func (s *cachingSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && (s.tok.Expiry.IsZero() || s.now().Add(refreshMargin).Before(s.tok.Expiry)) {
		return s.tok.AccessToken, nil
	}
	tok, err := s.fetch(ctx)
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint returned no access_token: %w", ErrProtocol)
	}
	s.tok = tok
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
