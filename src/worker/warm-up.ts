/**
 * ONNX Runtime's first session in a process costs 25-35 ms more than any later one (its
 * environment, thread pools and kernel registry are set up once; measured: first create
 * of m-131 24-33 ms, the next 1 ms). The worker pays that at boot, before it says ready,
 * so no load step waits for it, and a warm-pool worker has it behind it before it is
 * ever handed out. Running a real graph also makes boot a self-test: a worker whose
 * runtime cannot compute y = x refuses to start instead of failing its first load.
 */
import ort from 'onnxruntime-node';
import { sessionOptions } from './model-store.js';

/**
 * An 82-byte ONNX model, y = Identity(x) over one float, opset 13, written with python3's
 * onnx.helper: make_model(make_graph([make_node('Identity', ['x'], ['y'])], 'warm_up',
 * [float x[1]], [float y[1]])) and checked with onnx.checker.
 */
const IDENTITY_MODEL = Buffer.from(
  'CAgSCW1vZGVsZG9jazo9ChAKAXgSAXkiCElkZW50aXR5Egd3YXJtX3VwWg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQDQ==',
  'base64',
);

/** Create, run and release a session of the identity model; resolves with the time it took (ms). */
export async function warmUpOnnxRuntime(threads: number): Promise<number> {
  const started = performance.now();
  // The same options as a model's load, so what is warmed is what the loads use.
  const session = await ort.InferenceSession.create(IDENTITY_MODEL, sessionOptions(threads));
  try {
    const probe = 0.5;
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.of(probe), [1]) });
    if (y?.data[0] !== probe) {
      throw new Error(`ONNX Runtime computed Identity(${probe}) = ${String(y?.data[0])}`);
    }
  } finally {
    await session.release();
  }
  return Math.round((performance.now() - started) * 100) / 100;
}
