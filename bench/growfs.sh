#!/usr/bin/env bash
# Times xfskit growfs against xfs_growfs (loop mount + grow + umount) on
# copies of the same image, alternating the two in one run, and prints the
# best wall and CPU (user+sys) times and their ratio (ours/theirs: below 1.0
# means growfs is faster). Needs root, loop devices and xfsprogs. Run it
# under `flock /var/tmp/xfskit-bench.lock` so benchmarks never overlap.
# growfs extends the file itself (--size); the kernel's copy is extended
# with truncate first, outside the timing.
# usage: bench/growfs.sh [FROM_SIZE] [TO_SIZE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
from=${1:-4g}; to=${2:-1t}; rounds=${3:-3}
dir=${XFSKIT_BENCH_DIR:-/var/tmp/xfskit-bench}/growfs
mkdir -p "$dir"
base=$dir/base.img; img=$dir/work.img; mnt=$dir/mnt
mkdir -p "$mnt"
trap 'mountpoint -q "$mnt" && umount "$mnt"; rm -f "$img" "$img.xfskit-undo"' EXIT
rm -f "$base"; truncate -s "$from" "$base"; mkfs.xfs -q -f "$base"
go build -o bin/ ./cmd/growfs
tm=$(mktemp)
# run LABEL CMD...: appends "wall cpu" of CMD to LABEL's list.
measure() { /usr/bin/time -f '%e %U %S' -o "$tm" "$@" >/dev/null; awk '{printf "%s %.2f\n", $1, $2+$3}' "$tm"; }
kernel() { mount -o loop "$img" "$mnt" && mountpoint -q "$mnt" && xfs_growfs "$mnt" && umount "$mnt"; }
export -f kernel; export img mnt
ours=(); theirs=()
for r in $(seq 1 "$rounds"); do
  cp --sparse=always "$base" "$img"
  o=$(measure bin/growfs -q --size "$to" "$img")
  cp --sparse=always "$base" "$img"; truncate -s "$to" "$img"
  k=$(measure bash -c kernel)
  ours+=("$o"); theirs+=("$k")
  echo "round $r: growfs ${o% *}s wall ${o#* }s cpu   xfs_growfs+mount ${k% *}s wall ${k#* }s cpu"
done
bw() { printf '%s\n' "${@:2}" | awk -v f="$1" '{print $f}' | sort -n | head -1; }
ow=$(bw 1 "${ours[@]}"); oc=$(bw 2 "${ours[@]}"); kw=$(bw 1 "${theirs[@]}"); kc=$(bw 2 "${theirs[@]}")
ags=$(xfs_db -r -c 'sb 0' -c 'p agcount' "$img" | awk '{print $3}')
echo "grow $from -> $to ($ags AGs after)"
printf 'best of %d: growfs %.2fs wall %.2fs cpu; mount+xfs_growfs+umount %.2fs wall %.2fs cpu; wall ratio %.2fx, cpu ratio %.2fx\n' \
  "$rounds" "$ow" "$oc" "$kw" "$kc" "$(echo "$ow / $kw" | bc -l)" "$(echo "($oc+0.001) / ($kc+0.001)" | bc -l)"
