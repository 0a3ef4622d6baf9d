"""Tiny synthetic Fashion-MNIST-shaped datasets for fast tests (no network, no real data)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import yaml

from vertex_edge.data.idx import write_idx

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def synthetic_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Learnable images: class k draws a bright bar at rows 2k+3..2k+5, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 3 : 2 * k + 6, 4:24] = 200 + rng.integers(0, 55)
    return images


def make_dataset(folder: Path, *, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Write the four .gz files and a manifest for them into ``folder``; return the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    files = []
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = synthetic_images(labels, seed + n)
        for kind, arr, suffix in (("images", images, "images-idx3-ubyte"), ("labels", labels, "labels-idx1-ubyte")):
            name = f"{prefix}-{suffix}.gz"
            write_idx(folder / name, arr)
            raw = gzip.decompress((folder / name).read_bytes())
            files.append(
                {
                    "name": name,
                    "split": split,
                    "kind": kind,
                    "count": n,
                    "md5": hashlib.md5((folder / name).read_bytes()).hexdigest(),
                    "md5_uncompressed": hashlib.md5(raw).hexdigest(),
                }
            )
    manifest = {
        "name": "synthetic-fashion",
        "dir": "data/fashion-mnist",
        "sources": [],
        "image_shape": [28, 28],
        "labels": LABELS,
        "files": files,
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path
