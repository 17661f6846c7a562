// Package testserver starts real servers for tests, each on loopback and
// stopped at the test's cleanup: an S3-compatible object store (versitygw
// with its posix backend, see S3) and a throw-away PostgreSQL cluster (see
// Postgres), as the Iceberg lake tests need them.
//
// It is for tests only. When a server's binaries are missing, the test is
// skipped with a message saying how to get them (`make test` does).
// Importing the package registers pgx's database/sql driver "pgx".
package testserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// startAttempts bounds the retries when a server exits before it is
	// ready, as it does when another process took its port in between
	// freePort and the server's own bind.
	startAttempts = 3
	// pollEvery is how often a starting server is asked whether it is ready.
	pollEvery = 20 * time.Millisecond
	// logTailBytes is how much of a server's log a failure message quotes.
	logTailBytes = 4 << 10
)

// errExited is returned by waitReady when the server exited before it was
// ready.
var errExited = errors.New("exited before it was ready")

// server is a process started by this package, with its standard output
// and standard error in a log file. It runs in its own process group.
type server struct {
	name    string // for messages: "versitygw", "postgres"
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once cmd.Wait returned
	waitErr error         // cmd.Wait's result; read only after done is closed
}

// startServer starts cmd with its output appended to logPath and reaps it
// in the background.
func startServer(name string, cmd *exec.Cmd, logPath string) (*server, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// An *os.File is handed to the child as is: no copying goroutine, so
	// Wait returns as soon as the process is gone and f can close now.
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	return s, nil
}

// pid returns the server's process id, which is also its process group id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// waitReady calls ready every pollEvery until it returns nil, the process
// exits (errExited) or timeout passes.
func (s *server) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("%s %w: %w", s.name, errExited, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", s.name, timeout, err)
		case <-tick.C:
		}
	}
}

// stop sends sig, waits up to grace for the process to exit and kills it
// after that; then it kills whatever is left in its process group (a
// server's own children), so that nothing outlives the test.
func (s *server) stop(sig os.Signal, grace time.Duration) {
	select {
	case <-s.done:
	default:
		if err := s.cmd.Process.Signal(sig); err != nil {
			_ = s.cmd.Process.Kill()
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-s.done:
		case <-timer.C:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	killGroup(s.pid())
}

// logTail returns the end of the log file at path, for failure messages.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > logTailBytes {
		if _, err := f.Seek(-logTailBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log unreadable: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return tailLines(string(b))
}

// tailLines drops a partial first line from a tail of a log and reports an
// empty log as such.
func tailLines(s string) string {
	if len(s) >= logTailBytes {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	if s = strings.TrimRight(s, "\n"); s == "" {
		return "(log empty)"
	}
	return s
}

// failure formats a start-up error with the tail of the server's log.
func failure(err error, logPath string) string {
	return fmt.Sprintf("%v\n--- end of %s ---\n%s", err, logPath, logTail(logPath))
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// caller's server binds it later, so another process may take it in
// between: startAttempts covers that.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// minimalEnv returns the environment for a server: PATH and the given
// variables, and nothing else of the test's environment, so that a
// developer's VGW_*, ROOT_*, PG* or LANG settings cannot change the server.
func minimalEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH")}
	return append(env, extra...)
}

// repoRoot returns the nearest directory at or above dir that holds a go.mod.
func repoRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
