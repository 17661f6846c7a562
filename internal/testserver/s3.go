package testserver

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// VersitygwEnv names the environment variable with the path of the
// versitygw binary; `make test` sets it to .tools/versitygw.
const VersitygwEnv = "FHIRLAKE_VERSITYGW"

const (
	// s3Region is the region versitygw is started with.
	s3Region = "us-east-1"
	// s3HealthPath is versitygw's health endpoint, asked until it answers.
	s3HealthPath = "/health"
	// s3StartTimeout bounds the wait for versitygw to answer.
	s3StartTimeout = 30 * time.Second
	// s3StopGrace bounds the wait for the killed gateway to be reaped.
	s3StopGrace = 5 * time.Second
)

// S3Server is a running versitygw gateway that serves Dir over the S3 API
// with path-style addressing and one root account.
type S3Server struct {
	// Endpoint is the gateway's URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root account's credentials, new for
	// every server.
	AccessKey, SecretKey string
	// Region is the region requests are signed for: us-east-1.
	Region string
	// Dir is the posix backend's root: each directory directly below it is
	// a bucket, and object key a/b/c of bucket x is the file Dir/x/a/b/c.
	Dir string

	pid int // the gateway's process id, to check that cleanup ended it
}

// S3 starts versitygw's posix backend on a free port of 127.0.0.1, serving a
// new t.TempDir(), and stops it at t's cleanup. It skips t when versitygw
// cannot be found: in $FHIRLAKE_VERSITYGW, in .tools/versitygw at the
// repository root (`make .tools/versitygw` builds it; `make test` does so
// first) or on PATH.
func S3(t testing.TB) S3Server {
	t.Helper()
	bin, err := versitygwBinary()
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if bin == "" {
		t.Skipf("testserver: versitygw not found ($%s, .tools/versitygw at the repository root, PATH): `make test` builds it, or run `make .tools/versitygw`", VersitygwEnv)
	}
	s := S3Server{
		AccessKey: rand.Text(),
		SecretKey: rand.Text() + rand.Text(),
		Region:    s3Region,
		Dir:       t.TempDir(),
	}
	logDir := t.TempDir() // beside Dir, not in it: Dir holds only buckets
	logPath := filepath.Join(logDir, "versitygw.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		s.Endpoint = "http://127.0.0.1:" + strconv.Itoa(port)
		srv, err := s.start(bin, port, logDir, logPath)
		if err != nil {
			t.Fatalf("testserver: %v", err)
		}
		err = srv.waitReady(t.Context(), s3StartTimeout, s.healthy)
		if err == nil {
			s.pid = srv.pid()
			t.Cleanup(func() { srv.stop(syscall.SIGKILL, s3StopGrace) })
			return s
		}
		srv.stop(syscall.SIGKILL, s3StopGrace)
		if !errors.Is(err, errExited) || attempt == startAttempts {
			t.Fatalf("testserver: start versitygw (attempt %d): %s", attempt, failure(err, logPath))
		}
	}
}

// start starts the gateway on 127.0.0.1:port. The root credentials go in
// through the environment, not the command line other users can read.
func (s S3Server) start(bin string, port int, logDir, logPath string) (*server, error) {
	cmd := exec.Command(bin,
		"--port", "127.0.0.1:"+strconv.Itoa(port),
		"--region", s.Region,
		"--health", s3HealthPath,
		"--quiet",
		"posix", s.Dir)
	cmd.Dir = logDir
	cmd.Env = minimalEnv(
		"ROOT_ACCESS_KEY_ID="+s.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+s.SecretKey,
	)
	attr, err := sysProcAttr(nil, syscall.SIGKILL)
	if err != nil {
		return nil, fmt.Errorf("start versitygw: %w", err)
	}
	cmd.SysProcAttr = attr
	return startServer("versitygw", cmd, logPath)
}

// healthy asks the gateway's health endpoint once.
func (s S3Server) healthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+s3HealthPath, nil)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: status %s", resp.Status)
	}
	return nil
}

// Client returns an S3 client for the gateway: its endpoint, region and root
// credentials, path-style addressing. optFns change the options further, as
// in s3.New.
func (s S3Server) Client(optFns ...func(*s3.Options)) *s3.Client {
	opts := s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		UsePathStyle: true,
	}
	return s3.New(opts, optFns...)
}

// Bucket creates bucket name through the S3 API (with the posix backend it
// becomes the directory Dir/name), failing t if that does not work.
func (s S3Server) Bucket(t testing.TB, name string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if _, err := s.Client().CreateBucket(t.Context(), in); err != nil {
		t.Fatalf("testserver: create bucket %s: %v", name, err)
	}
}

// versitygwBinary returns the path of the versitygw binary, or "" when there
// is none. A $FHIRLAKE_VERSITYGW naming no file is an error, not a skip.
func versitygwBinary() (string, error) {
	if p := os.Getenv(VersitygwEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s: %w", VersitygwEnv, err)
		}
		return p, nil
	}
	if wd, err := os.Getwd(); err == nil {
		if root, err := repoRoot(wd); err == nil {
			p := filepath.Join(root, ".tools", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", nil
}
