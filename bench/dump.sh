#!/usr/bin/env bash
# Times xfskit dump (one stream, zstd and no compression) against
# `xfsdump -l 0` of the same kernel-made image (100k+ inodes) mounted
# read-only, alternating the tools in one run after an untimed warm-up round
# of each (warm caches on both sides), and prints the best time of each,
# the ratios (xfsdump / ours: above 1.0 means dump is faster) and the
# stream sizes. Each timed run includes a sync(1) of what it wrote, since
# dump fsyncs its streams and xfsdump does not. A dump -z none to /dev/null
# is timed too: it shows how much of the -z none time the disk takes.
# Needs root, loop devices, xfsprogs, xfsdump and Go.
# usage: bench/dump.sh [IMAGE] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-${XFSKIT_BENCH_DIR:-/var/tmp/xfskit-bench}/bench-100k.img}
rounds=${2:-3}
for c in go xfsdump mount bc; do
	command -v "$c" >/dev/null || { echo "dump.sh: $c not found" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "dump.sh: needs root (loop mount for xfsdump)" >&2; exit 2; }
mkdir -p "$(dirname "$img")"
if [ ! -f "$img" ]; then
	bench/make-image.sh "$img"
fi
img=$(realpath "$img")
go build -o bin/ ./cmd/dump

# Outside the module: a mounted Go tree under it would be seen by go vet ./...
work=$(mktemp -d "${TMPDIR:-/var/tmp}/xfskit-dump-bench.XXXXXX")
mnt=$work/mnt
mkdir "$mnt"
cleanup() {
	if mountpoint -q "$mnt"; then umount "$mnt"; fi
	rm -rf "$work"
}
trap cleanup EXIT
# nouuid: other benchmarks or tests may have the same image mounted.
mount -t xfs -o loop,ro,nouuid "$img" "$mnt"
mountpoint -q "$mnt" || { echo "dump.sh: $mnt is not mounted" >&2; exit 1; }

now() { date +%s.%N; }
# run CMD...: runs CMD then sync (unless NOSYNC is set); prints the seconds taken and the CPU
# seconds (user+system) the command used, which a busy machine inflates
# less than wall time.
run() {
	local t0 t1
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >/dev/null 2>"$work/last.log" || { cat "$work/last.log" >&2; exit 1; }
	[ -n "${NOSYNC:-}" ] || sync
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc) $(awk '{print $1 + $2}' "$work/cpu")"
}
ours() { # ours COMPRESSION
	rm -f "$work/ours.$1"
	run bin/dump -q --inventory "$work/inv.db" -z "$1" -f "$work/ours.$1" "$img"
}
null() {
	NOSYNC=1 run bin/dump -q --inventory "$work/inv.db" -z none -f /dev/null "$img"
}
theirs() {
	rm -f "$work/xfsdump.out" # xfsdump will not overwrite a dump
	run xfsdump -l 0 -L bench -M bench -f "$work/xfsdump.out" "$mnt"
}

echo "warm-up round (untimed)"
ours zstd >/dev/null
ours none >/dev/null
theirs >/dev/null
z=() n=() x=() d=() cz=() cn=() cx=() dn=()
for r in $(seq 1 "$rounds"); do
	read -r w c <<<"$(ours zstd)"; z+=("$w"); cz+=("$c")
	read -r w c <<<"$(ours none)"; n+=("$w"); cn+=("$c")
	read -r w c <<<"$(null)"; d+=("$w"); dn+=("$c")
	read -r w c <<<"$(theirs)"; x+=("$w"); cx+=("$c")
	printf 'round %d: dump -z zstd %.2fs (cpu %.2fs)  dump -z none %.2fs (cpu %.2fs)  xfsdump %.2fs (cpu %.2fs)  [dump -z none to /dev/null %.2fs (cpu %.2fs)]\n' \
		"$r" "${z[-1]}" "${cz[-1]}" "${n[-1]}" "${cn[-1]}" "${x[-1]}" "${cx[-1]}" "${d[-1]}" "${dn[-1]}"
done
best() { printf '%s\n' "$@" | sort -n | head -1; }
bz=$(best "${z[@]}") bn=$(best "${n[@]}") bx=$(best "${x[@]}")
ccz=$(best "${cz[@]}") ccn=$(best "${cn[@]}") ccx=$(best "${cx[@]}")
size() { stat -c %s "$1"; }
counts=$(xfs_db -r -c 'sb 0' -c 'p icount ifree' "$img")
inodes=$(($(awk '$1 == "icount" {print $3}' <<<"$counts") - $(awk '$1 == "ifree" {print $3}' <<<"$counts")))
echo "image: $img ($inodes inodes in use, $(du -h "$img" | cut -f1) allocated); $(nproc) CPUs"
printf 'best of %d: dump -z zstd %.2fs, dump -z none %.2fs, xfsdump -l 0 %.2fs\n' "$rounds" "$bz" "$bn" "$bx"
printf 'speed-up over xfsdump: zstd %.2fx, none %.2fx\n' "$(echo "$bx / $bz" | bc -l)" "$(echo "$bx / $bn" | bc -l)"
printf 'least CPU (user+system): dump -z zstd %.2fs, dump -z none %.2fs, xfsdump %.2fs\n' "$ccz" "$ccn" "$ccx"
printf 'dump -z none to /dev/null (no disk writes): best %.2fs, least CPU %.2fs\n' "$(best "${d[@]}")" "$(best "${dn[@]}")"
printf 'stream sizes: dump -z zstd %d bytes, dump -z none %d bytes, xfsdump %d bytes (zstd/xfsdump %.3f)\n' \
	"$(size "$work/ours.zstd")" "$(size "$work/ours.none")" "$(size "$work/xfsdump.out")" \
	"$(echo "$(size "$work/ours.zstd") / $(size "$work/xfsdump.out")" | bc -l)"
