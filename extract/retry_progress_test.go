package extract

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// retryRecorder is a Progress that keeps what Retrying heard.
type retryRecorder struct {
	NopProgress
	mu    sync.Mutex
	heard []string
}

func (r *retryRecorder) Retrying(op, reason string, wait time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Waits carry jitter: whole seconds, rounded down.
	r.heard = append(r.heard, fmt.Sprintf("%s | %s | %s", op, reason, wait.Truncate(time.Second)))
}

// TestRetriesReachTheProgress: a kick-off turned away with 429 and a
// status poll that fails with 503 are shown to a Progress that listens,
// with the server's Retry-After as the wait.
func TestRetriesReachTheProgress(t *testing.T) {
	var kickoffs, polls int
	mux := http.NewServeMux()
	var base string
	mux.HandleFunc("/$export", func(w http.ResponseWriter, r *http.Request) {
		kickoffs++
		if kickoffs == 1 {
			w.Header().Set("Retry-After", "20")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Location", base+"/status")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		polls++
		if polls == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"transactionTime":"2026-01-05T00:00:00Z","output":[],"error":[]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base = srv.URL

	rec := &retryRecorder{}
	c := &Client{BaseURL: srv.URL, PollCeiling: time.Minute, Sleep: func(context.Context, time.Duration) error { return nil }}
	if _, err := c.Export(WithProgress(t.Context(), rec), Request{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rec.heard, "\n")
	if len(rec.heard) != 2 || !strings.HasPrefix(rec.heard[0], "kick-off | server busy (429) | 2") ||
		!strings.HasPrefix(rec.heard[1], "export status | server error (503) | 3s") {
		t.Errorf("progress heard:\n%s\nwant the 429 kick-off (20 s and jitter), then the 503 poll (3 s)", got)
	}
	// A Progress that does not listen is left alone.
	kickoffs, polls = 0, 0
	if _, err := c.Export(WithProgress(t.Context(), NopProgress{}), Request{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}
