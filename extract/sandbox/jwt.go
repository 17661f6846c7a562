package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTBearer is the client_assertion_type of SMART Backend Services.
const JWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLife is how far in the future a client assertion may expire.
const maxAssertionLife = 5 * time.Minute

// assertionAlgs are the signature algorithms SMART Backend Services allows.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// RegisterClient registers the public JWKS (a JSON Web Key Set) of a SMART
// Backend Services client, which then gets tokens with a client assertion
// (private_key_jwt) instead of a secret. Registering a client again
// replaces its keys.
func (s *Server) RegisterClient(clientID string, jwks []byte) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return fmt.Errorf("sandbox: register %s: jwks: %w", clientID, err)
	}
	if clientID == "" || len(set.Keys) == 0 {
		return fmt.Errorf("sandbox: register %q: need a client id and at least one key", clientID)
	}
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.IsPublic() {
			return fmt.Errorf("sandbox: register %s: every key needs a kid and must be public", clientID)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwks[clientID] = set
	return nil
}

// verifyAssertion checks the client assertion of a token request: signed
// RS384 or ES384 by the registered key its kid names; iss = sub = a
// registered client id; aud the token URL as requested (on the request
// host, AltHost or the localhost/127.0.0.1 twin); exp in the future by the
// sandbox clock and at most 5 minutes ahead; jti never seen before.
func (s *Server) verifyAssertion(r *http.Request) error {
	if r.PostForm.Get("client_assertion_type") != JWTBearer {
		return fmt.Errorf("client_assertion_type must be %s", JWTBearer)
	}
	tok, err := jwt.ParseSigned(r.PostForm.Get("client_assertion"), assertionAlgs)
	if err != nil {
		return errors.New("client_assertion is not a JWT signed with RS384 or ES384")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return errors.New("client_assertion claims unreadable")
	}
	clientID := unverified.Issuer
	if id := r.PostForm.Get("client_id"); id != "" && id != clientID {
		return errors.New("client_id does not match the assertion iss")
	}
	s.mu.Lock()
	set, ok := s.jwks[clientID]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("unknown client %q", clientID)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	if len(keys) == 0 {
		return fmt.Errorf("no registered key with kid %q", tok.Headers[0].KeyID)
	}
	var claims jwt.Claims
	verified := false
	for _, k := range keys {
		if tok.Claims(k.Key, &claims) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return errors.New("client_assertion signature does not verify")
	}
	now := s.clock.Now()
	switch {
	case claims.Issuer != clientID || claims.Subject != clientID:
		return errors.New("iss and sub must both be the client id")
	case !slices.ContainsFunc(claims.Audience, s.tokenAudience(r)):
		return errors.New("aud must be the token endpoint URL")
	case claims.Expiry == nil:
		return errors.New("exp is required")
	case !claims.Expiry.Time().After(now):
		return errors.New("client_assertion expired")
	case claims.Expiry.Time().After(now.Add(maxAssertionLife)):
		return errors.New("exp is more than 5 minutes ahead")
	case claims.ID == "":
		return errors.New("jti is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := clientID + "\x00" + claims.ID
	if s.jtis[key] {
		return errors.New("jti already used")
	}
	s.jtis[key] = true
	return nil
}

// tokenAudience reports whether aud names the token endpoint r reached.
func (s *Server) tokenAudience(r *http.Request) func(string) bool {
	hosts := []string{r.Host, s.otherHost(r.Host, r.Host)}
	if s.cfg.AltHost != "" {
		hosts = append(hosts, s.cfg.AltHost)
	}
	return func(aud string) bool {
		for _, h := range hosts {
			for _, scheme := range []string{"http://", "https://"} {
				if strings.TrimSuffix(aud, "/") == scheme+h+r.URL.Path {
					return true
				}
			}
		}
		return false
	}
}
