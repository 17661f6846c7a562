package sandbox

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// token is an issued access token.
type token struct {
	expires time.Time // by the sandbox clock
	scope   string
}

// handleToken answers OAuth2 client-credentials token requests. Clients
// authenticate with a secret, as HTTP Basic (form-urlencoded, RFC 6749
// 2.3.1) or in the form body, or with a SMART Backend Services client
// assertion (private_key_jwt, see RegisterClient).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable form body")
		return
	}
	s.mu.Lock()
	f := s.faults
	s.mu.Unlock()
	switch {
	case f.TokenLoginPage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "<!doctype html><html><head><title>Sign in</title></head><body><form method=post><input name=username><input name=password type=password></form></body></html>")
		return
	case f.TokenInvalidScope:
		oauthError(w, http.StatusBadRequest, "invalid_scope", "the scope asked is not granted to this client")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	if r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type") {
		if err := s.verifyAssertion(r); err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
			return
		}
	} else {
		id, secret, basic := r.BasicAuth()
		if basic {
			// Clients form-encode the parts before Basic encoding; undo it.
			if v, err := url.QueryUnescape(id); err == nil {
				id = v
			}
			if v, err := url.QueryUnescape(secret); err == nil {
				secret = v
			}
		} else {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if !equal(id, s.cfg.ClientID) || !equal(secret, s.cfg.ClientSecret) {
			if basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
			}
			oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
			return
		}
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = "bulk-data|user/*.rs"
	}
	tok := randomID(32)
	s.mu.Lock()
	s.tokens[tok] = token{expires: s.clock.Now().Add(s.cfg.TokenTTL), scope: scope}
	var expiresIn any = int(s.cfg.TokenTTL / time.Second)
	if s.faults.ExpiresInString {
		expiresIn = strconv.Itoa(int(s.cfg.TokenTTL / time.Second))
	}
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, "application/json", http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   expiresIn,
		"scope":        scope,
	})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, "application/json", status, map[string]string{"error": code, "error_description": desc})
}

// bearer returns the bearer token of r, if any.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authorized returns the token r carries and whether it is valid now; if
// not it has answered 401.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) (token, bool) {
	tok, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox"`)
		writeOutcome(w, http.StatusUnauthorized, "error", "login", "missing bearer token")
		return token{}, false
	}
	s.mu.Lock()
	t, known := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !known:
		w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token"`)
		writeOutcome(w, http.StatusUnauthorized, "error", "login", "unknown access token")
		return token{}, false
	case !s.clock.Now().Before(t.expires):
		w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token", error_description="expired"`)
		writeOutcome(w, http.StatusUnauthorized, "error", "expired", "access token expired")
		return token{}, false
	}
	return t, true
}

func writeJSON(w http.ResponseWriter, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeOutcome answers with a one-issue OperationOutcome.
func writeOutcome(w http.ResponseWriter, status int, severity, code, text string) {
	writeJSON(w, "application/fhir+json", status, outcome(severity, code, text))
}

func outcome(severity, code, text string) obj {
	return o("resourceType", "OperationOutcome", "issue", []obj{o(
		"severity", severity,
		"code", code,
		"details", o("text", text),
		"diagnostics", text,
	)})
}
