package extract_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
)

// recorder is a fake Progress that records what it is told and notes
// calls out of order.
type recorder struct {
	mu      sync.Mutex
	waiting []string
	starts  map[string]int   // FileStarted calls per file
	total   map[string]int64 // the last total announced
	got     map[string]int64 // bytes since the last FileStarted
	done    map[string]error
	wrong   []string // calls out of order
}

var _ extract.Progress = (*recorder)(nil)

func newRecorder() *recorder {
	return &recorder{starts: map[string]int{}, total: map[string]int64{}, got: map[string]int64{}, done: map[string]error{}}
}

func (r *recorder) Waiting(status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.starts) > 0 {
		r.wrong = append(r.wrong, "Waiting after a file started")
	}
	r.waiting = append(r.waiting, status)
}

func (r *recorder) FileStarted(name string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[name]; ok {
		r.wrong = append(r.wrong, "FileStarted after FileDone: "+name)
	}
	r.starts[name]++
	r.total[name], r.got[name] = total, 0
}

func (r *recorder) FileProgress(name string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[name]; ok || r.starts[name] == 0 || n <= 0 {
		r.wrong = append(r.wrong, fmt.Sprintf("FileProgress(%s, %d) out of order", name, n))
	}
	r.got[name] += n
}

func (r *recorder) FileDone(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.done[name]; ok || r.starts[name] == 0 {
		r.wrong = append(r.wrong, "FileDone out of order: "+name)
	}
	r.done[name] = err
}

func TestProgressReportsWaitingAndEveryFile(t *testing.T) {
	tests := []struct {
		name    string
		faults  sandbox.Faults
		retried bool // some file is started twice
	}{
		{"clean", sandbox.Faults{}, false},
		{"a truncated body is retried", sandbox.Faults{TruncateFiles: 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sandbox.Config{Members: 30, MaxLinesPerFile: 40, PollsBeforeReady: 2})
			e.sb.SetFaults(tt.faults)
			rec := newRecorder()
			dir := t.TempDir()
			res, err := e.client().Export(extract.WithProgress(t.Context(), rec), extract.Request{}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"in progress 33%", "in progress 66%"}, rec.waiting); diff != "" {
				t.Errorf("Waiting (-want +got):\n%s", diff)
			}
			want := map[string]int64{}
			for _, f := range res.Files {
				want[f.Name] = f.Bytes
			}
			if diff := cmp.Diff(want, rec.got); diff != "" {
				t.Errorf("bytes reported per file (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, rec.total); diff != "" {
				t.Errorf("totals announced per file (-want +got):\n%s", diff)
			}
			for _, f := range res.Files {
				if err, ok := rec.done[f.Name]; !ok || err != nil {
					t.Errorf("FileDone(%s): called %v, err %v", f.Name, ok, err)
				}
			}
			if len(rec.wrong) > 0 {
				t.Errorf("calls out of order: %q", rec.wrong)
			}
			retried := false
			for _, n := range rec.starts {
				retried = retried || n > 1
			}
			if retried != tt.retried {
				t.Errorf("a file started twice: %v, want %v (%v)", retried, tt.retried, rec.starts)
			}

			// Resuming the finished job downloads nothing and announces nothing.
			again := newRecorder()
			if _, err := e.client().Export(extract.WithProgress(t.Context(), again), extract.Request{}, dir); err != nil {
				t.Fatal(err)
			}
			if len(again.starts)+len(again.done)+len(again.waiting) != 0 {
				t.Errorf("resumed finished job reported %v %v %v", again.waiting, again.starts, again.done)
			}
		})
	}
}

func TestProgressReportsFailedFile(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	e.sb.SetFaults(sandbox.Faults{TruncateFiles: 1000})
	c := e.client()
	c.Retries = 1
	rec := newRecorder()
	if _, err := c.Export(extract.WithProgress(t.Context(), rec), extract.Request{}, t.TempDir()); err == nil {
		t.Fatal("export succeeded with every body truncated")
	}
	failed := 0
	for name, err := range rec.done {
		if err == nil {
			t.Errorf("FileDone(%s, nil) for a file that never verified", name)
		}
		failed++
	}
	if failed == 0 {
		t.Error("no FileDone with an error")
	}
	// Files cancelled by another file's failure are done too.
	for name := range rec.starts {
		if _, ok := rec.done[name]; !ok {
			t.Errorf("%s started but never done", name)
		}
	}
}

func TestContextLoggerWinsOverClientLog(t *testing.T) {
	e := newEnv(t, sandbox.Config{})
	var clientLog, runLog bytes.Buffer
	c := e.client()
	c.Log = slog.New(slog.NewTextHandler(&clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := extract.WithLogger(t.Context(), slog.New(slog.NewTextHandler(&runLog, &slog.HandlerOptions{Level: slog.LevelDebug})).With("run", "r1"))
	if _, err := c.Export(ctx, extract.Request{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if clientLog.Len() != 0 {
		t.Errorf("Client.Log got lines despite a context logger:\n%s", clientLog.String())
	}
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(runLog.String()), "\n") {
		if !strings.Contains(line, "run=r1") {
			t.Errorf("line without the context logger's attributes: %s", line)
		}
		if i := strings.Index(line, "msg="); i >= 0 {
			msgs = append(msgs, line[i:])
		}
	}
	sort.Strings(msgs)
	for _, want := range []string{`msg="export started"`, `msg="export in progress"`, `msg="file downloaded"`} {
		i := sort.SearchStrings(msgs, want)
		if i == len(msgs) || !strings.HasPrefix(msgs[i], want) {
			t.Errorf("no %s line in the context logger's output", want)
		}
	}

	// Without a context logger, Client.Log gets the lines.
	if _, err := c.Export(t.Context(), extract.Request{}, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(clientLog.String(), `msg="export started"`) {
		t.Errorf("Client.Log got no lines without a context logger:\n%s", clientLog.String())
	}
}
