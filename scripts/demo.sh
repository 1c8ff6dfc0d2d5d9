#!/usr/bin/env bash
# Demo: build the tools, make a populated XFS image with xfskit's own
# `mkfs -p` (no root, no mount) and check it offline. If mkfs -p fails the
# demo falls back to mkfs.xfs and a kernel loop mount (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh >/dev/null
go build -o bin/ ./cmd/...
work=$(mktemp -d)
trap 'mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"; rm -rf "$work"' EXIT
img=$work/demo.img
src=$(go env GOROOT)/src/net
if bin/mkfs -q -f -d size=512m -p "$src" "$img" 2>/dev/null; then
  echo "demo: made $img with xfskit mkfs -p $src"
else
  echo "demo: xfskit mkfs -p failed; using mkfs.xfs + a loop mount"
  truncate -s 512m "$img"
  mkfs.xfs -q -f "$img"
  mkdir "$work/mnt"
  mount -o loop "$img" "$work/mnt"
  mountpoint -q "$work/mnt" || { echo "demo: mount failed" >&2; exit 1; }
  cp -a "$src" "$work/mnt/"
  umount "$work/mnt"
fi
echo "demo: bin/check $img"
bin/check "$img"
echo "demo: bin/check --json (first lines)"
bin/check --json "$img" | head -12
