#!/usr/bin/env bash
# Prints the path of a Go 1.24 or newer (the tools/* modules use go.mod's tool directive
# and Go 1.24 toolchains). Debian bookworm only packages 1.19, so when no recent enough
# `go` is on PATH the toolchain is fetched once from the Go module proxy (it is published
# there as the module golang.org/toolchain) into the cache outside the checkout.
set -euo pipefail
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
toolchain="go1.26.8"
if command -v go >/dev/null; then
  minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
  if [ "${minor:-0}" -ge 24 ] 2>/dev/null; then command -v go; exit 0; fi
fi
dir="$cache/go-toolchain/$toolchain"
if [ ! -x "$dir/bin/go" ]; then
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;; esac
  proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
  zip="$cache/go-toolchain/$toolchain.zip" unpacked="$cache/go-toolchain/unpacked"
  echo "no Go >= 1.24 on PATH: fetching $toolchain from $proxy" >&2
  mkdir -p "$cache/go-toolchain"
  curl -fsSL -o "$zip" "$proxy/golang.org/toolchain/@v/v0.0.1-$toolchain.linux-$arch.zip"
  rm -rf "$unpacked" && mkdir -p "$unpacked"
  unzip -q "$zip" -d "$unpacked"
  rm -rf "$dir" && mv "$unpacked/golang.org/toolchain@v0.0.1-$toolchain.linux-$arch" "$dir"
  rm -rf "$unpacked" "$zip"
  chmod +x "$dir/bin/"* "$dir/pkg/tool/"*/* 2>/dev/null || true
fi
echo "$dir/bin/go"
