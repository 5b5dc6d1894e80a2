/**
 * Real ONNX models generated for tests, written by Debian's python3-onnx (apt packages
 * python3-onnx and python3-numpy; .ci/run installs them). Generated once into
 * .cache/test-models (gitignored) and reused:
 * - `big-<mib>`: a MatMul with an N×N FP32 weight matrix of about <mib> MiB, for tests
 *   that need weight (memory on load and unload, load time);
 * - `datatypes`: one input and one output per JSON datatype the worker must speak
 *   (FP32, FP64, INT32, INT64, BOOL), each output a known function of its input.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';

export const TEST_MODELS_DIR = path.join(REPO_ROOT, '.cache', 'test-models');

const BIG_MATMUL = `
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

const DATATYPES = `
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
out = sys.argv[1]
def io(name, t): return helper.make_tensor_value_info(name, t, ["batch", 2])
consts = [
    numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    numpy_helper.from_array(np.array(2.0, np.float64), "two"),
    numpy_helper.from_array(np.array(1, np.int32), "one"),
    numpy_helper.from_array(np.array(3, np.int64), "three"),
]
nodes = [
    helper.make_node("Mul", ["f32", "half"], ["f32_half"]),
    helper.make_node("Mul", ["f64", "two"], ["f64_double"]),
    helper.make_node("Add", ["i32", "one"], ["i32_plus_one"]),
    helper.make_node("Mul", ["i64", "three"], ["i64_triple"]),
    helper.make_node("Not", ["b"], ["b_not"]),
]
graph = helper.make_graph(nodes, "datatypes",
    [io("f32", T.FLOAT), io("f64", T.DOUBLE), io("i32", T.INT32), io("i64", T.INT64), io("b", T.BOOL)],
    [io("f32_half", T.FLOAT), io("f64_double", T.DOUBLE), io("i32_plus_one", T.INT32),
     io("i64_triple", T.INT64), io("b_not", T.BOOL)],
    consts)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, out)
`;

/** Write `<TEST_MODELS_DIR>/<id>/model.onnx` with a generator script unless it exists. */
async function ensureGenerated(id: string, script: string, args: string[] = []): Promise<string> {
  const file = path.join(TEST_MODELS_DIR, id, 'model.onnx');
  if (existsSync(file)) return id;
  await mkdir(path.dirname(file), { recursive: true });
  // Written aside then renamed, so an interrupted run never leaves a truncated model.
  const partial = `${file}.${process.pid}.partial`;
  execFileSync('/usr/bin/python3', ['-c', script, ...args, partial], { stdio: 'inherit' });
  await rename(partial, file);
  return id;
}

/** A model of about `mib` MiB of FP32 weights: `big-<mib>`. Returns its id. */
export async function ensureBigModel(mib: number): Promise<string> {
  const n = Math.round(Math.sqrt((mib * 1024 * 1024) / 4));
  return ensureGenerated(`big-${mib}`, BIG_MATMUL, [String(n)]);
}

/** The `datatypes` model (inputs f32, f64, i32, i64, b; shape [batch, 2]). Returns its id. */
export async function ensureDatatypesModel(): Promise<string> {
  return ensureGenerated('datatypes', DATATYPES);
}

const HOSTILE = `
import sys, onnx
from onnx import helper, TensorProto as T
out = sys.argv[1]
nodes = [
    helper.make_node("Add", ["a", "b"], ["sum"]),
    helper.make_node("Identity", ["u8"], ["u8_out"]),
    helper.make_node("Identity", ["i8"], ["i8_out"]),
    helper.make_node("Identity", ["i16"], ["i16_out"]),
]
graph = helper.make_graph(nodes, "hostile",
    [helper.make_tensor_value_info("a", T.FLOAT, ["rows", "cols"]),
     helper.make_tensor_value_info("b", T.FLOAT, ["rows2", "cols2"]),
     helper.make_tensor_value_info("u8", T.UINT8, ["n"]),
     helper.make_tensor_value_info("i8", T.INT8, ["n"]),
     helper.make_tensor_value_info("i16", T.INT16, ["n"])],
    [helper.make_tensor_value_info("sum", T.FLOAT, None),
     helper.make_tensor_value_info("u8_out", T.UINT8, ["n"]),
     helper.make_tensor_value_info("i8_out", T.INT8, ["n"]),
     helper.make_tensor_value_info("i16_out", T.INT16, ["n"])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, out)
`;

/**
 * The `hostile` model, for attacks on tensor decoding: `a` + `b` (FP32, both dimensions
 * dynamic, so ONNX Runtime itself refuses shapes that do not broadcast) and identities on
 * `u8`, `i8`, `i16` (UINT8, INT8, INT16, shape [n]). Returns its id.
 */
export async function ensureHostileModel(): Promise<string> {
  return ensureGenerated('hostile', HOSTILE);
}

const DOUBLER = `
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
out = sys.argv[1]
io = lambda name: helper.make_tensor_value_info(name, T.FLOAT, ["batch", "n"])
graph = helper.make_graph(
    [helper.make_node("Mul", ["x", "two"], ["twice"]), helper.make_node("Add", ["x", "one"], ["plus_one"])],
    "doubler", [io("x")], [io("twice"), io("plus_one")],
    [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
     numpy_helper.from_array(np.array(1.0, np.float32), "one")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, out)
`;

/**
 * The `doubler` model, for batching: `twice` = 2x and `plus_one` = x + 1 of its FP32
 * input `x` [batch, n] (n dynamic too, so requests of other widths exist). Exact for
 * integers below 2^23, so every answer can be checked against its own request.
 */
export async function ensureDoublerModel(): Promise<string> {
  return ensureGenerated('doubler', DOUBLER);
}

const GATHER = `
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto as T
out = sys.argv[1]
graph = helper.make_graph(
    [helper.make_node("Gather", ["table", "index"], ["value"], axis=0)], "gather",
    [helper.make_tensor_value_info("index", T.INT64, ["batch"])],
    [helper.make_tensor_value_info("value", T.FLOAT, ["batch"])],
    [numpy_helper.from_array(np.arange(10, dtype=np.float32) * 1.5, "table")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, out)
`;

/**
 * The `gather` model: `value` = 1.5 × `index` (INT64 [batch]) for indices 0…9; ONNX
 * Runtime refuses an index out of that range while running, the model error batching
 * must keep to the request that sent it.
 */
export async function ensureGatherModel(): Promise<string> {
  return ensureGenerated('gather', GATHER);
}
