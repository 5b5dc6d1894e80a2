#!/usr/bin/env bash
# FerretDB 1.24.2 speaks the MongoDB wire protocol on top of SQLite; the MongoDB store
# is tested against it because no mongod exists here. It is built from the Go module
# proxy inside our own module (tools/ferretdb): `go install …@version` of FerretDB
# builds a binary that panics at start.
#   scripts/ferretdb.sh build               → ~/.cache/modeldock/ferretdb/ferretdb (skipped when present)
#   scripts/ferretdb.sh start PORT DATADIR  → runs it in the foreground on 127.0.0.1:PORT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="v1.24.2-embedded-1"
# Outside the checkout, so every clone on this machine (CI runs in fresh clones) reuses it.
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
bin="$cache/ferretdb/ferretdb"

build() {
  if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$version" ]; then
    echo "ferretdb $version already built: $bin"
    return
  fi
  command -v go >/dev/null || { echo "Go is needed to build FerretDB (apt-get install golang or use the Go toolchain)"; exit 1; }
  mkdir -p "$(dirname "$bin")"
  echo "building ferretdb $version (first time only; cached in $cache/ferretdb)"
  (cd "$root/tools/ferretdb" && CGO_ENABLED=0 go build -trimpath -o "$bin" .)
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
