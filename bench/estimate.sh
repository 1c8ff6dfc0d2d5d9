#!/usr/bin/env bash
# Times xfskit estimate against xfs_estimate on the same big tree (by
# default 7 copies of the Go tree, ~117k entries, made once under
# /var/tmp/xfskit-bench), alternating the two, and prints the best wall
# time and the best CPU time (user+sys) of each and the ratios (ours/theirs:
# below 1.0 means estimate is faster), with both figures. With VERIFY=1 it
# then checks the figure: mkfs -p at exactly that size, xfs_repair -n.
# Run it under `flock /var/tmp/xfskit-bench.lock` so benchmarks never overlap.
# usage: bench/estimate.sh [SOURCE_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${2:-5}
bench=${XFSKIT_BENCH_DIR:-/var/tmp/xfskit-bench}
src=${1:-$bench/estimate-tree}
if [ ! -d "$src" ]; then
  mkdir -p "$src.tmp"
  for i in 1 2 3 4 5 6 7; do cp -a "$(go env GOROOT)" "$src.tmp/go$i"; done
  mv "$src.tmp" "$src"
fi
go build -o bin/ ./cmd/estimate
work=$(mktemp -d "${TMPDIR:-/var/tmp}/xfskit-estimate-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Warm the cache for both.
bin/estimate "$src" >/dev/null
xfs_estimate "$src" >/dev/null
# timed NAME CMD...: runs CMD, appends "wall cpu" to $work/NAME.
timed() {
  local name=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$work/t" "$@" >"$work/$name.out"
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$work/t" >>"$work/$name"
}
for r in $(seq 1 "$rounds"); do
  timed ours bin/estimate "$src"
  timed theirs xfs_estimate "$src"
  echo "round $r: estimate $(tail -1 "$work/ours" | awk '{print $1 "s wall, " $2 "s CPU"}')  xfs_estimate $(tail -1 "$work/theirs" | awk '{print $1 "s wall, " $2 "s CPU"}')"
done
best() { sort -n -k"$2" "$work/$1" | head -1 | awk -v k="$2" '{print $k}'; }
ow=$(best ours 1); oc=$(best ours 2); tw=$(best theirs 1); tc=$(best theirs 2)
entries=$(find "$src" | wc -l)
echo "source: $src ($entries entries, $(du -sm "$src" | cut -f1) MiB); load average $(cut -d' ' -f1-3 /proc/loadavg) (others' work slows the two-core parts most)"
echo "figures: $(cat "$work/ours.out")  |  xfs_estimate: $(cat "$work/theirs.out")"
bin/estimate --json "$src" | grep -E '"(bytes|free_blocks|sizing_runs|mkfs_auto_fits)"' | tr -d ' \n'; echo
ratio() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then printf '%.2fx' "$(echo "$1 / $2" | bc -l)"; else echo "n/a (xfs_estimate under the timer's resolution)"; fi; }
printf 'best of %d: estimate %.2fs wall %.2fs CPU, xfs_estimate %.2fs wall %.2fs CPU; ratio wall %s, CPU %s\n' \
  "$rounds" "$ow" "$oc" "$tw" "$tc" "$(ratio "$ow" "$tw")" "$(ratio "$oc" "$tc")"
if [ "${VERIFY:-0}" = 1 ]; then
  go build -o bin/ ./cmd/mkfs
  size=$(bin/estimate --bytes "$src")
  bin/mkfs -q -p "$src" -d size="$size" "$work/v.img"
  xfs_repair -n "$work/v.img" >/dev/null 2>&1 || { echo "xfs_repair -n fails on the image made at the estimate" >&2; exit 1; }
  echo "verified: mkfs -p -d size=$size fits, xfs_repair -n clean"
fi
