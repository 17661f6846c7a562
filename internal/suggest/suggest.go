// Package suggest finds what a user meant by a mistyped name: a command,
// a flag, a ViewDefinition key or a FHIR resource type. It is a few lines
// of edit distance, written here rather than taken from a library because
// the rule of what counts as "near enough" is ours.
package suggest

// Closest is the candidate nearest to typed when one is near enough to be
// what was meant: at most one edit per four letters of the candidate (an
// edit is an insertion, deletion, substitution, or swap of neighbours),
// and at least one. It is "" when none is.
func Closest(typed string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := Distance(typed, c)
		if d <= max(1, len(c)/4) && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// Distance is the optimal string alignment distance of a and b: the
// fewest insertions, deletions, substitutions and swaps of neighbouring
// bytes that turn one into the other.
func Distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
