package pipeline

import "testing"

// TestWorkerSplit: files in parallel times workers per file stays within
// the budget, and uses it when there is work for it.
func TestWorkerSplit(t *testing.T) {
	for _, c := range []struct{ budget, files, wantFiles, wantPer int }{
		{8, 1, 1, 8}, {8, 3, 3, 2}, {8, 8, 8, 1}, {8, 40, 8, 1}, {2, 0, 1, 2}, {0, 5, 1, 1}, {1, 1, 1, 1},
	} {
		f, p := workerSplit(c.budget, c.files)
		if f != c.wantFiles || p != c.wantPer || f*p > max(1, c.budget) {
			t.Errorf("workerSplit(%d, %d) = %d files x %d, want %d x %d", c.budget, c.files, f, p, c.wantFiles, c.wantPer)
		}
	}
}
