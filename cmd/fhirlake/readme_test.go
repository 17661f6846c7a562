//go:build duckdb_arrow

package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestReadmeNamesRealCommandsAndFlags: every fhirlake command line the
// README shows, in a code block or a code span, names a command that
// exists and only flags that command (or the app) has.
func TestReadmeNamesRealCommandsAndFlags(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(nil, nil)
	// Shown on purpose as a mistake the CLI answers.
	typos := map[string]bool{"rnu": true}
	codeSpan := regexp.MustCompile("`([^`]+)`")
	flagRE := regexp.MustCompile(`(?:^|\s|\[)--?([a-z][a-z0-9-]*)`)
	var snippets []string
	inBlock := false
	var block []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			if inBlock {
				// A command continued with a trailing backslash is one.
				joined := strings.ReplaceAll(strings.Join(block, "\n"), "\\\n", " ")
				snippets = append(snippets, strings.Split(joined, "\n")...)
				block = nil
			}
			inBlock = !inBlock
			continue
		}
		if inBlock {
			block = append(block, line)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			snippets = append(snippets, m[1])
		}
	}
	invocation := regexp.MustCompile(`(?:^|[\s(])(?:\./)?(?:bin/)?fhirlake((?:\s+--?[a-z-]+(?:[ =][^\s-][^\s]*)?)*)\s+([a-z][a-z-]*)(.*)`)
	shell := regexp.MustCompile(`\$\([^)]*\)`) // $(date -u ...): another program's flags
	checked := 0
	for _, s := range snippets {
		m := invocation.FindStringSubmatch(shell.ReplaceAllString(s, "X"))
		if m == nil {
			continue
		}
		name, rest := m[2], m[3]
		if typos[name] {
			continue
		}
		cmd := app.Command(name)
		if cmd == nil {
			t.Errorf("README shows `fhirlake %s`: no such command (in %q)", name, s)
			continue
		}
		if len(cmd.Subcommands) > 0 {
			words := strings.Fields(rest)
			if len(words) == 0 || strings.HasPrefix(words[0], "-") {
				continue // the command's group, named alone
			}
			sub := cmd.Command(words[0])
			if sub == nil {
				t.Errorf("README shows `fhirlake %s %s`: no such command (in %q)", name, words[0], s)
				continue
			}
			cmd = sub
		}
		checked++
		known := flagNames(app.Flags)
		known = append(known, flagNames(cmd.Flags)...)
		known = append(known, "help", "h")
		for _, f := range flagRE.FindAllStringSubmatch(m[1]+" "+rest, -1) {
			if !slices.Contains(known, f[1]) {
				t.Errorf("README shows `fhirlake %s ... --%s`: %s has no such flag (in %q)", cmd.FullName(), f[1], cmd.FullName(), s)
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d fhirlake command lines found in the README: is the parser still right?", checked)
	}
}

func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		out = append(out, f.Names()...)
	}
	return out
}
