package testserver

import (
	"bytes"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
)

// TestS3 puts objects into a bucket, reads and lists them back with path-style
// addressing only, finds them as files in Dir, and checks that cleanup ended
// the gateway.
func TestS3(t *testing.T) {
	var pid int
	t.Run("round trip", func(t *testing.T) {
		start := time.Now()
		s := S3(t)
		t.Logf("versitygw ready in %s at %s", time.Since(start).Round(time.Millisecond), s.Endpoint)
		pid = s.pid
		s.Bucket(t, "lake")

		// Every request must go to the endpoint's own host: the bucket in
		// the path, never in the host name (virtual-hosted style).
		hosts := &hostRecorder{next: http.DefaultTransport}
		c := s.Client(func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: hosts} })

		objects := []struct{ key, body string }{
			{"warehouse/db/patient/metadata/00000-a.metadata.json", `{"format-version":2}`},
			{"warehouse/db/patient/data/part 1.parquet", "PAR1 not really"},
			{"top.txt", "outside the prefix"},
		}
		for _, o := range objects {
			in := &s3.PutObjectInput{Bucket: aws.String("lake"), Key: aws.String(o.key), Body: strings.NewReader(o.body)}
			if _, err := c.PutObject(t.Context(), in); err != nil {
				t.Fatalf("put %s: %v", o.key, err)
			}
		}
		for _, o := range objects {
			out, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("lake"), Key: aws.String(o.key)})
			if err != nil {
				t.Fatalf("get %s: %v", o.key, err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", o.key, err)
			}
			if string(got) != o.body {
				t.Errorf("get %s = %q, want %q", o.key, got, o.body)
			}
			onDisk, err := os.ReadFile(filepath.Join(s.Dir, "lake", filepath.FromSlash(o.key)))
			if err != nil || !bytes.Equal(onDisk, got) {
				t.Errorf("file for %s: %q, %v; want %q", o.key, onDisk, err, o.body)
			}
		}

		list, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("lake"), Prefix: aws.String("warehouse/")})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		var keys []string
		for _, o := range list.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		want := []string{"warehouse/db/patient/data/part 1.parquet", "warehouse/db/patient/metadata/00000-a.metadata.json"}
		if diff := cmp.Diff(want, keys); diff != "" {
			t.Errorf("list warehouse/ (-want +got):\n%s", diff)
		}

		endpoint, err := url.Parse(s.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if got := hosts.distinct(); !slices.Equal(got, []string{endpoint.Host}) {
			t.Errorf("requests went to hosts %q, want only %q", got, endpoint.Host)
		}
	})
	if pid != 0 && groupAlive(pid) {
		t.Errorf("versitygw (pid %d) still running after cleanup", pid)
	}
}

// TestPostgres creates a table in the server's database, fills it and reads
// it back through database/sql and pgx, and checks that cleanup ended the
// server and all its processes.
func TestPostgres(t *testing.T) {
	var pid int
	var dataDir string
	t.Run("round trip", func(t *testing.T) {
		start := time.Now()
		p := Postgres(t)
		t.Logf("postgres ready in %s at %s", time.Since(start).Round(time.Millisecond), p.Addr)
		pid, dataDir = p.pid, p.DataDir

		db, err := sql.Open("pgx", p.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := t.Context()

		var database, user string
		if err := db.QueryRowContext(ctx, "SELECT current_database(), current_user").Scan(&database, &user); err != nil {
			t.Fatalf("who am I: %v", err)
		}
		if database != p.Database || user != p.User {
			t.Errorf("connected to %s as %s, want %s as %s", database, user, p.Database, p.User)
		}

		if _, err := db.ExecContext(ctx, "CREATE TABLE patient (id text PRIMARY KEY, family text NOT NULL)"); err != nil {
			t.Fatalf("create table: %v", err)
		}
		type row struct{ ID, Family string }
		want := []row{{"p1", "Smith"}, {"p2", "Müller"}, {"p3", "O'Brien"}}
		for _, r := range want {
			if _, err := db.ExecContext(ctx, "INSERT INTO patient (id, family) VALUES ($1, $2)", r.ID, r.Family); err != nil {
				t.Fatalf("insert %v: %v", r, err)
			}
		}
		rows, err := db.QueryContext(ctx, "SELECT id, family FROM patient ORDER BY id")
		if err != nil {
			t.Fatalf("select: %v", err)
		}
		defer rows.Close()
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.ID, &r.Family); err != nil {
				t.Fatalf("scan: %v", err)
			}
			got = append(got, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("rows: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("patient rows (-want +got):\n%s", diff)
		}
	})
	if pid == 0 {
		return
	}
	if groupAlive(pid) {
		t.Errorf("postgres (process group %d) still running after cleanup", pid)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there after cleanup (%v)", dataDir, err)
	}
}

func TestNewestFirst(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		{"none", nil, nil},
		{
			name:  "numeric, not lexical",
			paths: []string{"/usr/lib/postgresql/9.6/bin/initdb", "/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/13/bin/initdb"},
			want:  []string{"/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/13/bin/initdb", "/usr/lib/postgresql/9.6/bin/initdb"},
		},
		{
			name:  "unparsable last",
			paths: []string{"/usr/lib/postgresql/beta/bin/initdb", "/usr/lib/postgresql/16/bin/initdb"},
			want:  []string{"/usr/lib/postgresql/16/bin/initdb", "/usr/lib/postgresql/beta/bin/initdb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, newestFirst(tt.paths)); diff != "" {
				t.Errorf("newestFirst (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTailLines(t *testing.T) {
	long := strings.Repeat("x", 10) + "\n" + strings.Repeat("y", logTailBytes)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "(log empty)"},
		{"short kept whole", "a\nb\n", "a\nb"},
		{"partial first line dropped", long, strings.Repeat("y", logTailBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tailLines(tt.in); got != tt.want {
				t.Errorf("tailLines = %q, want %q", got, tt.want)
			}
		})
	}
}

// hostRecorder is an http.RoundTripper that notes each request's host.
type hostRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex // guards hosts
	hosts []string
}

func (h *hostRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, req.URL.Host)
	h.mu.Unlock()
	return h.next.RoundTrip(req)
}

// distinct returns the hosts seen, sorted, each once.
func (h *hostRecorder) distinct() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Compact(slices.Sorted(slices.Values(h.hosts)))
}
