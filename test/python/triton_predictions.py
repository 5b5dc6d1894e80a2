"""Predictions of one model through NVIDIA's tritonclient, from several servers at once,
so a test can compare them: the router (HTTP with binary or JSON tensors, gRPC) and the
server behind it called directly. Prints one JSON object, per target the labels and
probabilities the client decoded (test/e2e/runtime-triton.test.ts checks it).

    python triton_predictions.py <model> <records.jsonl> <count> <target>...

A target is <kind>=<host:port> with kind http-binary, http-json or grpc. HTTP calls carry
the worker secret in MODELDOCK_WORKER_SECRET, when set: the guard in front of a server
called directly asks for it (the router drops it).
"""
import json
import os
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

model, records_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(records_path) as f:
    records = [json.loads(line) for _, line in zip(range(count), f)]
pixels = np.array([r["inputs"]["pixels"] for r in records], dtype=np.float32)


def infer(kind, address):
    module = grpcclient if kind == "grpc" else httpclient
    client = module.InferenceServerClient(url=address)
    tensor = module.InferInput("pixels", list(pixels.shape), "FP32")
    if kind == "grpc":
        tensor.set_data_from_numpy(pixels)
        outputs = [module.InferRequestedOutput(name) for name in ("label", "probabilities")]
    else:
        binary = kind == "http-binary"
        tensor.set_data_from_numpy(pixels, binary_data=binary)
        outputs = [module.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    secret = os.environ.get("MODELDOCK_WORKER_SECRET")
    headers = {"x-modeldock-worker-secret": secret} if secret and kind != "grpc" else None
    result = client.infer(model, [tensor], outputs=outputs, headers=headers)
    return {
        "labels": result.as_numpy("label").tolist(),
        "probabilities": result.as_numpy("probabilities").tolist(),
    }


report = {"truth": [r["label"] for r in records]}
for target in sys.argv[4:]:
    kind, address = target.split("=", 1)
    report[target] = infer(kind, address)
print(json.dumps(report))
