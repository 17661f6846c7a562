package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/fhirlake/fhirlake/internal/atomicfile"
	"github.com/fhirlake/fhirlake/schemas"
	"github.com/fhirlake/fhirlake/transform"
)

// errSuiteFailed means conformance tests failed; the counts were printed.
var errSuiteFailed = errors.New("SQL-on-FHIR conformance tests failed")

type viewsTestOptions struct {
	suite   string
	report  string
	verbose bool
}

func viewsCommand() *cli.Command {
	return &cli.Command{
		Name:  "views",
		Usage: "work with SQL-on-FHIR v2 ViewDefinitions",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "run a folder of SQL-on-FHIR v2 test files and write the standard report",
			UsageText: "fhirlake views test --suite DIR [--report FILE]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "suite", Usage: "`DIR` of SQL-on-FHIR test files (*.json)", Required: true},
				&cli.StringFlag{Name: "report", Usage: "write the report ({\"file.json\":{\"tests\":[{\"name\":...,\"result\":{\"passed\":bool}}]}}) to `FILE`"},
				&cli.BoolFlag{Name: "verbose", Usage: "list every failed test with its reason"},
			},
			OnUsageError: onUsageError,
			Action: func(c *cli.Context) error {
				return runViewsTest(c.Context, c, viewsTestOptions{suite: c.String("suite"), report: c.String("report"), verbose: c.Bool("verbose")})
			},
		}, {
			Name:      "check",
			Usage:     "check a folder of your ViewDefinitions as run and load would, without a server or a warehouse",
			UsageText: "fhirlake views check --views DIR",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "views", Usage: "`DIR` of extra ViewDefinition JSON files", Required: true, EnvVars: []string{"FHIRLAKE_VIEWS"}},
			},
			OnUsageError: onUsageError,
			Action:       runViewsCheck,
		}},
	}
}

// runViewsCheck compiles and checks the user's views (userViews): a view a
// run would refuse is an error (exit 2); the paths it cannot check to the
// end are warnings. It prints one line per view that passes.
func runViewsCheck(c *cli.Context) error {
	log, err := logger(c)
	if err != nil {
		return err
	}
	dir := c.String("views")
	builtin, err := transform.LoadViews(schemas.FS)
	if err != nil {
		return fmt.Errorf("built-in views: %w", err)
	}
	extra, err := userViews(dir, builtin, log)
	if err != nil {
		return err
	}
	if len(extra) == 0 {
		return usagef("--views %s holds no ViewDefinition (*.json)", dir)
	}
	for _, v := range extra {
		fmt.Fprintf(c.App.Writer, "%s: view %s of %s, %d columns: ok\n", v.File(), v.Name(), v.Resource(), len(v.Columns()))
	}
	return nil
}

func runViewsTest(_ context.Context, c *cli.Context, o viewsTestOptions) error {
	if st, err := os.Stat(o.suite); err != nil || !st.IsDir() {
		return usagef("--suite %s is not a folder of SQL-on-FHIR test files", o.suite)
	}
	rep, err := transform.RunSuite(o.suite)
	if err != nil {
		return usagef("%v", err)
	}
	if passed, failed := rep.Counts(); passed+failed == 0 {
		return usagef("--suite %s holds no SQL-on-FHIR tests (*.json files with tests)", o.suite)
	}
	if o.report != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(o.report, append(b, '\n')); err != nil {
			return err
		}
	}
	passed, failed := rep.Counts()
	if o.verbose || failed > 0 {
		for _, line := range rep.Failures() {
			fmt.Fprintln(c.App.ErrWriter, line)
		}
	}
	fmt.Fprintf(c.App.Writer, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return errSuiteFailed
	}
	return nil
}
