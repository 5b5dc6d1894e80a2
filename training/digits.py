"""What every digit model's training shares: the data, the held-out split that makes ds-550,
and modeldock's model.json. numpy only, so it runs under Debian's python3 (m-131, m-133)
and in the tests' venv (m-132) alike."""
import gzip
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 131
HELD_OUT = 550
TRAINED_ON = "training/optdigits.csv.gz minus the 550 images of ds-550 (seed 131)"


def load():
    """The 1797 images (pixel counts 0..16, float32) and their digits (int64)."""
    with gzip.open(os.path.join(ROOT, "training", "optdigits.csv.gz"), "rt") as f:
        rows = np.array([[float(v) for v in line.split(",")] for line in f.read().strip().split("\n")])
    return rows[:, :64].astype(np.float32), rows[:, 64].astype(np.int64)


def split(count):
    """(held-out, training) indices: the first 550 of a seeded permutation are ds-550."""
    order = np.random.RandomState(SEED).permutation(count)
    return order[:HELD_OUT], order[HELD_OUT:]


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def write_manifest(model_dir, description, test_accuracy, train_accuracy, **fields):
    """model.json: what the model is, the labels of its ten classes, how well it does."""
    write_json(
        os.path.join(model_dir, "model.json"),
        {
            "description": description,
            **fields,
            "labels": [str(d) for d in range(10)],
            "trained_on": TRAINED_ON,
            "accuracy": {"ds-550": round(test_accuracy, 4), "training": round(train_accuracy, 4)},
        },
    )
