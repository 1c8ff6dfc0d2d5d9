#!/usr/bin/env bash
# Times xfskit restore against xfsrestore on the same data: the kernel-made
# benchmark image (100k+ inodes) is dumped by xfskit dump (one stream, zstd
# and uncompressed) and by `xfsdump -l 0` (of the image mounted read-only);
# each dump is then restored into a freshly made XFS scratch filesystem,
# the tools alternating, after an untimed warm-up round of each (warm caches
# for the streams on both sides). Every timed run includes a sync(1) of
# what it wrote. Prints the best wall time of each, the ratios (xfsrestore /
# ours: above 1.0 means restore is faster), the CPU time (user+sys) each
# used, and checks that all restored the same number of inodes.
# Needs root, loop devices, xfsprogs, xfsdump and Go.
# usage: bench/restore.sh [IMAGE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-${XFSKIT_BENCH_DIR:-/var/tmp/xfskit-bench}/bench-100k.img}
rounds=${2:-3}
for c in go xfsdump xfsrestore mkfs.xfs mount bc; do
	command -v "$c" >/dev/null || { echo "restore.sh: $c not found" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "restore.sh: needs root (loop mounts)" >&2; exit 2; }
mkdir -p "$(dirname "$img")"
if [ ! -f "$img" ]; then
	bench/make-image.sh "$img"
fi
img=$(realpath "$img")

# Outside the module: a mounted Go tree under it would be seen by go vet ./...
work=$(mktemp -d "${TMPDIR:-/var/tmp}/xfskit-restore-bench.XXXXXX")
mnt=$work/src scratch=$work/scratch
mkdir "$mnt" "$scratch" "$work/bin"
# unmount MNT: retries while something (xfsdump's children, udev) still
# holds it.
unmount() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		mountpoint -q "$1" || return 0
		umount "$1" 2>/dev/null && return 0
		sleep 0.5
	done
	umount -l "$1"
}
cleanup() {
	for m in "$mnt" "$scratch"; do
		unmount "$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/bin/" ./cmd/dump ./cmd/restore

echo "dumping $img with both tools (untimed)"
"$work/bin/dump" -q --inventory "$work/inv.db" -f "$work/ours.zstd" "$img"
"$work/bin/dump" -q --inventory "$work/inv.db" -z none -f "$work/ours.none" "$img"
# nouuid: other benchmarks or tests may have the same image mounted.
mount -t xfs -o loop,ro,nouuid "$img" "$mnt"
mountpoint -q "$mnt" || { echo "restore.sh: $mnt is not mounted" >&2; exit 1; }
xfsdump -l 0 -L bench -M bench -f "$work/xfsdump.out" "$mnt" >/dev/null 2>"$work/xfsdump.log" ||
	{ cat "$work/xfsdump.log" >&2; exit 1; }
unmount "$mnt"

# The scratch filesystem: as large as the source, made anew for every run
# so that both tools write into the same empty filesystem.
truncate -s "$(stat -c %s "$img")" "$work/scratch.img"
fresh() {
	unmount "$scratch"
	mkfs.xfs -q -f "$work/scratch.img"
	mount -t xfs -o loop "$work/scratch.img" "$scratch"
	mountpoint -q "$scratch" || { echo "restore.sh: $scratch is not mounted" >&2; exit 1; }
	mkdir "$scratch/t"
}

now() { date +%s.%N; }
# run CMD...: runs CMD in a fresh scratch filesystem, then sync; prints the
# seconds taken and the CPU seconds CMD used.
run() {
	local t0 t1
	fresh
	sync
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >/dev/null 2>"$work/last.log" || { cat "$work/last.log" >&2; exit 1; }
	sync
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc) $(awk '{print $1 + $2}' "$work/cpu")"
}
ours() { run "$work/bin/restore" -q -f "$work/ours.$1" "$scratch/t"; }
theirs() { run xfsrestore -v silent -f "$work/xfsdump.out" "$scratch/t"; }
inodes() { df --output=iused "$scratch" | tail -1; }

echo "warm-up round (untimed)"
ours zstd >/dev/null
n_zstd=$(inodes)
ours none >/dev/null
n_none=$(inodes)
theirs >/dev/null
n_theirs=$(inodes)
z=() n=() x=() zc=() nc=() xc=()
for r in $(seq 1 "$rounds"); do
	read -r w c < <(ours zstd); z+=("$w"); zc+=("$c")
	read -r w c < <(ours none); n+=("$w"); nc+=("$c")
	read -r w c < <(theirs); x+=("$w"); xc+=("$c")
	printf 'round %d: restore (zstd) %.2fs  restore (none) %.2fs  xfsrestore %.2fs\n' "$r" "${z[-1]}" "${n[-1]}" "${x[-1]}"
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
bz=$(best "${z[@]}") bn=$(best "${n[@]}") bx=$(best "${x[@]}")
echo "image: $img; $(nproc) CPUs; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "inodes in the scratch filesystem after restore: ours (zstd) $n_zstd, ours (none) $n_none, xfsrestore $n_theirs"
printf 'stream sizes: xfskit zstd %d bytes, xfskit none %d bytes, xfsdump %d bytes\n' \
	"$(stat -c %s "$work/ours.zstd")" "$(stat -c %s "$work/ours.none")" "$(stat -c %s "$work/xfsdump.out")"
printf 'best of %d (wall, with sync): restore zstd %.2fs, restore none %.2fs, xfsrestore %.2fs\n' "$rounds" "$bz" "$bn" "$bx"
printf 'speed-up over xfsrestore: zstd %.2fx, none %.2fx\n' "$(echo "$bx / $bz" | bc -l)" "$(echo "$bx / $bn" | bc -l)"
printf 'CPU seconds (user+sys), least of %d: restore zstd %.2f, restore none %.2f, xfsrestore %.2f\n' "$rounds" \
	"$(best "${zc[@]}")" "$(best "${nc[@]}")" "$(best "${xc[@]}")"
