// Package testzone runs a test again in a process on a machine in
// another time zone, for code that must behave the same whatever the
// machine's zone: DuckDB takes its sessions' zone from the machine's (TZ),
// once per process, so a test cannot change it for itself.
package testzone

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver
)

// env names the zone a child process runs its test in.
const env = "FHIRLAKE_TEST_ZONE"

// In reports whether the test t runs in zone: in the test's own process
// it runs the test again in a child process whose machine is in zone,
// fails t when the child fails, and returns false; in the child it
// returns true (the caller goes on with the test), after checking that
// DuckDB took the zone (the test is skipped when it did not).
func In(t *testing.T, zone string) bool {
	t.Helper()
	if os.Getenv(env) != zone {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), env+"="+zone, "TZ="+zone)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s in %s: %v\n%s", t.Name(), zone, err, out)
		}
		if strings.Contains(string(out), "--- SKIP") {
			t.Skipf("%s in %s was skipped:\n%s", t.Name(), zone, out)
		}
		return false
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.QueryRowContext(context.Background(), "SELECT current_setting('TimeZone')").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != zone {
		t.Skipf("DuckDB's sessions are in %s, not the machine's %s", got, zone)
	}
	return true
}
