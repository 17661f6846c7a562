package extract

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// JWT signing algorithms accepted by SMART Backend Services.
const (
	RS384 = "RS384"
	ES384 = "ES384"
)

// assertionType is the OAuth2 client assertion type of SMART Backend
// Services (RFC 7523).
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid. SMART asks for
// no more than five minutes; a short life limits replay.
const assertionLifetime = 4 * time.Minute

// PrivateKeyJWTConfig configures SMART Backend Services authentication:
// OAuth2 client credentials with a signed JWT assertion (private_key_jwt).
type PrivateKeyJWTConfig struct {
	TokenURL string
	ClientID string
	// Key signs the assertions: *rsa.PrivateKey for RS384, *ecdsa.PrivateKey
	// (P-384) for ES384.
	Key crypto.Signer
	// KeyID is the kid header; it must match the key registered with the
	// server (the JWKS written by "fhirlake keys generate" carries it).
	KeyID string
	// Alg is RS384 or ES384; empty picks the one that fits Key.
	Alg    string
	Scopes []string
	HTTP   *http.Client
	// Now is the clock for iat/exp; nil means time.Now.
	Now func() time.Time
}

// NewPrivateKeyJWTSource returns a caching TokenSource that authenticates
// with a freshly signed client assertion (unique jti, aud = token URL,
// short exp) for every token request.
func NewPrivateKeyJWTSource(cfg PrivateKeyJWTConfig) (TokenSource, error) {
	alg, err := jwtAlg(cfg.Key, cfg.Alg)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" || cfg.TokenURL == "" {
		return nil, errors.New("private_key_jwt needs a client id and a token URL")
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: cfg.Key, KeyID: cfg.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("private_key_jwt signer: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	fetch := func(ctx context.Context) (*oauth2.Token, error) {
		assertion, err := signAssertion(signer, cfg.ClientID, cfg.TokenURL, now())
		if err != nil {
			return nil, err
		}
		cc := &clientcredentials.Config{
			ClientID:  cfg.ClientID,
			TokenURL:  cfg.TokenURL,
			Scopes:    cfg.Scopes,
			AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{
				"client_assertion_type": {assertionType},
				"client_assertion":      {assertion},
			},
		}
		return fetchToken(ctx, cc, cfg.HTTP, "client id, key id and the registered public key")
	}
	return &cachingSource{fetch: fetch, now: time.Now}, nil
}

// signAssertion builds and signs one client assertion.
func signAssertion(signer jose.Signer, clientID, tokenURL string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("client assertion jti: %w", err)
	}
	claims := jwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: jwt.Audience{tokenURL},
		ID:       hex.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(assertionLifetime)),
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// jwtAlg checks that the key fits the requested algorithm, or picks one.
func jwtAlg(key crypto.Signer, want string) (jose.SignatureAlgorithm, error) {
	var fits string
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too short: use at least 2048", k.N.BitLen())
		}
		fits = RS384
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P384() {
			return "", fmt.Errorf("ES384 needs a P-384 key, got %s", k.Curve.Params().Name)
		}
		fits = ES384
	case nil:
		return "", errors.New("no private key")
	default:
		return "", fmt.Errorf("unsupported private key type %T: use RSA (RS384) or P-384 EC (ES384)", key)
	}
	if want != "" && want != fits {
		return "", fmt.Errorf("--jwt-alg %s does not fit the key (it needs %s)", want, fits)
	}
	return jose.SignatureAlgorithm(fits), nil
}

// LoadPrivateKey reads a private key from a PEM file (PKCS #8, PKCS #1 or
// SEC 1) or a JWK JSON file. When the file is a JWK with a kid, the kid is
// returned too. Errors name the file, never its content.
func LoadPrivateKey(path string) (crypto.Signer, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read private key: %w", err)
	}
	return ParsePrivateKey(data, path)
}

// ParsePrivateKey is LoadPrivateKey on data already read; name (a path or
// a reference such as env:NAME) is used in errors.
func ParsePrivateKey(data []byte, name string) (crypto.Signer, string, error) {
	if trimmed := strings.TrimSpace(string(data)); strings.HasPrefix(trimmed, "{") {
		var jwk jose.JSONWebKey
		if err := json.Unmarshal([]byte(trimmed), &jwk); err != nil {
			return nil, "", fmt.Errorf("private key %s: not a valid JWK", name)
		}
		signer, ok := jwk.Key.(crypto.Signer)
		if !ok || jwk.IsPublic() {
			return nil, "", fmt.Errorf("private key %s: the JWK holds no private key", name)
		}
		return signer, jwk.KeyID, nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "", fmt.Errorf("private key %s: neither PEM nor JWK", name)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("private key %s: unsupported PEM block %q", name, block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("private key %s: %w", name, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, "", fmt.Errorf("private key %s: unsupported key type %T", name, key)
	}
	return signer, "", nil
}

// GenerateKey makes a new signing key for alg (RS384: RSA 3072; ES384:
// P-384) and returns the private key as PKCS #8 PEM, the public JWKS to
// register with a payer, and the key id (the RFC 7638 thumbprint).
func GenerateKey(alg string) (privPEM, jwks []byte, kid string, err error) {
	var key crypto.Signer
	switch alg {
	case RS384:
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	case ES384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		return nil, nil, "", fmt.Errorf("unsupported --alg %q: use RS384 or ES384", alg)
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("encode private key: %w", err)
	}
	pub := jose.JSONWebKey{Key: key.Public(), Algorithm: alg, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, nil, "", fmt.Errorf("key thumbprint: %w", err)
	}
	pub.KeyID = hex.EncodeToString(thumb)
	set, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}, "", "  ")
	if err != nil {
		return nil, nil, "", fmt.Errorf("encode JWKS: %w", err)
	}
	privPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return privPEM, append(set, '\n'), pub.KeyID, nil
}
