"""Hostile and worst-case request bodies for the prediction server (tests/hostile and
benchmarks.serving replay them): images that are tiny files but many pixels, requests at the
pixel and size budgets, the costliest JSON numbers."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from vertex_edge.serving.settings import MAX_BODY_BYTES, MAX_REQUEST_PIXELS


def png_b64(width: int, height: int, mode: str = "L") -> str:
    """A PNG of ``width`` x ``height`` that compresses to almost nothing (a filled rectangle)."""
    shape = (height, width, len(mode)) if mode != "L" else (height, width)
    pixels = np.zeros(shape, np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = 200
    if mode == "RGBA":
        pixels[..., 3] = 255
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def body(instances: list) -> bytes:
    data = json.dumps({"instances": instances}, separators=(",", ":")).encode()
    assert len(data) <= MAX_BODY_BYTES, len(data)
    return data


def amplifier(count: int = 512, side: int = 1000) -> bytes:
    """The issue's CPU amplifier: ``count`` PNGs of a few KB, each ``side`` x ``side`` pixels
    (512 megapixels in all, under 1.5 MB): refused from the headers by the request budget."""
    return body([{"b64": png_b64(side, side)}] * count)


def at_pixel_budget(mode: str = "RGBA") -> bytes:
    """The most decoding one request may ask for: images filling the per-request budget, each at
    the per-image limit (the heaviest accepted request, for CPU and memory)."""
    side = 4096
    count = MAX_REQUEST_PIXELS // (side * side)
    return body([{"b64": png_b64(side, side, mode)}] * count)


def costly_numbers() -> bytes:
    """The most Python objects a body of numbers makes: floats (each a new object) up to 1.5 MB."""
    row = [0.5] * 784
    per = len(json.dumps(row, separators=(",", ":"))) + 1
    return body([row] * ((MAX_BODY_BYTES - 32) // per))


def single_image(value: int = 200) -> bytes:
    """A well-behaved request: one 28x28 image as numbers (what the web app sends)."""
    image = np.zeros((28, 28), np.int64)
    image[8:20, 6:22] = value
    return body([image.tolist()])
