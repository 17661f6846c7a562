package extract

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenEndpoint verifies SMART client assertions against a JWKS and answers
// expires_in as a string, as BCDA does.
type tokenEndpoint struct {
	t    *testing.T
	jwks jose.JSONWebKeySet
	url  string
	mu   sync.Mutex
	jtis map[string]bool
	hits int
}

func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hits++
	w.Header().Set("Content-Type", "application/json")
	r.ParseForm()
	fail := func(msg string) {
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, msg)
	}
	if r.Form.Get("client_assertion_type") != assertionType || r.Form.Get("grant_type") != "client_credentials" {
		fail("bad form")
		return
	}
	tok, err := jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES384, jose.RS384})
	if err != nil {
		fail("parse")
		return
	}
	keys := e.jwks.Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		fail("unknown kid")
		return
	}
	var c jwt.Claims
	if err := tok.Claims(keys[0].Key, &c); err != nil {
		fail("signature")
		return
	}
	if err := c.Validate(jwt.Expected{Issuer: "client-1", Subject: "client-1", AnyAudience: jwt.Audience{e.url}, Time: time.Now()}); err != nil {
		fail("claims: " + err.Error())
		return
	}
	if time.Until(c.Expiry.Time()) > 5*time.Minute || c.ID == "" || e.jtis[c.ID] {
		fail("exp or jti")
		return
	}
	e.jtis[c.ID] = true
	fmt.Fprintf(w, `{"access_token":"tok-%d","token_type":"bearer","expires_in":"3600"}`, e.hits)
}

func TestPrivateKeyJWTAgainstEndpoint(t *testing.T) {
	dir := t.TempDir()
	privPEM, jwks, kid, err := GenerateKey(ES384)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "key.pem")
	os.WriteFile(keyPath, privPEM, 0o600)
	ep := &tokenEndpoint{t: t, jtis: map[string]bool{}}
	if err := json.Unmarshal(jwks, &ep.jwks); err != nil {
		t.Fatal(err)
	}
	if ep.jwks.Keys[0].KeyID != kid || !ep.jwks.Keys[0].IsPublic() {
		t.Fatalf("JWKS %s does not hold the public key with kid %s", jwks, kid)
	}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	ep.url = srv.URL + "/token"

	key, _, err := LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewPrivateKeyJWTSource(PrivateKeyJWTConfig{TokenURL: ep.url, ClientID: "client-1", Key: key, KeyID: kid})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok1, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := src.Token(ctx) // cached: expires_in "3600" was understood
	if tok1 != "tok-1" || tok2 != "tok-1" {
		t.Errorf("tokens %q, %q; want tok-1 twice (cached)", tok1, tok2)
	}
	src.(Invalidator).Invalidate()
	tok3, err := src.Token(ctx) // a new assertion with a new jti is accepted
	if err != nil || tok3 != "tok-2" {
		t.Errorf("after invalidate: %q, %v; want tok-2", tok3, err)
	}

	// A key the server does not know is rejected with an actionable error.
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	bad, _ := NewPrivateKeyJWTSource(PrivateKeyJWTConfig{TokenURL: ep.url, ClientID: "client-1", Key: other, KeyID: "nope"})
	if _, err := bad.Token(ctx); err == nil || !errorsIs(err, ErrUnauthorized) {
		t.Errorf("unknown key: err = %v, want ErrUnauthorized", err)
	}
}

func TestJWTAlgMustFitKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name string
		key  any
		alg  string
		ok   bool
	}{
		{"P-384 auto", ec, "", true},
		{"P-384 ES384", ec, ES384, true},
		{"P-384 RS384", ec, RS384, false},
		{"P-256", ec256, "", false},
	}
	for _, tt := range tests {
		_, err := NewPrivateKeyJWTSource(PrivateKeyJWTConfig{TokenURL: "http://x/token", ClientID: "c", Key: tt.key.(*ecdsa.PrivateKey), Alg: tt.alg})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestLoadPrivateKeyFormats(t *testing.T) {
	dir := t.TempDir()
	privPEM, _, _, err := GenerateKey(RS384)
	if err != nil {
		t.Fatal(err)
	}
	pemPath := filepath.Join(dir, "k.pem")
	os.WriteFile(pemPath, privPEM, 0o600)
	key, _, err := LoadPrivateKey(pemPath)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: key, KeyID: "k1", Algorithm: RS384})
	jwkPath := filepath.Join(dir, "k.jwk")
	os.WriteFile(jwkPath, jwk, 0o600)
	if _, kid, err := LoadPrivateKey(jwkPath); err != nil || kid != "k1" {
		t.Errorf("JWK: kid %q, err %v", kid, err)
	}
	pub, _ := json.Marshal(jose.JSONWebKey{Key: key.Public(), KeyID: "k1"})
	pubPath := filepath.Join(dir, "pub.jwk")
	os.WriteFile(pubPath, pub, 0o600)
	if _, _, err := LoadPrivateKey(pubPath); err == nil {
		t.Error("a public JWK was accepted as a private key")
	}
	garbage := filepath.Join(dir, "g")
	os.WriteFile(garbage, []byte("secret-ish content"), 0o600)
	if _, _, err := LoadPrivateKey(garbage); err == nil || containsSecret(err.Error()) {
		t.Errorf("garbage key: err = %v (must fail without echoing content)", err)
	}
}

func containsSecret(s string) bool { return len(s) > 0 && (contains(s, "secret-ish")) }
