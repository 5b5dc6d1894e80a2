"""Predictions of a model through NVIDIA's tritonclient, HTTP and gRPC, as a Triton user
calls: HTTP with the client's defaults (binary tensors in and out), binary outputs named
one by one, JSON inputs with binary outputs, all JSON, a gzip-compressed binary request,
and gRPC. Prints one JSON object {case: [predictions]} on stdout
(test/e2e/runtime-mlserver.test.ts compares them with the server's own JSON answers).

    python tritonclient_predict.py <http host:port> <grpc host:port> <model> <records.jsonl> <count> <output>
"""
import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_url, grpc_url, model, records_path, count, output = sys.argv[1:7]
records = [json.loads(line) for line in open(records_path)][: int(count)]
pixels = np.array([r["inputs"]["pixels"] for r in records], dtype=np.float32)


def http_case(binary_in, outputs=None, **kwargs):
    client = httpclient.InferenceServerClient(url=http_url)
    tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary_in)
    result = client.infer(model, [tensor], outputs=outputs, **kwargs)
    return result.as_numpy(output).reshape(-1).tolist()


def grpc_case():
    client = grpcclient.InferenceServerClient(url=grpc_url)
    tensor = grpcclient.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    return client.infer(model, [tensor]).as_numpy(output).reshape(-1).tolist()


print(
    json.dumps(
        {
            # No outputs named: the client asks every output as binary (binary_data_output).
            "http_default": http_case(True),
            "http_binary_output": http_case(True, [httpclient.InferRequestedOutput(output)]),
            "http_json_in_binary_out": http_case(False, [httpclient.InferRequestedOutput(output)]),
            "http_json": http_case(False, [httpclient.InferRequestedOutput(output, binary_data=False)]),
            "http_gzip": http_case(True, request_compression_algorithm="gzip"),
            "grpc": grpc_case(),
        }
    )
)
