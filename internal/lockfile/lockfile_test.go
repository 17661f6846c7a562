package lockfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecondHolderIsTurnedAwayAndTold(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	l, err := Acquire(path, "fhirlake run")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path, "fhirlake run")
	var be *BusyError
	if !errors.As(err, &be) || !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: %v, want a BusyError", err)
	}
	if be.Holder == nil || be.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), "fhirlake run") {
		t.Errorf("busy error does not name the holder: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(path, "fhirlake load")
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	l2.Release()
	l2.Release() // idempotent
}
