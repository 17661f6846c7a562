#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzX in a *_test.go
# file) for FUZZTIME each, one after another, and prints a line per target:
# its package, its name, the executions the fuzzer reported and the result.
# A failing input is written by `go test` to <package>/testdata/fuzz/<Target>/;
# keep it there as a regression seed once the cause is fixed. Exits non-zero
# when any target failed.
#
#   FUZZTIME      time (or NNNx executions) per target, default 60s
#   FUZZPARALLEL  fuzzing workers per target, default 1 (machines are small)
#   FUZZ          only targets whose name matches this extended regexp
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TAGS=${TAGS:-duckdb_arrow}
FUZZTIME=${FUZZTIME:-60s}
FUZZPARALLEL=${FUZZPARALLEL:-1}
FUZZ=${FUZZ:-.}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=()
failed=0
while IFS= read -r file; do
	pkg=./$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		[[ $target =~ $FUZZ ]] || continue
		echo "== $pkg $target ($FUZZTIME)"
		# Minimizing an input whose coverage varies between runs (goroutines)
		# can take the whole budget; 100 tries is plenty.
		if "$GO" test -tags "$TAGS" "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" \
			-fuzzminimizetime 100x -parallel "$FUZZPARALLEL" >"$log" 2>&1; then
			result=ok
		else
			result=FAIL
			failed=1
			cat "$log"
		fi
		execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
		summary+=("$(printf '%-28s %-24s %12s execs  %s' "$pkg" "$target" "${execs:-?}" "$result")")
	done
done < <(find . -name '*_test.go' -not -path './.tools/*' -not -path './.git/*' | sed 's|^\./||' | sort | xargs grep -l '^func Fuzz')
printf '%s\n' "${summary[@]}"
exit $failed
