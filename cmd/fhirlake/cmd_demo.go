package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/extract"
	"github.com/fhirlake/fhirlake/extract/sandbox"
	"github.com/fhirlake/fhirlake/internal/pipeline"
	"github.com/fhirlake/fhirlake/load"
	fsql "github.com/fhirlake/fhirlake/sql"
)

type demoOptions struct {
	dir     string
	members int
	seed    int64
}

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "start the sandbox payer in-process and run the whole pipeline against it",
		UsageText: "fhirlake demo [--dir ./fhirlake-demo] [--members 200] [--seed 1]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Value: "fhirlake-demo", Usage: "output `DIR`: warehouse.duckdb and lake/", EnvVars: []string{"FHIRLAKE_DEMO_DIR"}},
			&cli.IntFlag{Name: "members", Value: 200, Usage: "synthetic members in the sandbox", EnvVars: []string{"FHIRLAKE_DEMO_MEMBERS"}},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "generator seed", EnvVars: []string{"FHIRLAKE_DEMO_SEED"}},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			if c.Int("members") < 1 {
				return usagef("--members must be at least 1")
			}
			return runDemo(c.Context, c, demoOptions{dir: c.String("dir"), members: c.Int("members"), seed: c.Int64("seed")})
		},
	}
}

// demoQuery is the analytic query the demo prints.
const demoQuery = "SELECT * FROM claims_by_type"

func runDemo(ctx context.Context, c *cli.Context, o demoOptions) error {
	log, err := logger(c)
	if err != nil {
		return err
	}
	srv, err := sandbox.New(sandbox.Config{Members: o.members, Seed: o.seed})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- serve(sctx, ln, srv.Handler()) }()
	defer func() { stop(); <-served }()

	root := "http://" + ln.Addr().String()
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return fmt.Errorf("demo dir: %w", err)
	}
	views, err := loadViews("", nil)
	if err != nil {
		return err
	}
	p := pipeline.Pipeline{
		Source: "sandbox",
		Client: &extract.Client{
			BaseURL: sandbox.OneUpBase(root, sandbox.DefaultTenant),
			Tokens: extract.NewClientSecretSource(extract.ClientSecretConfig{
				TokenURL:     root + sandbox.TokenPath,
				ClientID:     sandbox.DefaultClientID,
				ClientSecret: sandbox.DefaultClientSecret,
				Scopes:       []string{"bulk-data|user/*.rs"},
			}),
			Log: log,
		},
		Views:     views,
		SQL:       fsql.FS,
		Warehouse: filepath.Join(o.dir, "warehouse.duckdb"),
		Lake:      filepath.Join(o.dir, "lake"),
		Log:       log,
	}
	fmt.Fprintf(c.App.Writer, "sandbox payer: %d members (seed %d) at %s\n", o.members, o.seed, root)
	start := time.Now()
	pctx, stopBars := attachProgress(ctx, c, &p)
	sum, err := p.Run(pctx)
	stopBars()
	if err != nil {
		return err
	}
	mode := "full export"
	if sum.Since != nil {
		mode = "incremental since " + sum.Since.Format(time.RFC3339)
		if sum.Resources == 0 {
			mode += "; nothing changed at the sandbox since"
		}
	}
	fmt.Fprintf(c.App.Writer, "run %s (%s): %d resources from %d files in %.1fs, %d rejects\n\n",
		sum.RunID, mode, sum.Resources, sum.Files, time.Since(start).Seconds(), sum.Rejects)
	return printDemo(ctx, c.App.Writer, p)
}

// printDemo prints the rows per table and the demo query from the
// warehouse as committed.
func printDemo(ctx context.Context, w io.Writer, p pipeline.Pipeline) error {
	wh, err := load.Open(ctx, p.Warehouse)
	if err != nil {
		return err
	}
	defer wh.Close()
	names := make([]string, len(p.Views))
	for i, v := range p.Views {
		names[i] = v.Name()
	}
	counts, err := wh.TableRows(ctx, names)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%-28s %10s\n", "table", "rows")
	for _, n := range names {
		fmt.Fprintf(w, "%-28s %10d\n", n, counts[n])
	}
	fmt.Fprintf(w, "\n%s;\n", demoQuery)
	rows, err := wh.Query(ctx, demoQuery)
	if err != nil {
		return fmt.Errorf("demo query: %w", err)
	}
	defer rows.Close()
	if err := printRows(w, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nwarehouse: %s\nlake:      %s\n", p.Warehouse, p.Lake)
	return nil
}
