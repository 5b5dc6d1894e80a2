#!/usr/bin/env bash
# FerretDB 1.24.2 speaks the MongoDB wire protocol on top of SQLite; the MongoDB store
# is tested against it because no mongod exists here. It is built from the Go module
# proxy inside our own module (tools/ferretdb, go.mod + go.sum pin every dependency).
# FerretDB's own cmd/ferretdb panics at start when built from the proxy, by `go install
# …@v1.24.2` and by `go build` from our module alike (its build/version package wants
# version files only its release build generates), so tools/ferretdb/main.go runs the
# same server through FerretDB's embeddable package, with the upstream flag names.
#   scripts/ferretdb.sh build               → ~/.cache/modeldock/ferretdb/ferretdb (skipped when present)
#   scripts/ferretdb.sh start PORT DATADIR  → runs it in the foreground on 127.0.0.1:PORT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# The cache key: FerretDB's version and our module's exact contents, so a change to
# tools/ferretdb rebuilds instead of silently reusing an old binary.
version="v1.24.2-$(cd "$root/tools/ferretdb" && cat go.mod go.sum main.go | sha256sum | cut -c1-12)"
# Outside the checkout, so every clone on this machine (CI runs in fresh clones) reuses it.
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
bin="$cache/ferretdb/ferretdb"

# Go 1.24 or newer (go.mod's tool directive), found or fetched once by go-toolchain.sh.
find_go() { bash "$root/scripts/go-toolchain.sh"; }

build() {
  if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$version" ]; then
    echo "ferretdb $version already built: $bin"
    return
  fi
  local go_cmd
  go_cmd="$(find_go)"
  mkdir -p "$(dirname "$bin")"
  echo "building ferretdb $version with $("$go_cmd" version) (first time only; cached in $cache/ferretdb)"
  # Into a temporary name first: an interrupted build never leaves a binary that looks done.
  (cd "$root/tools/ferretdb" && CGO_ENABLED=0 GOTOOLCHAIN=local "$go_cmd" build -trimpath -o "$bin.tmp" .)
  mv "$bin.tmp" "$bin"
  echo "$version" > "$bin.version"
  "$bin" --version
}

case "${1:-}" in
  build) build ;;
  start)
    port="${2:?port}"; dir="${3:?data dir}"
    build >/dev/null
    mkdir -p "$dir"
    exec "$bin" --handler=sqlite --sqlite-url="file:$dir/" --listen-addr="127.0.0.1:$port" \
      --telemetry=disable --log-level=warn
    ;;
  *) echo "usage: $0 build | start PORT DATADIR"; exit 2 ;;
esac
