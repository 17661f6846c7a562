package transform

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// conformanceFloor is the number of tests in the SQL-on-FHIR v2 suite of
// ../shared/fixtures (ee8625f: 144). Every one must pass, experimental ones
// included; a smaller suite than this means the fixtures are not the ones
// this release was checked against.
const conformanceFloor = 144

func TestConformance(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "fixtures", "sof-tests")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SQL-on-FHIR test suite not found at %s: %v", dir, err)
	}
	rep, err := RunSuite(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range rep.Failures() {
		t.Log(line)
	}
	passed, failed := rep.Counts()
	t.Logf("%d passed, %d failed", passed, failed)
	if failed != 0 || passed < conformanceFloor {
		t.Errorf("%d conformance tests passed and %d failed, want at least %d passed and none failed", passed, failed, conformanceFloor)
	}
}

func TestReportFailures(t *testing.T) {
	rep := Report{
		"b.json": {Tests: []TestReport{{Name: "b2", Result: TestResult{Reason: "wrong rows"}}, {Name: "b1", Result: TestResult{Passed: true}}}},
		"a.json": {Tests: []TestReport{{Name: "a1", Result: TestResult{Reason: "bad path"}}, {Name: "a0", Result: TestResult{Reason: "x"}}}},
	}
	want := []string{"FAIL a.json: a1: bad path", "FAIL a.json: a0: x", "FAIL b.json: b2: wrong rows"}
	if got := rep.Failures(); !slices.Equal(got, want) {
		t.Errorf("Failures() = %q, want %q", got, want)
	}
}
