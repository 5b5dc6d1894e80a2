#!/usr/bin/env bash
# The Python tools the tests drive (official clients, fuzzers), in one venv outside the
# checkout so every clone on this machine reuses it: test/python/requirements.txt lists
# them. Idempotent: pip only installs what is missing. Prints the venv's directory.
#   bash scripts/python-venv.sh        → ${MODELDOCK_CACHE_DIR:-~/.cache/modeldock}/python-venv
# (and triton-venv beside it: NVIDIA Triton's server, bin/tritonserver)
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
# Triton's server (nvidia-pytriton) in a venv of its own: its Python backend needs numpy 1
# (test/python/requirements-triton.txt says why). Its bin/ holds the `tritonserver` the
# built-in triton serving runtime runs.
triton="$cache/triton-venv"
if [ ! -x "$triton/bin/python" ]; then python3 -m venv "$triton" >&2; fi
"$triton/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  -r "$root/test/python/requirements-triton.txt" >&2
bash "$root/scripts/install-tritonserver.sh" "$triton" >&2
echo "$venv"
