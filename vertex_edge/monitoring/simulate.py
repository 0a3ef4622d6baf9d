"""The traffic simulator: real test images through the running prediction server, with a chosen shift.

Shifts (``fraction`` of the window is shifted; the rest are plain test images):

=============  ===============================================================================
``none``       test images as they are
``imbalance``  ``fraction`` of the images from two classes only (Trouser and Bag; default 0.5)
``inverted``   light background, dark object (255 - pixel): a camera photo sent without preprocessing
``dim``        intensities scaled by 0.6 (under-exposed, low contrast)
``rotate``     turned by 90 degrees
``noise``      Gaussian sensor noise added (sigma 40)
``photos``     not clothing at all: :mod:`vertex_edge.monitoring.nonclothing` (no true label)
=============  ===============================================================================

:func:`shifted` makes the images (deterministic for a seed); :func:`send` posts them to a
Vertex-contract ``/predict`` URL (each request ``batch`` instances, ``concurrency`` at a time)
and returns the request ids; the caller can then record feedback labels for some of them, as
users answering "Was this right?" would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from vertex_edge.data import idx
from vertex_edge.data.prepare import load_npz
from vertex_edge.errors import CloudError, DataError, UsageError
from vertex_edge.monitoring.nonclothing import nonclothing_set

SHIFTS = ("none", "imbalance", "inverted", "dim", "rotate", "noise", "photos")
IMBALANCE_CLASSES = (1, 8)  # Trouser, Bag
DEFAULT_FRACTION = {"imbalance": 0.5}


@dataclass(frozen=True)
class Sent:
    request_id: str
    instance: int
    true_label: int  # -1: not clothing
    class_id: int
    ood_flag: bool | None


def load_test_images(repo: Path) -> tuple[np.ndarray, np.ndarray]:
    """The Fashion-MNIST test images and labels: ``data/prepared/test.npz`` after ``dvc repro``,
    else the IDX files in ``data/fashion-mnist`` (after ``edge.py data seed``)."""
    prepared = repo / "data" / "prepared" / "test.npz"
    if prepared.is_file():
        split = load_npz(prepared)
        return split.images.astype(np.float32), split.labels.astype(np.int64)
    raw = repo / "data" / "fashion-mnist"
    images, labels = raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"
    if not images.is_file():
        raise DataError(
            f"no test images: neither {prepared} nor {images} exists",
            hint="run 'python edge.py data seed' (and 'dvc repro')",
        )
    return (
        idx.read_images(images, count=10_000, shape=(28, 28)).astype(np.float32),
        idx.read_labels(labels, count=10_000, num_classes=10).astype(np.int64),
    )


def shifted(
    images: np.ndarray, labels: np.ndarray, shift: str, count: int, *, fraction: float | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (float32 28x28) and their true labels (-1: not clothing) with ``shift``."""
    if shift not in SHIFTS:
        raise UsageError(f"shift {shift!r}: expected one of {', '.join(SHIFTS)}")
    fraction = DEFAULT_FRACTION.get(shift, 1.0) if fraction is None else fraction
    if not 0.0 <= fraction <= 1.0:
        raise UsageError(f"--fraction {fraction}: expected 0..1")
    if count < 1:
        raise UsageError(f"--count {count}: expected at least 1")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=count, replace=count > len(images))
    out, truth = images[pick].astype(np.float32), labels[pick].astype(np.int64)
    chosen = rng.random(count) < fraction if shift != "none" else np.zeros(count, bool)
    n = int(chosen.sum())
    if shift == "imbalance" and n:
        pool = np.flatnonzero(np.isin(labels, IMBALANCE_CLASSES))
        extra = rng.choice(pool, size=n)
        out[chosen], truth[chosen] = images[extra], labels[extra]
    elif shift == "inverted":
        out[chosen] = 255.0 - out[chosen]
    elif shift == "dim":
        out[chosen] = out[chosen] * 0.6
    elif shift == "rotate":
        out[chosen] = np.rot90(out[chosen], axes=(1, 2))
    elif shift == "noise":
        out[chosen] = np.clip(out[chosen] + rng.normal(0, 40, size=(n, 28, 28)), 0, 255)
    elif shift == "photos" and n:
        photos = np.stack([item.array for item in nonclothing_set(seed)])
        out[chosen] = photos[rng.integers(0, len(photos), size=n)]
        truth[chosen] = -1
    return np.round(out).astype(np.float32), truth


async def _send(
    url: str, images: np.ndarray, truth: np.ndarray, batch: int, concurrency: int, timeout: float, transport: Any
) -> list[Sent]:
    import httpx  # deferred: the CLI's other commands do not need an HTTP client

    starts = list(range(0, len(images), batch))
    results: list[list[Sent]] = [[] for _ in starts]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(starts)):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            chunk = images[starts[i] : starts[i] + batch]
            body = {"instances": chunk.astype(np.uint8).tolist()}
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                raise CloudError(f"cannot reach the prediction server at {url}: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise CloudError(f"the prediction server answered {response.status_code}: {response.text[:200]}")
            predictions = response.json().get("predictions", [])
            results[i] = [
                Sent(
                    str(p.get("request_id", "")), j, int(truth[starts[i] + j]),
                    int(p.get("class_id", -1)), (p.get("ood") or {}).get("flag"),
                )
                for j, p in enumerate(predictions)
            ]  # fmt: skip

    async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
        await asyncio.gather(*(worker(client) for _ in range(max(1, concurrency))))
    return [sent for chunk in results for sent in chunk]


def send(
    url: str,
    images: np.ndarray,
    truth: np.ndarray,
    *,
    batch: int = 1,
    concurrency: int = 4,
    timeout: float = 30.0,
    transport: Any = None,
) -> list[Sent]:
    """POST ``images`` to ``url``; the predictions' request ids, classes and OOD flags
    (``transport``: an httpx transport, for tests)."""
    if batch < 1 or concurrency < 1:
        raise UsageError("--batch and --concurrency must be at least 1")
    return asyncio.run(_send(url, images, truth, batch, concurrency, timeout, transport))


def capture_enabled(predict_url: str, *, timeout: float = 5.0, transport: Any = None) -> bool | None:
    """Whether the server behind ``predict_url`` captures predictions (its ``GET /capture``); None
    when it cannot tell (an older server, another contract, unreachable)."""
    import httpx  # deferred: see _send

    parts = urlsplit(predict_url)
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(f"{parts.scheme}://{parts.netloc}/capture")
        return bool(response.json()["enabled"]) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def answer_some(sent: list[Sent], rate: float, record: Callable[[Sent], None], *, seed: int = 0) -> int:
    """Call ``record`` for about ``rate`` of the clothing predictions (users who answered
    "Was this right?"); returns how many."""
    rng = np.random.default_rng(seed + 1)
    answered = 0
    for item in sent:
        if item.true_label >= 0 and item.request_id and rng.random() < rate:
            record(item)
            answered += 1
    return answered
