#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: the XFS tools
# used as oracles (never as dependencies of xfskit itself) and Go modules.
set -euo pipefail
need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v xfsdump >/dev/null || need+=(xfsdump)
command -v setfattr >/dev/null || need+=(attr)
command -v setfacl >/dev/null || need+=(acl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
go mod download
