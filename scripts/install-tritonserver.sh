#!/usr/bin/env bash
# Makes the tritonserver of an installed nvidia-pytriton wheel runnable as
# `<venv>/bin/tritonserver` (scripts/tritonserver.sh): copies the Python backend's stub
# for the venv's Python version into the wheel's backends/python/, where the server
# looks for it, and installs the wrapper. Idempotent. scripts/python-venv.sh runs it for
# the tests' venv; an operator runs it for theirs (docs/runtimes.md).
#   bash scripts/install-tritonserver.sh <venv>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:?usage: install-tritonserver.sh <venv>}"
python="$venv/bin/python"
# find_spec locates the package without importing it (its own imports need the
# dependencies the tests leave out: see test/python/requirements-triton.txt).
read -r dist version < <("$python" -c '
import importlib.util, os, sys
spec = importlib.util.find_spec("pytriton")
if spec is None: sys.exit("nvidia-pytriton is not installed in " + sys.prefix)
print(os.path.join(os.path.dirname(spec.origin), "tritonserver"), "%d.%d" % sys.version_info[:2])
')
stub="$dist/python_backend_stubs/$version/triton_python_backend_stub"
[ -x "$stub" ] || { echo "nvidia-pytriton has no Python backend stub for Python $version" >&2; exit 1; }
target="$dist/backends/python/triton_python_backend_stub"
cmp -s "$stub" "$target" || install -m 0755 "$stub" "$target"
cmp -s "$root/scripts/tritonserver.sh" "$venv/bin/tritonserver" ||
  install -m 0755 "$root/scripts/tritonserver.sh" "$venv/bin/tritonserver"
