//go:build duckdb_arrow

package pipeline_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/internal/syncbuf"
)

// tokenRecorder remembers every token it hands out.
type tokenRecorder struct {
	next   extract.TokenSource
	mu     sync.Mutex
	tokens []string
}

func (r *tokenRecorder) Token(ctx context.Context) (string, error) {
	tok, err := r.next.Token(ctx)
	if err == nil {
		r.mu.Lock()
		r.tokens = append(r.tokens, tok)
		r.mu.Unlock()
	}
	return tok, err
}

func (r *tokenRecorder) Invalidate() {
	if inv, ok := r.next.(extract.Invalidator); ok {
		inv.Invalidate()
	}
}

func TestRunLogLinesCarryRunAndSourceAndNoSecrets(t *testing.T) {
	p, sb := newPipeline(t, 20, t.TempDir())
	var out syncbuf.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	p.Log = slog.New(slog.NewJSONHandler(&out, opts))
	// The client's own logger has no run or source: a line it wrote during
	// a run would fail the test.
	p.Client.Log = slog.New(slog.NewJSONHandler(&out, opts))
	tokens := &tokenRecorder{next: p.Client.Tokens}
	p.Client.Tokens = tokens

	first, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sb.Clock().Advance(24 * time.Hour)
	changeSandbox(t, sb)
	second, err := p.Run(t.Context()) // incremental, with a back-fill
	if err != nil {
		t.Fatal(err)
	}
	if second.Backfill.Mode == "" {
		t.Fatal("the second run did no back-fill; the test needs its export's lines")
	}

	runs := map[string]bool{first.RunID: true, second.RunID: true}
	secrets := []string{sandbox.DefaultClientSecret, "Bearer", "Authorization", "resourceType", "pat-0"}
	secrets = append(secrets, tokens.tokens...)
	if len(tokens.tokens) == 0 {
		t.Fatal("no token was issued")
	}
	msgs := map[string]int{}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %s", line)
		}
		if run, _ := rec["run"].(string); !runs[run] || rec["source"] != "sandbox" {
			t.Errorf("line without the run id or source: %s", line)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("line contains %q: %s", s, line)
			}
		}
		msg, _ := rec["msg"].(string)
		if rec["phase"] == "backfill" {
			msg = "backfill: " + msg
		}
		msgs[msg]++
	}
	// The extract client's lines are among them: both runs' exports and the
	// back-fill's.
	for msg, want := range map[string]int{"export started": 2, "backfill: export started": 1, "file downloaded": 2, "run committed": 2} {
		if msgs[msg] < want {
			t.Errorf("%d %q lines, want at least %d (lines: %v)", msgs[msg], msg, want, msgs)
		}
	}
}

// runRecorder is a fake pipeline.Progress.
type runRecorder struct {
	pipeline.NopProgress
	mu      sync.Mutex
	waiting []string
	started map[string]int64
	got     map[string]int64
	done    map[string]error
	rows    map[string]int64
	stages  []string
}

func newRunRecorder() *runRecorder {
	return &runRecorder{started: map[string]int64{}, got: map[string]int64{}, done: map[string]error{}, rows: map[string]int64{}}
}

func (r *runRecorder) Waiting(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting = append(r.waiting, s)
}

func (r *runRecorder) FileStarted(name string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started[name], r.got[name] = total, 0
}

func (r *runRecorder) FileProgress(name string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[name] += n
}

func (r *runRecorder) FileDone(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[name] = err
}

func (r *runRecorder) Rows(table string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows[table] += n
}

func (r *runRecorder) Stage(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stages = append(r.stages, s)
}

func TestProgressOfARun(t *testing.T) {
	dir := t.TempDir()
	p, _ := newPipeline(t, 20, dir)
	rec := newRunRecorder()
	p.Progress = rec
	var observed []string
	p.Observe = func(s string) { observed = append(observed, s) }

	sum, err := p.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sum.Rows, rec.rows); diff != "" {
		t.Errorf("rows reported (-summary +reported):\n%s", diff)
	}
	stages := []string{pipeline.StageExported, pipeline.StageTransformed, pipeline.StageCommitted, pipeline.StageLake}
	if diff := cmp.Diff(stages, rec.stages); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(stages, observed); diff != "" {
		t.Errorf("Observe (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"in progress 50%"}, rec.waiting); diff != "" {
		t.Errorf("Waiting (-want +got):\n%s", diff)
	}
	if len(rec.started) < sum.Files {
		t.Errorf("%d files started, want at least the %d output files", len(rec.started), sum.Files)
	}
	for name, total := range rec.started {
		if err, ok := rec.done[name]; !ok || err != nil {
			t.Errorf("FileDone(%s): called %v, err %v", name, ok, err)
		}
		if rec.got[name] != total || total <= 0 {
			t.Errorf("%s: %d bytes reported, %d announced", name, rec.got[name], total)
		}
	}

	// LoadDir reports the rows it stages the same way.
	exported := filepath.Join(dir, "exported")
	if _, err := p.Client.Export(t.Context(), extract.Request{}, exported); err != nil {
		t.Fatal(err)
	}
	lp := p
	lp.Warehouse = filepath.Join(dir, "loaded.duckdb")
	lp.Lake = ""
	lrec := newRunRecorder()
	lp.Progress = lrec
	observed = nil
	lsum, err := lp.LoadDir(t.Context(), exported)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lsum.Rows, lrec.rows); diff != "" {
		t.Errorf("LoadDir rows reported (-summary +reported):\n%s", diff)
	}
	if diff := cmp.Diff(stages[1:3], lrec.stages); diff != "" {
		t.Errorf("LoadDir stages (-want +got):\n%s", diff)
	}
}
