//go:build duckdb_arrow

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"

	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/internal/syncbuf"
)

// runAction runs the real app (its global flags) with one command whose
// action is act, and returns the exit code and stderr.
func runAction(t *testing.T, env map[string]string, act func(c *cli.Context) error, args ...string) (int, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	app := newApp(&stdout, &stderr)
	app.Commands = []*cli.Command{{Name: "probe", Action: act}}
	ctx := context.Background()
	err := app.RunContext(ctx, append(append([]string{"fhirlake"}, args...), "probe"))
	return exitCode(ctx, err), stderr.String()
}

func TestLogFormat(t *testing.T) {
	tests := []struct {
		name string
		env  string // FHIRLAKE_LOG_FORMAT
		args []string
		json bool
		code int
	}{
		{"default is text", "", nil, false, exitOK},
		{"auto is text", "", []string{"--log-format", "auto"}, false, exitOK},
		{"flag json", "", []string{"--log-format", "json"}, true, exitOK},
		{"flag json beats env text", "text", []string{"--log-format", "json"}, true, exitOK},
		{"flag text beats env json", "json", []string{"--log-format", "text"}, false, exitOK},
		// The tests' stdout is a buffer, not a terminal.
		{"env json without a terminal", "json", nil, true, exitOK},
		{"flag auto beats env json", "json", []string{"--log-format", "auto"}, false, exitOK},
		{"env text", "text", nil, false, exitOK},
		{"bad flag", "", []string{"--log-format", "xml"}, false, exitUsage},
		{"bad env", "yaml", nil, false, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runAction(t, map[string]string{logFormatEnv: tt.env}, func(c *cli.Context) error {
				log, err := logger(c)
				if err != nil {
					return err
				}
				log.Warn("hello", "files", 3)
				return nil
			}, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if code != exitOK {
				return
			}
			var rec map[string]any
			isJSON := json.Unmarshal([]byte(stderr), &rec) == nil && rec["msg"] == "hello"
			if isJSON != tt.json {
				t.Errorf("JSON %v, want %v: %q", isJSON, tt.json, stderr)
			}
			if !tt.json && !strings.Contains(stderr, "msg=hello files=3") {
				t.Errorf("not a text line: %q", stderr)
			}
		})
	}
}

func TestAttachProgressWithoutTerminalAttachesNothing(t *testing.T) {
	for _, args := range [][]string{nil, {"--log-format", "json"}} {
		code, stderr := runAction(t, nil, func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			var p pipeline.Pipeline
			ctx, stop := attachProgress(c.Context, c, &p)
			defer stop()
			if p.Progress != nil {
				t.Errorf("%v: Progress attached without a terminal", args)
			}
			if ctx != c.Context {
				t.Errorf("%v: context changed without a terminal", args)
			}
			ctx, stop2 := attachProgress(c.Context, c, nil) // export's form
			if ctx != c.Context {
				t.Errorf("%v: context changed without a terminal", args)
			}
			stop2()
			stop2()
			log.Warn("after")
			return nil
		}, args...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if strings.ContainsAny(stderr, "\r\x1b") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: stderr holds more than the log line: %q", args, stderr)
		}
	}
}

// TestBarsAndLogLines drives the display as a run would, from several
// goroutines, with a log line written through the log writer while the
// bars run; the line must reach the output whole.
func TestBarsAndLogLines(t *testing.T) {
	var out syncbuf.Buffer
	lw := &logWriter{out: &out}
	b := newBars(&out, mpb.WithAutoRefresh(), mpb.WithRefreshRate(time.Millisecond), mpb.WithWidth(200))
	lw.setAbove(b.p)

	b.Waiting("in progress 10%\x1b[2J")
	b.Waiting("")
	var wg sync.WaitGroup
	for _, name := range []string{"Patient.001.ndjson", "Coverage.001.ndjson", "Observation.001.ndjson"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.FileStarted(name, 1000)
			b.FileProgress(name, 600)
			b.FileStarted(name, 1000) // a retry
			b.FileProgress(name, 1000)
			b.FileDone(name, nil)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.FileStarted("Encounter.001.ndjson", -1)
		b.FileProgress("Encounter.001.ndjson", 10)
		b.FileDone("Encounter.001.ndjson", errors.New("boom"))
	}()
	wg.Wait()
	if _, err := lw.Write([]byte("level=INFO msg=\"file downloaded\"\n")); err != nil {
		t.Fatal(err)
	}
	b.Stage(pipeline.StageExported)
	b.FileStarted("backfill.Patient.001.ndjson", 5)
	b.FileDone("backfill.Patient.001.ndjson", nil)
	for range 3 {
		b.Rows("patient", 20)
	}
	b.Stage(pipeline.StageTransformed)
	b.Stage(pipeline.StageCommitted)

	done := make(chan struct{})
	go func() {
		b.stop()
		lw.setAbove(nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return")
	}
	// Late calls after stop are ignored, not a panic.
	b.Waiting("late")
	b.FileStarted("late.ndjson", 1)
	b.Rows("late", 1)
	lw.Write([]byte("after\n"))

	s := out.String()
	// Each stage says it is done, with the time it took.
	for _, want := range []string{"msg=\"file downloaded\"\n", "done: 60 rows committed", "done: 60 rows staged in 1 tables", "export", "after\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\x1b[2J") {
		t.Error("the server's control characters reached the terminal")
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"  in progress 40%  ", 48, "in progress 40%"},
		{"a\x1b[31mred\tx", 48, "a [31mred x"},
		{"abcdefghij", 5, "abcde…"},
		{"", 48, ""},
	}
	for _, tt := range tests {
		if got := printable(tt.in, tt.n); got != tt.want {
			t.Errorf("printable(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// TestRetryShownOnTheBars: a kick-off the server turns away shows on the
// export's spinner with its wait, a retried download on the download bar;
// a wait that is over shows no more.
func TestRetryShownOnTheBars(t *testing.T) {
	var out syncbuf.Buffer
	b := newBars(&out, mpb.WithAutoRefresh(), mpb.WithRefreshRate(time.Millisecond), mpb.WithWidth(200))
	b.Retrying("kick-off", "server busy (429)", 20*time.Second)
	if n := b.note(); n != "server busy (429), retrying kick-off in 20 s" {
		t.Errorf("note = %q", n)
	}
	time.Sleep(20 * time.Millisecond) // a frame or more
	b.Waiting("")
	b.FileStarted("Patient.001.ndjson", 10)
	b.Retrying("download Patient.001.ndjson", "server error (503)", 5*time.Second)
	time.Sleep(20 * time.Millisecond)
	b.Retrying("kick-off", "server busy (429)", -time.Second) // over already
	if n := b.note(); n != "" {
		t.Errorf("note of a wait that is over = %q", n)
	}
	b.FileDone("Patient.001.ndjson", nil)
	b.Stage(pipeline.StageExported)
	b.stop()
	s := out.String()
	// A busy machine may draw a frame a second late: the count is not checked.
	for _, want := range []string{"export", "server busy (429), retrying kick-off in ", "server error (503), retrying download Patient.001.ndjson in "} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}
