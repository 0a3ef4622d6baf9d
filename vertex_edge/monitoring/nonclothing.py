"""Images that are not clothing: what the out-of-distribution flag must catch.

Real photos and measured data that ship inside an installed package (matplotlib's sample data:
a portrait photo, a product photo, a logo, an MRI slice, two elevation maps), cut into crops at
several scales, plus images made with Pillow: text, shapes, gradients, noise and blank images.
Each is turned into the 28x28 image the model sees by the same preprocessing the server and the
web app use (:func:`vertex_edge.preprocess.image_to_array`); noise is also given as raw pixel
values, as a client sending numbers would.

Deterministic for a seed. Used by the OOD benchmark, the tests and the traffic simulator's
``photos`` and ``noise`` shifts. Nothing here runs in the prediction server.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vertex_edge.preprocess import image_to_array

KINDS = ("photo", "data", "text", "shapes", "gradient", "noise", "blank")
_WORDS = ("monitor", "drift", "vertex", "edge", "42", "hello", "MLOps", "Σ", "circuit", "print", "label", "ok")


@dataclass(frozen=True)
class NonClothing:
    name: str
    kind: str  # one of KINDS
    array: np.ndarray  # float32 28x28 in 0..255, as the model sees it
    image: Image.Image | None = None  # the source image (None for raw pixel values)


def sample_data_dir() -> Path | None:
    """matplotlib's ``mpl-data/sample_data`` folder, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "mpl-data" / "sample_data"
    return folder if folder.is_dir() else None


def _as_image(values: np.ndarray) -> Image.Image:
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


def _sources(folder: Path) -> Iterator[tuple[str, str, Image.Image]]:
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        path = folder / name
        if path.is_file():
            with Image.open(path) as image:
                yield name, "photo", image.convert("RGB")
    mri = folder / "s1045.ima.gz"
    if mri.is_file():
        yield "mri", "data", _as_image(np.frombuffer(gzip.decompress(mri.read_bytes()), np.uint16).reshape(256, 256))
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        path = folder / name
        if path.is_file():
            with np.load(path) as data:
                if key in data:
                    yield name, "data", _as_image(data[key])


def _crops(image: Image.Image, count: int, rng: np.random.Generator) -> Iterator[Image.Image]:
    width, height = image.size
    yield image
    for _ in range(count - 1):
        side = int(min(width, height) * rng.uniform(0.25, 0.8))
        left, top = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        yield image.crop((left, top, left + side, top + side))


def _made(rng: np.random.Generator, per_kind: int) -> Iterator[tuple[str, Image.Image]]:
    font = ImageFont.load_default(size=22)
    for i in range(per_kind):
        image = Image.new("L", (112, 112), int(rng.choice([0, 255])))
        draw = ImageDraw.Draw(image)
        words = " ".join(rng.choice(_WORDS, size=int(rng.integers(1, 4))))
        draw.multiline_text((6, 20), words.replace(" ", "\n"), fill=255 - image.getpixel((0, 0)), font=font)
        yield f"text-{i}", image
    for i in range(per_kind):
        image = Image.new("L", (112, 112), 0)
        draw = ImageDraw.Draw(image)
        kind = i % 4
        if kind == 0:  # checkerboard
            step = int(rng.integers(8, 29))
            for y in range(0, 112, step):
                for x in range(0, 112, step):
                    if (x // step + y // step) % 2 == 0:
                        draw.rectangle((x, y, x + step - 1, y + step - 1), fill=255)
        elif kind == 1:  # circles
            for _ in range(int(rng.integers(1, 6))):
                x, y, r = rng.integers(10, 100, size=3)
                draw.ellipse((x - r // 2, y - r // 2, x + r // 2, y + r // 2), outline=255, width=3)
        elif kind == 2:  # stripes
            step = int(rng.integers(6, 20))
            for x in range(0, 112, step * 2):
                draw.rectangle((x, 0, x + step - 1, 111), fill=int(rng.integers(128, 256)))
        else:  # a grid of lines
            step = int(rng.integers(10, 30))
            for x in range(0, 112, step):
                draw.line((x, 0, x, 111), fill=255, width=2)
                draw.line((0, x, 111, x), fill=255, width=2)
        yield f"shapes-{i}", image
    ramp = np.linspace(0, 255, 112)
    for i in range(per_kind):
        yy, xx = np.mgrid[0:112, 0:112]
        kind = i % 3
        if kind == 0:
            values = np.tile(ramp, (112, 1))
        elif kind == 1:
            values = np.tile(ramp[:, None], (1, 112))
        else:
            values = np.hypot(yy - rng.integers(0, 112), xx - rng.integers(0, 112))
        yield f"gradient-{i}", _as_image(values * rng.uniform(0.5, 1.5))


def nonclothing_set(seed: int = 0, *, crops: int = 24, per_kind: int = 16) -> list[NonClothing]:
    """The non-clothing set: real photos and data (``crops`` crops of each), text, shapes,
    gradients (``per_kind`` of each), noise (preprocessed and raw) and blank images."""
    rng = np.random.default_rng(seed)
    out: list[NonClothing] = []
    folder = sample_data_dir()
    if folder is not None:
        for name, kind, image in _sources(folder):
            for i, crop in enumerate(_crops(image, crops, rng)):
                out.append(NonClothing(f"{name}-{i}", kind, image_to_array(crop), crop))
    for name, image in _made(rng, per_kind):
        out.append(NonClothing(name, name.split("-")[0], image_to_array(image), image))
    for i in range(per_kind):
        rgb = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        image = Image.fromarray(rgb, mode="RGB")
        out.append(NonClothing(f"noise-image-{i}", "noise", image_to_array(image), image))
        raw = rng.uniform(0, 255, size=(28, 28)) if i % 2 else np.clip(rng.normal(128, 60, size=(28, 28)), 0, 255)
        out.append(NonClothing(f"noise-raw-{i}", "noise", raw.astype(np.float32)))
    for level in (0, 64, 128, 255):
        image = Image.new("L", (64, 64), level)
        out.append(NonClothing(f"blank-image-{level}", "blank", image_to_array(image), image))
        out.append(NonClothing(f"blank-raw-{level}", "blank", np.full((28, 28), level, dtype=np.float32)))
    return out
