// Package lockfile gives one process at a time exclusive use of a path (a
// warehouse), with an advisory flock on PATH.lock that the kernel releases
// when the holder dies, however it dies. The file records who holds it so
// that the process turned away can say who is in the way.
package lockfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/fhirlake/fhirlake/internal/private"
)

// ErrBusy means another process holds the lock.
var ErrBusy = errors.New("locked by another process")

// Holder describes the process holding a lock.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

func (h Holder) String() string {
	return fmt.Sprintf("pid %d on %s (%s) since %s", h.PID, h.Host, h.Command, h.Since.UTC().Format(time.RFC3339))
}

// BusyError is returned when the lock is held; it names the holder.
type BusyError struct {
	Path   string
	Holder *Holder // nil when the lock file could not be read
}

func (e *BusyError) Error() string {
	who := "another process"
	if e.Holder != nil {
		who = e.Holder.String()
	}
	return fmt.Sprintf("%s is in use by %s: only one fhirlake run may write to a warehouse at a time", e.Path, who)
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire takes the lock for path without waiting: it fails at once with a
// *BusyError when another process (or another Lock in this one) holds it.
// command describes the holder for others, e.g. "fhirlake run".
func Acquire(path, command string) (*Lock, error) {
	name := path + ".lock"
	// It names the holder (pid, host, command), beside the warehouse:
	// private like the warehouse (see internal/private).
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := private.Tighten(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &BusyError{Path: path, Holder: readHolder(name)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	b, _ := json.Marshal(Holder{PID: os.Getpid(), Host: host, Command: command, Since: time.Now()})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(append(b, '\n'), 0)
		f.Sync()
	}
	return &Lock{f: f}, nil
}

func readHolder(name string) *Holder {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	var h Holder
	if json.Unmarshal(b, &h) != nil || h.PID == 0 {
		return nil
	}
	return &h
}

// Release gives the lock up. The lock file stays (removing it would race
// with a process that has just opened it); its content is cleared.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// Holding returns who holds the lock of path, or nil when nobody does (or
// the lock file names nobody). It only looks: the probe is a shared lock
// taken and given back at once, on a lock file it never creates.
func Holding(path string) *Holder {
	name := path + ".lock"
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return nil
	}
	return readHolder(name)
}
