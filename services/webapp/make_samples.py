"""Regenerate the web app's sample gallery from the Fashion-MNIST test set.

    PYTHONPATH=. .venv/bin/python services/webapp/make_samples.py [--data data/fashion-mnist]

Writes ``vertex_edge/webapp/static/samples/<class id>-<slug>.png``: the first test image of each
class, inverted (a light background, like a product photo), tinted and upscaled to 112x112, and
``samples.json`` listing each file with its class (names from the dataset manifest).
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from vertex_edge.data.idx import read_images, read_labels
from vertex_edge.data.manifest import DEFAULT_MANIFEST, load_manifest
from vertex_edge.fsutil import atomic_write_bytes, atomic_write_json
from vertex_edge.webapp.samples import MANIFEST, SAMPLES_DIR, slug

log = logging.getLogger("make_samples")

BACKGROUND = np.array([247, 245, 241], dtype=np.float32)  # warm off-white
INK = np.array([22, 25, 32], dtype=np.float32)  # dark slate
SIZE, OBJECT = 112, 96


def product_photo(image28: np.ndarray) -> Image.Image:
    """A 28x28 Fashion-MNIST image (light object on black) -> a dark object on a light background."""
    big = Image.fromarray(image28.astype(np.uint8), mode="L").resize((OBJECT, OBJECT), Image.Resampling.LANCZOS)
    t = np.asarray(big, dtype=np.float32)[..., None] / 255.0  # 0 = background, 1 = object
    rgb = BACKGROUND * (1.0 - t) + INK * t
    canvas = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    off = (SIZE - OBJECT) // 2
    canvas[off : off + OBJECT, off : off + OBJECT] = rgb
    return Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8), mode="RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images = read_images(args.data / "t10k-images-idx3-ubyte.gz", count=10000, shape=(28, 28))
    labels = read_labels(args.data / "t10k-labels-idx1-ubyte.gz", count=10000, num_classes=10)
    names = load_manifest(DEFAULT_MANIFEST).labels
    listed = []
    for class_id, name in enumerate(names):
        index = int(np.flatnonzero(labels == class_id)[0])
        buf = io.BytesIO()
        product_photo(images[index]).save(buf, format="PNG", optimize=True)
        path = args.out / f"{class_id}-{slug(name)}.png"
        atomic_write_bytes(path, buf.getvalue())
        log.info("%s  (test image %d, %d bytes)", path, index, len(buf.getvalue()))
        listed.append({"file": path.name, "class_id": class_id, "label": name})
    about = (
        "The web app's sample gallery: the first Fashion-MNIST test image of each class "
        "(services/webapp/make_samples.py). 'label' is the image's true class, shown beside the model's answer."
    )
    atomic_write_json(args.out / MANIFEST, {"about": about, "samples": listed})


if __name__ == "__main__":
    main()
