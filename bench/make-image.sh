#!/bin/bash
# Build a large kernel-made XFS image for benchmarks: mkfs.xfs, a loop mount,
# several `cp -a` copies of a real source tree (the Go toolchain by default,
# ~17k inodes each) and every on-disk form the test corpus has (directory,
# fork, attribute and symlink forms, sparse/unwritten/fragmented files,
# devices, hard links, ACLs, odd names and timestamps).
#
# It drives the same builder as the tests (internal/oracle/corpus.go) through
# `go test`, so a benchmark image and a test corpus never drift apart, and
# writes IMAGE.manifest.json (forms and the kernel's view of every file)
# next to the image. Needs root, loop devices, xfsprogs and Go.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: bench/make-image.sh [options] IMAGE

Builds IMAGE (replacing it) as a populated XFS v5 filesystem image.

options:
  -n COPIES   copies of the source tree under trees/ (default 7: 100k+ inodes)
  -s SIZE     image size, truncate(1) syntax (default 8G; the file is sparse)
  -t DIR      source tree to copy (default: `go env GOROOT`)
  -m ARGS     extra mkfs.xfs arguments, e.g. -m "-b size=1024 -i size=1024"
  -h          this help

example:
  sudo bench/make-image.sh -n 7 /var/tmp/bench.img
EOF
}

copies=7 size=8G src="" mkfs=""
while getopts "n:s:t:m:h" opt; do
	case $opt in
	n) copies=$OPTARG ;;
	s) size=$OPTARG ;;
	t) src=$OPTARG ;;
	m) mkfs=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
if [ $# -ne 1 ]; then
	usage >&2
	exit 2
fi
case $copies in '' | *[!0-9]*) echo "make-image.sh: -n wants a number, got '$copies'" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
	echo "make-image.sh: needs root (loop mounts)" >&2
	exit 2
fi
for c in go mkfs.xfs xfs_db xfs_repair mount; do
	command -v "$c" >/dev/null || { echo "make-image.sh: $c not found" >&2; exit 2; }
done
if [ -n "$src" ] && [ ! -d "$src" ]; then
	echo "make-image.sh: source tree $src is not a directory" >&2
	exit 2
fi

img=$(realpath -m "$1")
mkdir -p "$(dirname "$img")"
repo=$(cd "$(dirname "$0")/.." && pwd)

start=$(date +%s)
cd "$repo"
set +e
XFSKIT_REQUIRE_ORACLE=1 \
XFSKIT_CORPUS_OUT=$img \
XFSKIT_CORPUS_SIZE=$size \
XFSKIT_CORPUS_TREES=$copies \
XFSKIT_CORPUS_SOURCE=$src \
XFSKIT_CORPUS_MKFS=$mkfs \
	go test -count=1 -timeout 0 -v -run '^TestBuildCorpusImage$' ./internal/oracle |
	grep -v -e '^=== RUN' -e '^ok ' -e '^PASS$'
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ] || [ ! -f "$img.manifest.json" ]; then
	echo "make-image.sh: build failed" >&2
	exit 1
fi

counts=$(xfs_db -r -c 'sb 0' -c 'p icount ifree' "$img")
icount=$(awk '$1 == "icount" {print $3}' <<<"$counts")
ifree=$(awk '$1 == "ifree" {print $3}' <<<"$counts")
echo "$img: $((icount - ifree)) inodes in use, $(du -h "$img" | cut -f1) allocated," \
	"built in $(($(date +%s) - start))s"
