package testserver

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

const (
	// pgUser is the cluster's superuser; authentication is trust.
	pgUser = "postgres"
	// pgDatabase is the database Postgres creates for the test.
	pgDatabase = "fhirlake"
	// pgStartTimeout bounds the wait for the server to accept connections.
	pgStartTimeout = 60 * time.Second
	// pgStopGrace bounds the wait for an immediate shutdown before the
	// server is killed.
	pgStopGrace = 10 * time.Second
)

// pgInstallDirs is where Debian's postgresql package puts the server
// binaries, which it does not put on PATH.
const pgInstallDirs = "/usr/lib/postgresql/*/bin/initdb"

// PostgresServer is a running throw-away PostgreSQL cluster with one
// database, reachable over TCP on 127.0.0.1 without a password.
type PostgresServer struct {
	// DSN is the database's URL for github.com/jackc/pgx/v5/stdlib (driver
	// name "pgx"): postgres://postgres@127.0.0.1:PORT/fhirlake?sslmode=disable.
	DSN string
	// Addr is the server's address, 127.0.0.1:PORT.
	Addr string
	// User is the superuser: postgres.
	User string
	// Database is the database made for the test: fhirlake.
	Database string
	// DataDir is the cluster's data directory.
	DataDir string

	pid int // the postmaster's process id, to check that cleanup ended it
}

// account is the user a server runs as when it must not run as the test's.
type account struct {
	name     string
	uid, gid uint32
}

// Postgres initialises a new cluster (trust authentication, UTF8, locale C),
// starts it on a free port of 127.0.0.1 with durability traded for speed
// (fsync off: the cluster lives as long as the test), creates the database
// fhirlake, and stops the server (immediate shutdown) and removes its files
// at t's cleanup. The server's log is quoted in failure messages.
//
// initdb refuses to run as root, so when the test runs as root the cluster
// runs as the user postgres, in a folder of its own. Postgres skips t when
// the server binaries (initdb, postgres) are neither on PATH nor in
// /usr/lib/postgresql/*/bin (`make test` installs Debian's postgresql
// package), or when it runs as root and there is no user postgres.
func Postgres(t testing.TB) PostgresServer {
	t.Helper()
	binDir := postgresBinDir()
	if binDir == "" {
		t.Skip("testserver: PostgreSQL server binaries (initdb, postgres) not found on PATH or in " +
			filepath.Dir(pgInstallDirs) + ": `make test` installs them, or run `apt-get install postgresql`")
	}
	as, err := serverAccount()
	if err != nil {
		t.Skipf("testserver: %v", err)
	}
	base := postgresBase(t, as)

	p := PostgresServer{User: pgUser, Database: pgDatabase, DataDir: filepath.Join(base, "data")}
	if out, err := p.initdb(t.Context(), binDir, base, as); err != nil {
		t.Fatalf("testserver: initdb: %v\n%s", err, tailLines(lastBytes(out)))
	}
	logPath := filepath.Join(base, "postgres.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		p.Addr = "127.0.0.1:" + strconv.Itoa(port)
		p.DSN = "postgres://" + pgUser + "@" + p.Addr + "/" + pgDatabase + "?sslmode=disable"
		srv, err := p.start(binDir, base, port, as, logPath)
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		err = p.ready(t.Context(), srv)
		if err == nil {
			p.pid = srv.pid()
			t.Cleanup(func() { srv.stop(syscall.SIGQUIT, pgStopGrace) })
			return p
		}
		srv.stop(syscall.SIGQUIT, pgStopGrace)
		if !errors.Is(err, errExited) || attempt == startAttempts {
			t.Fatalf("testserver: start postgres (attempt %d): %s", attempt, failure(err, logPath))
		}
	}
}

// serverAccount returns the user to run the cluster as: nil (the test's own
// user) unless the test runs as root, then the user postgres.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(pgUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, which initdb refuses, and no user %s to run it as (apt-get install postgresql makes one): %w", pgUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", pgUser, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", pgUser, u.Gid, err)
	}
	return &account{name: u.Username, uid: uint32(uid), gid: uint32(gid)}, nil
}

