#!/usr/bin/env bash
# The whole test suite: unit tests, kernel/xfsprogs oracle tests, and a short
# run of every fuzz target. Set XFSKIT_REQUIRE_ORACLE=1 (CI does) to turn a
# skipped oracle test into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
go vet ./...
go build -o bin/ ./cmd/...
log=$(mktemp)
fuzzlog=$(mktemp) # per run: two runs at once must not share it
trap 'rm -f "$log" "$fuzzlog"' EXIT
status=0
go test -timeout 25m -count=1 ./... 2>&1 | tee "$log" || status=$?
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -c '^FAIL' "$log" || true)
echo "packages: $passed passed, $failed failed"
[ "$status" -eq 0 ] || exit "$status"
# Each fuzz target briefly (longer locally: FUZZTIME=2m scripts/test.sh).
fuzztime=${FUZZTIME:-4s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $fz ($fuzztime)"
    if ! go test -run "^$" -fuzz "^${fz}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" >"$fuzzlog" 2>&1; then
      # Go's fuzzer can report "context deadline exceeded" when -fuzztime
      # ends mid-minimisation; a real failure always writes its input.
      if grep -q "context deadline exceeded" "$fuzzlog" && ! grep -q "Failing input written" "$fuzzlog"; then
        echo "fuzz $fz: stopped at the deadline while minimising (not a failure)"
        continue
      fi
      cat "$fuzzlog"
      exit 1
    fi
  done
done
echo "fuzz: all targets ran without failures"
echo "packages: $passed passed, $failed failed"
