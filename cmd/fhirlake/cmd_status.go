package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/config"
	"github.com/fhirlake/fhirlake/internal/lockfile"
	"github.com/fhirlake/fhirlake/load"
)

type statusOptions struct {
	warehouse string
	json      bool
	limit     int
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the recent runs and the watermarks of a warehouse",
		UsageText: "fhirlake status --warehouse FILE.duckdb [--json] [--limit 20]\nfhirlake status --config fhirlake.yaml",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "warehouse", Usage: "DuckDB database `FILE`", EnvVars: []string{"FHIRLAKE_WAREHOUSE"}},
			&cli.StringFlag{Name: "config", Usage: "YAML config `FILE` naming the warehouse", EnvVars: []string{"FHIRLAKE_CONFIG"}},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of tables"},
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "number of most recent runs to show"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			wh := c.String("warehouse")
			if wh == "" && c.String("config") != "" {
				f, err := config.Load(c.String("config"))
				if err != nil {
					return configError(err)
				}
				wh = f.Warehouse
			}
			if wh == "" {
				return usagef("no warehouse: pass --warehouse or --config")
			}
			return runStatus(c.Context, c.App.Writer, statusOptions{warehouse: wh, json: c.Bool("json"), limit: c.Int("limit")})
		},
	}
}

// statusQueries are the tables status shows. minVersion is the warehouse
// layout that has the table; an older warehouse (upgraded by its next
// run) shows what it has.
var statusQueries = []struct {
	name, query string
	minVersion  int
}{
	{"runs", `SELECT run_id, source, scope, status, started_at, finished_at, since, transaction_time,
		resources, deleted, skipped_older, rejects FROM fhirlake_runs ORDER BY finished_at DESC LIMIT ?`, 1},
	{"watermarks", `SELECT source, scope, resource_type, transaction_time, run_id FROM fhirlake_watermarks
		WHERE ? > 0 ORDER BY source, scope, resource_type`, 1},
	// Patients not linked to other sources' records because their strong
	// identifiers conflict; the identifiers' values stay in the warehouse.
	{"person_conflicts", `SELECT source, identifier_system, reason, count(DISTINCT patient_id) AS patients
		FROM fhirlake_person_conflicts WHERE ? > 0 GROUP BY ALL ORDER BY ALL`, 2},
}

func runStatus(ctx context.Context, w io.Writer, o statusOptions) error {
	wh, err := load.OpenReadOnly(ctx, o.warehouse)
	if errors.Is(err, load.ErrInUse) {
		// Exit 7: try again when the writer is done.
		if h := lockfile.Holding(o.warehouse); h != nil {
			return fmt.Errorf("%w: a run is in progress on %s (%s); status can read the warehouse when it ends", lockfile.ErrBusy, o.warehouse, h)
		}
		return err
	}
	if err != nil {
		return usagef("%v", err)
	}
	defer wh.Close()
	out := map[string][]map[string]any{}
	for _, q := range statusQueries {
		if wh.Version() < q.minVersion {
			continue
		}
		rows, err := wh.Query(ctx, q.query, o.limit)
		if err != nil {
			return fmt.Errorf("status %s: %w", q.name, err)
		}
		if !o.json {
			fmt.Fprintf(w, "%s:\n", q.name)
			err = printRows(w, rows)
			fmt.Fprintln(w)
		} else {
			out[q.name], err = rowMaps(rows)
		}
		rows.Close()
		if err != nil {
			return fmt.Errorf("status %s: %w", q.name, err)
		}
	}
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return nil
}

// rowMaps reads rows as JSON-ready maps.
func rowMaps(rows *sql.Rows) ([]map[string]any, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(cols))
		for i, c := range cols {
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
