#!/usr/bin/python3
"""Train model m-131 (a handwritten-digit classifier) and write the example store.

Reproducible: fixed seeds, numpy only, run with Debian's python3 (python3-numpy,
python3-onnx):

    /usr/bin/python3 training/train_m131.py

Data: training/optdigits.csv.gz, the UCI "Optical Recognition of Handwritten Digits"
test set as scikit-learn ships it (1797 8x8 images, pixel counts 0..16, last column the
digit). Licence CC BY 4.0; see training/README.md for the attribution.

Writes:
  datasets/ds-550/records.jsonl, dataset.json   550 held-out images with labels
  models/m-131/model.onnx, model.json           MLP 64-32-10, trained on the other 1247
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from digits import HELD_OUT, ROOT, SEED, load, split, write_json, write_manifest

HIDDEN = 32
EPOCHS = 400
LEARNING_RATE = 0.01


def train(x, y):
    rng = np.random.RandomState(SEED)
    xs = x / 16.0
    w1 = (rng.randn(64, HIDDEN) * np.sqrt(2.0 / 64)).astype(np.float64)
    b1 = np.zeros(HIDDEN)
    w2 = (rng.randn(HIDDEN, 10) * np.sqrt(2.0 / HIDDEN)).astype(np.float64)
    b2 = np.zeros(10)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(10)[y]
    for epoch in range(1, EPOCHS + 1):
        # full-batch Adam on cross-entropy
        h = np.maximum(0, xs @ w1 + b1)
        logits = h @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g_logits = (p - onehot) / len(xs)
        g_w2 = h.T @ g_logits
        g_b2 = g_logits.sum(axis=0)
        g_h = g_logits @ w2.T
        g_h[h <= 0] = 0
        g_w1 = xs.T @ g_h
        g_b1 = g_h.sum(axis=0)
        for i, g in enumerate([g_w1, g_b1, g_w2, g_b2]):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat = m[i] / (1 - 0.9**epoch)
            v_hat = v[i] / (1 - 0.999**epoch)
            params[i] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
    return [p.astype(np.float32) for p in params]


def predict(params, x):
    w1, b1, w2, b2 = params
    h = np.maximum(0, (x / np.float32(16.0)) @ w1 + b1)
    return (h @ w2 + b2).argmax(axis=1)


def export(params, path):
    w1, b1, w2, b2 = params
    nodes = [
        helper.make_node("Mul", ["pixels", "scale"], ["scaled"]),
        helper.make_node("Gemm", ["scaled", "w1", "b1"], ["hidden_pre"]),
        helper.make_node("Relu", ["hidden_pre"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    initializers = [
        numpy_helper.from_array(np.array([1.0 / 16.0], dtype=np.float32), "scale"),
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    graph = helper.make_graph(
        nodes,
        "m131_digits_mlp",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="modeldock-training")
    model.ir_version = 7
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    x, y = load()
    test_idx, train_idx = split(len(x))
    params = train(x[train_idx], y[train_idx])
    train_acc = float((predict(params, x[train_idx]) == y[train_idx]).mean())
    test_pred = predict(params, x[test_idx])
    test_acc = float((test_pred == y[test_idx]).mean())

    model_dir = os.path.join(ROOT, "models", "m-131")
    data_dir = os.path.join(ROOT, "datasets", "ds-550")
    os.makedirs(model_dir, exist_ok=True)
    os.makedirs(data_dir, exist_ok=True)
    export(params, os.path.join(model_dir, "model.onnx"))
    write_manifest(
        model_dir,
        "Handwritten digit classifier: MLP 64-32-10 on 8x8 images with pixel counts 0..16",
        test_acc,
        train_acc,
        prediction_output="label",
    )
    with open(os.path.join(data_dir, "records.jsonl"), "w") as f:
        for i in test_idx:
            f.write(json.dumps({"inputs": {"pixels": [int(v) for v in x[i]]}, "label": int(y[i])}) + "\n")
    write_json(
        os.path.join(data_dir, "dataset.json"),
        {
            "description": "550 held-out 8x8 handwritten digits (UCI optical digits), with labels",
            "format": "records.jsonl",
            "count": HELD_OUT,
            "source": "UCI Machine Learning Repository: Optical Recognition of Handwritten Digits (Alpaydin & Kaynak, 1998)",
            "license": "CC BY 4.0",
        },
    )
    print(f"m-131: training accuracy {train_acc:.4f}, ds-550 accuracy {test_acc:.4f} "
          f"({int((test_pred == y[test_idx]).sum())}/{HELD_OUT})")


if __name__ == "__main__":
    main()
