package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestConcurrentWrites checks that writes from many goroutines all land,
// whole.
func TestConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	const writers, lines = 8, 500
	for range writers {
		wg.Go(func() {
			for range lines {
				b.Write([]byte("line\n"))
			}
		})
	}
	wg.Wait()
	got := b.String()
	if n := strings.Count(got, "line\n"); n != writers*lines || len(got) != writers*lines*len("line\n") {
		t.Errorf("%d whole lines in %d bytes, want %d", n, len(got), writers*lines)
	}
}
