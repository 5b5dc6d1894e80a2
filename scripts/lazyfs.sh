#!/usr/bin/env bash
# lazyfs: the FUSE file system of the power-loss test (tools/lazyfs: it keeps unsynced
# writes in memory and drops them on SIGUSR1, the "power cut"). Built from the Go module
# proxy (go.mod + go.sum pin go-fuse), cached outside the checkout as ferretdb.sh does.
# It mounts through /dev/fuse directly (root), so no fusermount or libfuse is needed.
#   scripts/lazyfs.sh build   → ~/.cache/modeldock/lazyfs/lazyfs (skipped when current)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The cache key: our module's exact contents, so a change rebuilds.
version="$(cd "$root/tools/lazyfs" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)"
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
bin="$cache/lazyfs/lazyfs"

build() {
  if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$version" ]; then
    echo "lazyfs $version already built: $bin"
    return
  fi
  local go_cmd
  go_cmd="$(bash "$root/scripts/go-toolchain.sh")"
  mkdir -p "$(dirname "$bin")"
  echo "building lazyfs $version with $("$go_cmd" version) (cached in $cache/lazyfs)"
  # Into a temporary name first: an interrupted build never leaves a binary that looks done.
  (cd "$root/tools/lazyfs" && CGO_ENABLED=0 GOTOOLCHAIN=local "$go_cmd" build -trimpath -o "$bin.tmp.$$" .)
  mv "$bin.tmp.$$" "$bin"
  echo "$version" > "$bin.version"
}

case "${1:-}" in
  build) build ;;
  *) echo "usage: $0 build"; exit 2 ;;
esac
