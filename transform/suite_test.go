package transform

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// conformanceFloor is the number of SQL-on-FHIR v2 tests that must pass;
// raise it as conformance improves, never lower it.
const conformanceFloor = 134

func TestConformance(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "fixtures", "sof-tests")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SQL-on-FHIR test suite not found at %s: %v", dir, err)
	}
	rep, err := RunSuite(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make([]string, 0, len(rep))
	for f := range rep {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		for _, tr := range rep[f].Tests {
			if !tr.Result.Passed {
				t.Logf("FAIL %s: %s: %s", f, tr.Name, tr.Result.Reason)
			}
		}
	}
	passed, failed := rep.Counts()
	t.Logf("%d passed, %d failed", passed, failed)
	if passed < conformanceFloor {
		t.Errorf("%d conformance tests passed, want at least %d", passed, conformanceFloor)
	}
}
