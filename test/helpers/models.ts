/**
 * Large real ONNX models for tests that need weight (memory on load/unload): a MatMul
 * with an N×N FP32 weight matrix, written by Debian's python3-onnx. Generated once into
 * .cache/test-models (gitignored) and reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';

export const TEST_MODELS_DIR = path.join(REPO_ROOT, '.cache', 'test-models');

const SCRIPT = `
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
n, out = int(sys.argv[1]), sys.argv[2]
w = np.random.RandomState(7).standard_normal((n, n)).astype(np.float32) / np.sqrt(n)
graph = helper.make_graph(
    [helper.make_node("MatMul", ["x", "w"], ["y"])], "big_matmul",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
    [numpy_helper.from_array(w, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, out)
`;

/**
 * A model of about `mib` MiB of weights: `<TEST_MODELS_DIR>/big-<mib>/model.onnx`.
 * Returns its id (the directory name).
 */
export async function ensureBigModel(mib: number): Promise<string> {
  const id = `big-${mib}`;
  const file = path.join(TEST_MODELS_DIR, id, 'model.onnx');
  if (existsSync(file)) return id;
  await mkdir(path.dirname(file), { recursive: true });
  const n = Math.round(Math.sqrt((mib * 1024 * 1024) / 4));
  execFileSync('/usr/bin/python3', ['-c', SCRIPT, String(n), file], { stdio: 'inherit' });
  return id;
}
