package pipeline

import (
	"runtime/debug"
	"testing"
)

// TestThriftyGC: publishes lower Go's GC target to publishGC while any of
// them runs, and the last to end puts back the process's own; a target
// lower than publishGC, or GC off, is left as it is.
func TestThriftyGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	current := func() int { v := debug.SetGCPercent(-1); debug.SetGCPercent(v); return v }
	for _, c := range []struct{ process, during int }{{400, publishGC}, {50, 50}, {-1, -1}, {publishGC, publishGC}} {
		debug.SetGCPercent(c.process)
		a := thriftyGC()
		b := thriftyGC() // another source publishing at once
		if got := current(); got != c.during {
			t.Errorf("GOGC %d: %d while publishing, want %d", c.process, got, c.during)
		}
		a()
		if got := current(); got != c.during {
			t.Errorf("GOGC %d: %d while the second publish runs, want %d", c.process, got, c.during)
		}
		b()
		if got := current(); got != c.process {
			t.Errorf("GOGC %d: %d after the publishes, want it back", c.process, got)
		}
	}
}
