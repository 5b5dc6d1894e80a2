/**
 * The venv of third-party Python clients and tools (scripts/python-venv.sh, which
 * .ci/run runs). A test that needs one fails with the fix in its message when the venv
 * or the package is missing: a missing client is a failure, never a skip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const cache =
  process.env.MODELDOCK_CACHE_DIR ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'modeldock');

export const PYTHON_VENV = path.join(cache, 'python-venv');
/** NVIDIA Triton's server from the nvidia-pytriton wheel, in a venv of its own (numpy 1). */
export const TRITON_VENV = path.join(cache, 'triton-venv');

/** The venv's python, after checking that `module` imports; throws with the fix otherwise. */
export function venvPython(module: string): string {
  const python = path.join(PYTHON_VENV, 'bin', 'python');
  if (!existsSync(python)) {
    throw new Error(`no Python venv at ${PYTHON_VENV}: run \`bash scripts/python-venv.sh\``);
  }
  try {
    execFileSync(python, ['-c', `import ${module}`], { stdio: 'pipe' });
  } catch {
    throw new Error(`${module} is not installed in ${PYTHON_VENV}: run \`bash scripts/python-venv.sh\``);
  }
  return python;
}

/** An executable the venv installed (e.g. `st` for schemathesis). */
export function venvBin(name: string): string {
  return path.join(PYTHON_VENV, 'bin', name);
}

/** The directory holding the `tritonserver` wrapper (scripts/tritonserver.sh); throws with the fix when missing. */
export function tritonServerDir(): string {
  const dir = path.join(TRITON_VENV, 'bin');
  if (!existsSync(path.join(dir, 'tritonserver'))) {
    throw new Error(`no tritonserver in ${dir}: run \`bash scripts/python-venv.sh\``);
  }
  return dir;
}
