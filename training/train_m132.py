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
import os

import joblib
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from digits import HELD_OUT, ROOT, load, split, write_json, write_manifest


def main():
    x, y = load()
    test_idx, train_idx = split(len(x))
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
    write_json(os.path.join(out, "model-settings.json"), settings)
    write_manifest(
        out,
        "Handwritten digit classifier: scikit-learn logistic regression on 8x8 images, served by MLServer",
        correct / HELD_OUT,
        train_accuracy,
        format="sklearn",
        prediction_output="predict",
    )
    print("m-132: training accuracy %.4f, ds-550 accuracy %.4f (%d/%d)" % (train_accuracy, correct / HELD_OUT, correct, HELD_OUT))


if __name__ == "__main__":
    main()
