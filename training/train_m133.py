#!/usr/bin/python3
"""Train model m-133, a digit classifier that NVIDIA Triton serves with its Python backend.

Same data and the same held-out 550 images (ds-550) as m-131 and m-132, so the original
requests run against any of them. A softmax regression on the pixels scaled to 0..1,
trained by full-batch gradient descent; numpy only, deterministic, run with Debian's
python3 (python3-numpy; the data and split are training/digits.py's):

    /usr/bin/python3 training/train_m133.py

Writes models/m-133/ in Triton's model-repository layout:
  config.pbtxt        the Python backend, input pixels FP32 [-1, 64], outputs label
                      INT64 [-1] and probabilities FP32 [-1, 10]
  1/model.py          the model Triton runs (version 1): weights.npz through numpy
  1/weights.npz       the trained weights
  model.json          modeldock's metadata: format "python", runtime "triton", accuracy
"""
import os

import numpy as np

from digits import HELD_OUT, ROOT, load, split, write_manifest

EPOCHS = 1500
LEARNING_RATE = 0.5
L2 = 1e-4


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train(x, y):
    xs = x / 16.0
    onehot = np.eye(10)[y]
    weights = np.zeros((64, 10))
    bias = np.zeros(10)
    for _ in range(EPOCHS):
        g = (softmax(xs @ weights + bias) - onehot) / len(xs)
        weights -= LEARNING_RATE * (xs.T @ g + L2 * weights)
        bias -= LEARNING_RATE * g.sum(axis=0)
    return weights.astype(np.float32), bias.astype(np.float32)


def predict(weights, bias, x):
    """What 1/model.py computes, in float32 as Triton does."""
    return ((x / np.float32(16)) @ weights + bias).argmax(axis=1)


def main():
    x, y = load()
    test_idx, train_idx = split(len(x))
    weights, bias = train(x[train_idx], y[train_idx])
    train_accuracy = float((predict(weights, bias, x[train_idx]) == y[train_idx]).mean())
    correct = int((predict(weights, bias, x[test_idx]) == y[test_idx]).sum())
    out = os.path.join(ROOT, "models", "m-133")
    os.makedirs(os.path.join(out, "1"), exist_ok=True)
    np.savez(os.path.join(out, "1", "weights.npz"), weights=weights, bias=bias)
    write_manifest(
        out,
        "Handwritten digit classifier: softmax regression on 8x8 images in Triton's Python backend",
        correct / HELD_OUT,
        train_accuracy,
        format="python",
        runtime="triton",
        prediction_output="label",
    )
    print("m-133: training accuracy %.4f, ds-550 accuracy %.4f (%d/%d)" % (train_accuracy, correct / HELD_OUT, correct, HELD_OUT))


if __name__ == "__main__":
    main()
