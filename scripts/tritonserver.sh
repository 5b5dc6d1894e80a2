#!/usr/bin/env bash
# `tritonserver` from the nvidia-pytriton wheel as a plain command, which the built-in
# `triton` serving runtime runs from the PATH on the process runtime (docs/runtimes.md).
# The wheel ships the server, its libraries and the Python backend, but not laid out to
# run by itself: this puts the wheel's libraries on the library path, points
# --backend-directory at its backends, and puts the venv first on the PATH, because the
# Python backend's stub embeds an interpreter that finds its prefix (and so the venv's
# numpy) by looking up `python3` on the PATH.
#
# scripts/install-tritonserver.sh installs it as <venv>/bin/tritonserver; every argument
# goes to the server.
set -euo pipefail
bin="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$(dirname "$bin")"
shopt -s nullglob
dists=("$venv"/lib/python3*/site-packages/pytriton/tritonserver)
if [ "${#dists[@]}" -ne 1 ] || [ ! -x "${dists[0]}/bin/tritonserver" ]; then
  echo "tritonserver: no nvidia-pytriton in $venv (see scripts/install-tritonserver.sh)" >&2
  exit 127
fi
dist="${dists[0]}"
libs="$(dirname "$(dirname "$dist")")/nvidia_pytriton.libs"
# The stub links libpython of the venv's Python; a Python built outside the system's
# library directories (pyenv, a source build) keeps it next to its own stdlib.
base_lib=""
home="$(sed -n 's/^home *= *//p' "$venv/pyvenv.cfg" 2>/dev/null || true)"
if [ -n "$home" ] && [ -d "$(dirname "$home")/lib" ]; then base_lib=":$(dirname "$home")/lib"; fi
export LD_LIBRARY_PATH="$libs$base_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$bin:$PATH"
# The Python backend passes tensors through shared memory regions (/dev/shm) that only a
# clean exit removes: a server killed at a stop's deadline, or a TEMP worker removed at
# once, leaves them behind. They are named after the server's pid (exec keeps this
# shell's), so every start removes those of servers that are gone.
shm_prefix=modeldock-triton-
for region in /dev/shm/"$shm_prefix"*; do
  owner="${region#/dev/shm/"$shm_prefix"}"
  owner="${owner%%-*}"
  if [ -n "$owner" ] && [ ! -e "/proc/$owner" ]; then rm -f "$region"; fi
done
exec "$dist/bin/tritonserver" --backend-directory="$dist/backends" --cache-directory="$dist/caches" \
  --backend-config=python,shm-region-prefix-name="$shm_prefix$$-" "$@"
