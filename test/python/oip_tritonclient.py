"""Drives modeldock through NVIDIA's own Triton client (tritonclient, HTTP or gRPC), the
way a Triton user would: every call of the protocol a client makes, JSON and binary
tensors, an unknown model and malformed tensors. Prints one JSON report on stdout
(test/e2e/oip-tritonclient.test.ts checks it); an unexpected exception fails the run.

    python oip_tritonclient.py http|grpc <host:port> <model> <records.jsonl> [--load-unload]

OIP_HEADERS (a JSON object) adds headers to every call, through the client's own plugin
hook, as a user passes an API key (or, straight to a worker, the router's worker secret).
OIP_MESSAGE_LIMIT is the server's message size limit in bytes (default the router's).
"""
import json
import os
import sys

import numpy as np

protocol, url, model, records_path = sys.argv[1:5]
load_unload = "--load-unload" in sys.argv
if protocol == "http":
    import tritonclient.http as triton
else:
    import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

client = triton.InferenceServerClient(url=url)
extra_headers = json.loads(os.environ.get("OIP_HEADERS", "{}"))
if extra_headers:
    from tritonclient._plugin import InferenceServerClientPlugin

    class Headers(InferenceServerClientPlugin):
        def __call__(self, request):
            request.headers.update(extra_headers)

    client.register_plugin(Headers())
records = [json.loads(line) for line in open(records_path)][:8]
pixels = np.array([r["inputs"]["pixels"] for r in records], dtype=np.float32)
report = {"labels": [r["label"] for r in records]}


def as_dict(answer):
    """Both clients' answers as plain JSON (gRPC answers are protobuf messages)."""
    if protocol == "http":
        return answer
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(answer, preserving_proto_field_name=True)


def infer(binary, name=model, data=pixels, datatype="FP32", **kwargs):
    tensor = triton.InferInput("pixels", list(data.shape), datatype)
    if protocol == "http":
        tensor.set_data_from_numpy(data, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
    else:
        tensor.set_data_from_numpy(data)
        outputs = [triton.InferRequestedOutput(n) for n in ("label", "probabilities")]
    result = client.infer(name, [tensor], outputs=outputs, request_id="req-7", **kwargs)
    answer = result.get_response()
    return {
        "labels": result.as_numpy("label").tolist(),
        "probabilities_shape": list(result.as_numpy("probabilities").shape),
        "id": answer["id"] if protocol == "http" else answer.id,
        "model_name": answer["model_name"] if protocol == "http" else answer.model_name,
    }


def failure(call):
    """The client's exception for a call that must fail: it reports, it does not crash."""
    try:
        call()
    except InferenceServerException as error:
        return {"status": str(error.status()), "message": error.message()}
    raise AssertionError("the call was expected to fail")


report["live"] = client.is_server_live()
report["ready"] = client.is_server_ready()
report["server_metadata"] = as_dict(client.get_server_metadata())
report["index"] = as_dict(client.get_model_repository_index())
if load_unload:
    client.load_model(model)
report["model_ready"] = client.is_model_ready(model)
report["model_metadata"] = as_dict(client.get_model_metadata(model))
config = as_dict(client.get_model_config(model))
report["model_config"] = config if protocol == "http" else config["config"]
report["infer_json"] = infer(binary=False)
report["infer_binary"] = infer(binary=True)
report["stats"] = as_dict(client.get_inference_statistics(model))
report["stats_all"] = as_dict(client.get_inference_statistics())
report["unknown_model"] = failure(lambda: infer(binary=False, name="no-such-job"))
report["unknown_model_ready"] = client.is_model_ready("no-such-job")
report["malformed_shape"] = failure(lambda: infer(binary=False, data=np.zeros((1, 63), dtype=np.float32)))
report["malformed_binary"] = failure(lambda: infer(binary=True, data=np.zeros((1, 63), dtype=np.float32)))
report["wrong_datatype"] = failure(lambda: infer(binary=True, data=np.zeros((1, 64), dtype=np.int32), datatype="INT32"))
report["stats_after_failures"] = as_dict(client.get_inference_statistics(model))
if protocol == "grpc":
    # A deadline far too short for a round trip (with 20000 rows, so that even a worker
    # answering in-process cannot beat the clock): the client reports DEADLINE_EXCEEDED.
    many = np.zeros((20000, 64), dtype=np.float32)
    report["deadline"] = failure(lambda: infer(binary=True, data=many, client_timeout=0.000001))
    # A message over the server's limit (the router's 16 MiB, or OIP_MESSAGE_LIMIT
    # bytes): refused, not crashed on.
    limit = int(os.environ.get("OIP_MESSAGE_LIMIT", 16 * 1024 * 1024))
    big = np.zeros((limit // 256 + 1000, 64), dtype=np.float32)
    report["too_large"] = failure(lambda: infer(binary=True, data=big))
# After every failure above, the model still serves.
report["still_serving"] = infer(binary=True)
if load_unload:
    client.unload_model(model)
    report["model_ready_after_unload"] = client.is_model_ready(model)
    # On demand through the router; straight to a worker the name is simply not loaded.
    try:
        report["infer_after_unload"] = infer(binary=True)
    except InferenceServerException as error:
        report["infer_after_unload"] = {"status": str(error.status()), "message": error.message()}
client.close()
print(json.dumps(report, default=str))
