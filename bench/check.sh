#!/usr/bin/env bash
# Times xfskit check against xfs_repair -n on a kernel-made image with 100k+
# inodes, alternating the two in one run, and prints the ratio (ours/theirs:
# below 1.0 means check is faster). Needs root, loop devices and xfsprogs.
# usage: bench/check.sh [IMAGE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-${XFSKIT_BENCH_DIR:-/var/tmp/xfskit-bench}/bench-100k.img}
rounds=${2:-3}
mkdir -p "$(dirname "$img")"
if [ ! -f "$img" ]; then
  if [ -x bench/make-image.sh ]; then
    bench/make-image.sh "$img"
  else
    # 7 copies of the Go tree: ~117k inodes.
    truncate -s 8G "$img"; mkfs.xfs -q -f "$img"
    mnt=$(mktemp -d); mount -o loop "$img" "$mnt"
    trap 'mountpoint -q "$mnt" && umount "$mnt"; rmdir "$mnt"' EXIT
    mountpoint -q "$mnt"
    for i in 1 2 3 4 5 6 7; do cp -a "$(go env GOROOT)" "$mnt/tree$i"; done
    umount "$mnt"
  fi
fi
go build -o bin/ ./cmd/check
ours=(); theirs=()
now() { date +%s.%N; }
for r in $(seq 1 "$rounds"); do
  t0=$(now); bin/check -q "$img" >/dev/null; t1=$(now)
  xfs_repair -n "$img" >/dev/null 2>&1; t2=$(now)
  ours+=("$(echo "$t1 - $t0" | bc)"); theirs+=("$(echo "$t2 - $t1" | bc)")
  echo "round $r: check ${ours[-1]}s  xfs_repair -n ${theirs[-1]}s"
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
o=$(best "${ours[@]}"); t=$(best "${theirs[@]}")
inodes=$(bin/check --json "$img" | grep '"inodes"' | tr -dc 0-9)
echo "image: $img ($inodes inodes)"
printf 'best of %d: check %.3fs, xfs_repair -n %.3fs, ratio %.2fx\n' "$rounds" "$o" "$t" "$(echo "$o / $t" | bc -l)"
