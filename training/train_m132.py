#!/usr/bin/env python3
"""Train model m-132, a scikit-learn digit classifier served by Seldon MLServer.

Same data and the same held-out 550 images (ds-550) as m-131, so the original requests
run against either model. Reproducible (fixed seed); run it with the tests' venv, which
has scikit-learn (scripts/python-venv.sh):

    ~/.cache/modeldock/python-venv/bin/python training/train_m132.py

Writes models/m-132/:
  model.joblib          a logistic regression on the 1247 training images (pixels scaled to 0..1)
  model-settings.json   MLServer's settings: the sklearn runtime, the input and output
  model.json            modeldock's metadata: format "sklearn", labels, accuracy
"""
import gzip
import json
import os

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 131
HELD_OUT = 550


def load():
    with gzip.open(os.path.join(ROOT, "training", "optdigits.csv.gz"), "rt") as f:
        rows = np.array([[float(v) for v in line.split(",")] for line in f.read().strip().split("\n")])
    return rows[:, :64].astype(np.float32), rows[:, 64].astype(np.int64)


def main():
    x, y = load()
    # The split train_m131.py makes: the first 550 of this permutation are ds-550.
    order = np.random.RandomState(SEED).permutation(len(x))
    test_idx, train_idx = order[:HELD_OUT], order[HELD_OUT:]
    model = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=2000, C=1.0))
    model.fit(x[train_idx], y[train_idx])
    train_accuracy = float((model.predict(x[train_idx]) == y[train_idx]).mean())
    correct = int((model.predict(x[test_idx]) == y[test_idx]).sum())
    out = os.path.join(ROOT, "models", "m-132")
    os.makedirs(out, exist_ok=True)
    joblib.dump(model, os.path.join(out, "model.joblib"))
    settings = {
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }
    with open(os.path.join(out, "model-settings.json"), "w") as f:
        json.dump(settings, f, indent=2)
        f.write("\n")
    manifest = {
        "description": "Handwritten digit classifier: scikit-learn logistic regression on 8x8 images, served by MLServer",
        "format": "sklearn",
        "prediction_output": "predict",
        "labels": [str(d) for d in range(10)],
        "trained_on": "training/optdigits.csv.gz minus the 550 images of ds-550 (seed 131)",
        "accuracy": {"ds-550": round(correct / HELD_OUT, 4), "training": round(train_accuracy, 4)},
    }
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("m-132: training accuracy %.4f, ds-550 accuracy %.4f (%d/%d)" % (train_accuracy, correct / HELD_OUT, correct, HELD_OUT))


if __name__ == "__main__":
    main()
