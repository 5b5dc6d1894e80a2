#!/usr/bin/env bash
# The Python tools the tests drive (official clients, fuzzers), in one venv outside the
# checkout so every clone on this machine reuses it: test/python/requirements.txt lists
# them. Idempotent: pip only installs what is missing. Prints the venv's directory.
#   bash scripts/python-venv.sh        → ${MODELDOCK_CACHE_DIR:-~/.cache/modeldock}/python-venv
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
venv="$cache/python-venv"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/test/python/requirements.txt" >&2
echo "$venv"
