#!/usr/bin/env bash
# Times `mkfs -p` (xfskit) against mkfs.xfs + mount + cp -a + umount on a
# copy of the Go toolchain tree, alternating the two in one run, and prints
# the ratio (ours/theirs: below 1.0 means xfskit is faster) and xfskit's
# peak memory. Both images are the same size and both are fsync'd.
# Needs root, loop devices and xfsprogs.
# usage: bench/mkfs.sh [SOURCE_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${2:-3}
# Outside the module: a Go tree inside it would confuse `go build ./...`.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/xfskit-mkfs-bench.XXXXXX")
mnt="$work/mnt"
mkdir "$mnt"
cleanup() { mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT
src=${1:-}
if [ -z "$src" ]; then
  src="$work/go"
  cp -a "$(go env GOROOT)" "$src"
fi
go build -o bin/ ./cmd/mkfs
uuid=0b7e4e1c-35f8-4a32-9a7e-5d1b1c0d2e3f
ours=(); theirs=(); rss=()
now() { date +%s.%N; }
for r in $(seq 1 "$rounds"); do
  rm -f "$work/ours.img" "$work/theirs.img"
  t0=$(now)
  /usr/bin/time -v -o "$work/time.txt" bin/mkfs -q -m uuid=$uuid -p "$src" "$work/ours.img"
  t1=$(now)
  size=$(stat -c %s "$work/ours.img")
  truncate -s "$size" "$work/theirs.img"
  t2=$(now)
  mkfs.xfs -q -f -m uuid=$uuid "$work/theirs.img"
  mount -o loop "$work/theirs.img" "$mnt"
  mountpoint -q "$mnt"
  cp -a "$src/." "$mnt/"
  umount "$mnt"
  sync "$work/theirs.img"
  t3=$(now)
  ours+=("$(echo "$t1 - $t0" | bc)"); theirs+=("$(echo "$t3 - $t2" | bc)")
  rss+=("$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt")")
  echo "round $r: mkfs -p ${ours[-1]}s (peak ${rss[-1]} KiB)  mkfs.xfs+mount+cp -a+umount ${theirs[-1]}s"
done
xfs_repair -n "$work/ours.img" >/dev/null 2>&1 || { echo "xfs_repair -n fails on the populated image" >&2; exit 1; }
best() { printf '%s\n' "$@" | sort -n | head -1; }
o=$(best "${ours[@]}"); t=$(best "${theirs[@]}")
peak=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
files=$(find "$src" | wc -l); bytes=$(du -sb "$src" | cut -f1)
echo "source: $src ($files entries, $((bytes >> 20)) MiB), image $(( $(stat -c %s "$work/ours.img") >> 20 )) MiB"
printf 'best of %d: mkfs -p %.3fs, mkfs.xfs+mount+cp -a+umount %.3fs, ratio %.2fx, peak memory %d MiB\n' \
  "$rounds" "$o" "$t" "$(echo "$o / $t" | bc -l)" "$((peak / 1024))"
