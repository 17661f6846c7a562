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

func TestHoldingNamesTheHolderWithoutTakingTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.duckdb")
	if h := Holding(path); h != nil {
		t.Errorf("no lock file: holder %v", h)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("Holding created the lock file: %v", err)
	}
	l, err := Acquire(path, "fhirlake run --source a")
	if err != nil {
		t.Fatal(err)
	}
	h := Holding(path)
	if h == nil || h.PID != os.Getpid() || h.Command != "fhirlake run --source a" {
		t.Errorf("held: holder %v", h)
	}
	// The probe left the lock with its holder.
	if _, err := Acquire(path, "fhirlake load"); !errors.Is(err, ErrBusy) {
		t.Errorf("after Holding, a second Acquire: %v, want ErrBusy", err)
	}
	l.Release()
	if h := Holding(path); h != nil {
		t.Errorf("released: holder %v", h)
	}
}
