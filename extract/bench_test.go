package extract_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// BenchmarkDownload exports the 200-member sandbox (about 30 files) with 1
// and 4 parallel downloads. Each file request waits fileLatency before the
// sandbox answers, standing in for the round trip and time-to-first-byte of
// a real payer; without it a loopback server hides what concurrency buys.
func BenchmarkDownload(b *testing.B) {
	const fileLatency = 25 * time.Millisecond
	sb, err := sandbox.New(sandbox.Config{Members: 200, MaxLinesPerFile: 250, PollsBeforeReady: -1})
	if err != nil {
		b.Fatal(err)
	}
	h := sb.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/$export/file/") {
			time.Sleep(fileLatency)
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			var bytes int64
			for range b.N {
				c := &extract.Client{
					BaseURL: sandbox.OneUpBase(srv.URL, sandbox.DefaultTenant),
					Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
						TokenURL: srv.URL + sandbox.TokenPath, ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret,
					}),
					Concurrency: conc,
					Sleep:       func(context.Context, time.Duration) error { return nil },
				}
				res, err := c.Export(b.Context(), extract.Request{}, b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				bytes = 0
				for _, f := range res.Files {
					bytes += f.Bytes
				}
			}
			b.SetBytes(bytes)
		})
	}
}