// postgresBase returns the folder for the cluster's data, log and working
// directory, removed at t's cleanup (after the server stopped). For another
// user it is a new folder in the system's temporary directory, given to
// that user: t.TempDir() sits below a folder only the test's user may enter.
func postgresBase(t testing.TB, as *account) string {
	t.Helper()
	if as == nil {
		return t.TempDir()
	}
	base, err := os.MkdirTemp("", "fhirlake-pg-")
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("testserver: remove %s: %v", base, err)
		}
	})
	if err := os.Chown(base, int(as.uid), int(as.gid)); err != nil {
		t.Fatalf("testserver: give %s to user %s: %v", base, as.name, err)
	}
	return base
}

// postgresEnv is the servers' whole environment: English messages, UTC (also
// spares initdb its search for the system's time zone).
var postgresEnv = []string{"LC_ALL=C", "TZ=UTC"}

// initdb creates the cluster in p.DataDir and returns initdb's output.
func (p PostgresServer) initdb(ctx context.Context, binDir, base string, as *account) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"--pgdata", p.DataDir,
		"--username", pgUser,
		"--auth", "trust",
		"--encoding", "UTF8",
		"--locale", "C",
		"--no-sync")
	cmd.Dir = base
	cmd.Env = minimalEnv(postgresEnv...)
	attr, err := sysProcAttr(as, syscall.SIGKILL)
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = attr
	return cmd.CombinedOutput()
}

// start starts the postmaster itself, not through pg_ctl: pg_ctl's daemon
// would outlive a test binary that dies, while a child of the test gets
// SIGQUIT (immediate shutdown, what pg_ctl stop -m immediate sends) when
// the test binary dies.
func (p PostgresServer) start(binDir, base string, port int, as *account, logPath string) (*server, error) {
	cmd := exec.Command(filepath.Join(binDir, "postgres"),
		"-D", p.DataDir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP only: no socket in /var/run/postgresql
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off")
	cmd.Dir = base
	cmd.Env = minimalEnv(postgresEnv...)
	attr, err := sysProcAttr(as, syscall.SIGQUIT)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	cmd.SysProcAttr = attr
	return startServer("postgres", cmd, logPath)
}

// ready waits until the server accepts connections, then creates the test's
// database.
func (p PostgresServer) ready(ctx context.Context, srv *server) error {
	db, err := sql.Open("pgx", "postgres://"+pgUser+"@"+p.Addr+"/postgres?sslmode=disable")
	if err != nil {
		return fmt.Errorf("open postgres: %w", err)
	}
	defer db.Close()
	err = srv.waitReady(ctx, pgStartTimeout, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return db.PingContext(ctx)
	})
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pgDatabase); err != nil {
		return fmt.Errorf("create database %s: %w", pgDatabase, err)
	}
	return nil
}

// postgresBinDir returns the directory with initdb and postgres: that of the
// initdb on PATH (symbolic links resolved), else the newest
// of Debian's /usr/lib/postgresql/VERSION/bin; "" if there is none.
func postgresBinDir() string {
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, resolved)
		}
	}
	installed, _ := filepath.Glob(pgInstallDirs)
	candidates = append(candidates, newestFirst(installed)...)
	for _, initdb := range candidates {
		dir := filepath.Dir(initdb)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir
		}
	}
	return ""
}

// newestFirst orders paths of the form .../VERSION/bin/initdb by VERSION,
// newest first, comparing its numbers (15 after 9.6).
func newestFirst(paths []string) []string {
	version := func(p string) []int {
		var v []int
		for _, f := range strings.Split(filepath.Base(filepath.Dir(filepath.Dir(p))), ".") {
			n, err := strconv.Atoi(f)
			if err != nil {
				n = -1
			}
			v = append(v, n)
		}
		return v
	}
	sorted := slices.Clone(paths)
	slices.SortStableFunc(sorted, func(a, b string) int {
		return cmp.Or(slices.Compare(version(b), version(a)), strings.Compare(a, b))
	})
	return sorted
}

// lastBytes returns the end of b, as much as a failure message quotes.
func lastBytes(b []byte) string {
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}
