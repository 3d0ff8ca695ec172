"""Writes the authors' MNIST-1D (the `mnist1d` package) as .npy files, for
the test that compares Tessera's `mnist1d` source with it.

Usage: python mnist1d_reference.py OUT_DIR [KEY=VALUE ...]
  KEY is any argument of mnist1d.data.get_dataset_args() (num_samples,
  max_translation, seed, ...); VALUE a Python literal.
Writes OUT_DIR/x.npy (train then test sequences, float64) and OUT_DIR/y.npy.
"""
import ast
import os
import sys

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset


def main():
    out = sys.argv[1]
    args = get_dataset_args()
    for item in sys.argv[2:]:
        key, value = item.split("=", 1)
        if not hasattr(args, key):
            sys.exit(f"mnist1d has no argument `{key}`")
        setattr(args, key, ast.literal_eval(value))
    data = make_dataset(args)
    os.makedirs(out, exist_ok=True)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float64)
    np.save(os.path.join(out, "x.npy"), np.ascontiguousarray(x))
    np.save(os.path.join(out, "y.npy"), np.concatenate([data["y"], data["y_test"]]).astype(np.int64))


if __name__ == "__main__":
    main()
