package extract

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestTokenEndpointAnswers: what each answer of a token endpoint becomes.
// Answers that will be the same on every try are configuration errors
// (ErrUnauthorized, exit 3) that say what to check, never transient, and
// no error holds the response body or the secret.
func TestTokenEndpointAnswers(t *testing.T) {
	const secret = "s3cret-value"
	const body = "<html><body>Sign in to the portal: patient Jane Doe</body></html>"
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		kind    error
		want    []string
	}{
		{"html login page with 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}, ErrUnauthorized, []string{"answered 200", "text/html", fmt.Sprintf("%d bytes", len(body)), "--token-url"}},
		{"json without a token", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"hello":"world"}`)
		}, ErrUnauthorized, []string{"answered 200", "application/json", "--token-url"}},
		{"invalid_scope", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_scope","error_description":"system/*.read not allowed"}`)
		}, ErrUnauthorized, []string{"invalid_scope", "--scope"}},
		{"wrong token URL", func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		}, ErrUnauthorized, []string{"404", "--token-url"}},
		{"method not allowed", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}, ErrUnauthorized, []string{"405", "--token-url"}},
		{"bad secret", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
		}, ErrUnauthorized, []string{"rejected client", "client id and secret"}},
		{"server error", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
		}, ErrTransient, []string{"503"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			src := NewClientSecretSource(ClientSecretConfig{TokenURL: srv.URL + "/token", ClientID: "fhirlake", ClientSecret: secret})
			_, err := src.Token(t.Context())
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
			if tc.kind != ErrTransient && errors.Is(err, ErrTransient) {
				t.Errorf("%v is transient", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Jane") || strings.Contains(err.Error(), secret) {
				t.Errorf("the error holds the body or the secret: %v", err)
			}
		})
	}
	// No answer at all: worth retrying.
	src := NewClientSecretSource(ClientSecretConfig{TokenURL: "http://127.0.0.1:1/token", ClientID: "fhirlake", ClientSecret: secret})
	if _, err := src.Token(t.Context()); !errors.Is(err, ErrTransient) {
		t.Errorf("connection refused: %v, want transient", err)
	}
}

// TestShortLivedTokensAreReused: a token is used until a tenth of its
// lifetime (at least 10 seconds) is left, so a 60-second token is fetched
// once per 50 seconds, not once per request.
func TestShortLivedTokensAreReused(t *testing.T) {
	for _, tc := range []struct {
		lifetime      time.Duration
		reusedUntil   time.Duration // still the same token at this age
		refetchedFrom time.Duration // a new one from this age
	}{
		{60 * time.Second, 49 * time.Second, 51 * time.Second},
		{30 * time.Second, 19 * time.Second, 21 * time.Second},
		{time.Hour, 53 * time.Minute, 55 * time.Minute},
	} {
		t.Run(tc.lifetime.String(), func(t *testing.T) {
			var fetches atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := fetches.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":%d}`, n, int(tc.lifetime.Seconds()))
			}))
			defer srv.Close()
			now := time.Now()
			src := NewClientSecretSource(ClientSecretConfig{TokenURL: srv.URL, ClientID: "c", ClientSecret: "s"}).(*cachingSource)
			src.now = func() time.Time { return now }
			get := func() string {
				tok, err := src.Token(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			// oauth2 dates the expiry by the real clock: keep ours near it.
			first := get()
			now = now.Add(tc.reusedUntil)
			if got := get(); got != first {
				t.Errorf("at %s: a new token %s", tc.reusedUntil, got)
			}
			now = now.Add(tc.refetchedFrom - tc.reusedUntil)
			if got := get(); got == first {
				t.Errorf("at %s: still the first token", tc.refetchedFrom)
			}
			if fetches.Load() != 2 {
				t.Errorf("%d fetches, want 2", fetches.Load())
			}
		})
	}
}
