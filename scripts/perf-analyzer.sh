#!/usr/bin/env bash
# NVIDIA's perf_analyzer (Triton's load generator), for bench/perf-analyzer.bench.ts.
# No current package ships it for this machine (PyPI's perf-analyzer is a placeholder),
# but the manylinux wheel of tritonclient 2.41.1 carries the binary; it needs libb64
# (Debian: libb64-0d; install it before `npm run bench`, CI runs no benchmark) and CUDA's runtime library (PyPI:
# nvidia-cuda-runtime-cu12, no GPU needed for HTTP/gRPC load). Installed outside the
# checkout, idempotent; prints the path of a wrapper that runs it.
#   bash scripts/perf-analyzer.sh   → ${MODELDOCK_CACHE_DIR:-~/.cache/modeldock}/perf-analyzer/perf_analyzer
set -euo pipefail
cache="${MODELDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldock}"
dir="$cache/perf-analyzer"
wrapper="$dir/perf_analyzer"
if [ ! -x "$wrapper" ]; then
  mkdir -p "$dir"
  [ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    'nvidia-cuda-runtime-cu12==12.9.79' >&2
  "$dir/venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux1_x86_64 -d "$dir/wheel" 'tritonclient==2.41.1' >&2
  "$dir/venv/bin/python" - "$dir" <<'PY'
import glob, os, sys, zipfile
directory = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(directory, "wheel", "tritonclient-2.41.1-*.whl"))[0])
target = os.path.join(directory, "perf_analyzer.bin")
with open(target, "wb") as out:
    out.write(wheel.read("tritonclient-2.41.1.data/data/bin/perf_analyzer"))
os.chmod(target, 0o755)
PY
  cudart="$(dirname "$(find "$dir/venv" -name 'libcudart.so.12' | head -1)")"
  cat > "$wrapper" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$cudart\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/perf_analyzer.bin" "\$@"
SH
  chmod +x "$wrapper"
fi
"$wrapper" --version >/dev/null 2>&1 || "$wrapper" 2>&1 | grep -q 'Usage' || {
  echo "perf_analyzer does not run: is libb64-0d installed (apt-get install libb64-0d)?" >&2
  exit 1
}
echo "$wrapper"
