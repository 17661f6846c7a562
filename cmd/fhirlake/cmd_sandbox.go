package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract/sandbox"
)

type sandboxOptions struct {
	addr   string
	cfg    sandbox.Config
	faults sandbox.Faults
}

func sandboxCommand() *cli.Command {
	return &cli.Command{
		Name:      "sandbox",
		Usage:     "serve the synthetic sandbox payer (Bulk Data, 1upHealth flavour) until SIGINT/SIGTERM",
		UsageText: "fhirlake sandbox [--addr 127.0.0.1:8089] [--members 200] [--seed 1] [--as-of 2026-01-05]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8089", Usage: "listen address", EnvVars: []string{"FHIRLAKE_SANDBOX_ADDR"}},
			&cli.IntFlag{Name: "members", Value: 200, Usage: "synthetic members to generate", EnvVars: []string{"FHIRLAKE_SANDBOX_MEMBERS"}},
			&cli.IntFlag{Name: "history-years", Value: 1, Usage: "years of claims, encounters and labs per member", EnvVars: []string{"FHIRLAKE_SANDBOX_HISTORY_YEARS"}},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "generator seed (same seed, same data)", EnvVars: []string{"FHIRLAKE_SANDBOX_SEED"}},
			&cli.StringFlag{Name: "alt-host", Usage: "serve status and file URLs on this second `HOST:PORT` (e.g. localhost:8089), as 1upHealth does", EnvVars: []string{"FHIRLAKE_SANDBOX_ALT_HOST"}},
			&cli.StringFlag{Name: "as-of", Value: sandbox.DefaultStart.Format(time.DateOnly), Usage: "the sandbox's `DATE`: its clock starts there and every generated date is relative to it, so one seed gives the same data on any day (examples/roster.sandbox.csv matches)", EnvVars: []string{"FHIRLAKE_SANDBOX_AS_OF"}},
			&cli.BoolFlag{Name: "implausible-visits", Usage: "also serve the visits (claims, encounters, labs) drawn before a member's birth or coverage start, which are left out by default", EnvVars: []string{"FHIRLAKE_SANDBOX_IMPLAUSIBLE_VISITS"}},
			&cli.IntFlag{Name: "changes-per-run", Usage: "before every export after the first, change `N` resources (new versions, deletions, new members), so that an incremental run has something to pick up", EnvVars: []string{"FHIRLAKE_SANDBOX_CHANGES_PER_RUN"}},
			&cli.StringFlag{Name: "faults", Usage: "fault injection as `JSON`, e.g. '{\"kickoffTooMany\":2,\"redirectFiles\":true}'; also POST /_admin/faults at run time", EnvVars: []string{"FHIRLAKE_SANDBOX_FAULTS"}},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Int("members") < 1 {
				return usagef("--members must be at least 1")
			}
			if c.Int("changes-per-run") < 0 {
				return usagef("--changes-per-run must be 0 or more")
			}
			asOf, err := time.Parse(time.DateOnly, c.String("as-of"))
			if err != nil {
				return usagef("--as-of %q: want a date, YYYY-MM-DD", c.String("as-of"))
			}
			o := sandboxOptions{
				addr: c.String("addr"),
				cfg: sandbox.Config{Members: c.Int("members"), HistoryYears: c.Int("history-years"), Seed: c.Int64("seed"), ClockRuns: true, Start: asOf,
					AltHost: c.String("alt-host"), ChangesPerRun: c.Int("changes-per-run"), ImplausibleVisits: c.Bool("implausible-visits")},
			}
			if f := c.String("faults"); f != "" {
				if err := json.Unmarshal([]byte(f), &o.faults); err != nil {
					return usagef("--faults: %v", err)
				}
			}
			return runSandbox(c.Context, c, o)
		},
	}
}

func runSandbox(ctx context.Context, c *cli.Context, o sandboxOptions) error {
	srv, err := sandbox.New(o.cfg)
	if err != nil {
		return err
	}
	srv.SetFaults(o.faults)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return usagef("listen on %s: %v", o.addr, err)
	}
	root := "http://" + ln.Addr().String()
	fmt.Fprintf(c.App.Writer, "sandbox payer on %s\n  1upHealth base: %s\n  standard base:  %s\n  token URL:      %s\n  client id:      %s (secret %q, public sandbox credential)\n",
		root, sandbox.OneUpBase(root, sandbox.DefaultTenant), sandbox.StandardBase(root), root+sandbox.TokenPath,
		sandbox.DefaultClientID, sandbox.DefaultClientSecret)
	return serve(ctx, ln, srv.Handler())
}

// serve serves h on ln until ctx is cancelled, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("sandbox server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(sctx)
		if e := <-done; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, e)
		}
		return err
	}
}
