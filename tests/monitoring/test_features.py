"""Input summary features and output summaries, on images with known answers."""

from __future__ import annotations

import math

import numpy as np

from vertex_edge.monitoring.features import FEATURES, confidence_entropy, summarize


def feature(images: np.ndarray, name: str) -> np.ndarray:
    return summarize(images)[:, FEATURES.index(name)]


def test_a_blank_image() -> None:
    blank = np.zeros((1, 28, 28), np.float32)
    values = dict(zip(FEATURES, summarize(blank)[0].tolist(), strict=True))
    assert values == {"mean": 0, "max": 0, "ink": 0, "border_ink": 0, "edges": 0, "width": 0, "height": 0,
                      "com_x": 13.5, "com_y": 13.5}  # fmt: skip


def test_a_rectangle() -> None:
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 10:14, 4:24] = 255.0  # 4 rows x 20 columns
    values = dict(zip(FEATURES, summarize(image)[0].tolist(), strict=True))
    assert math.isclose(values["mean"], 255.0 * 80 / 784, rel_tol=1e-6)
    assert values["max"] == 255.0
    assert math.isclose(values["ink"], 80 / 784, rel_tol=1e-6)
    assert values["border_ink"] == 0.0
    assert (values["width"], values["height"]) == (20, 4)
    assert math.isclose(values["com_x"], 13.5) and math.isclose(values["com_y"], 11.5)
    # the rectangle's outline (within the top-left 27x27): 2 x 4 vertical steps + 2 x 20 horizontal, 255 each
    assert math.isclose(values["edges"], (2 * 4 + 2 * 20) * 255.0 / (255.0 * 80), rel_tol=1e-6)


def test_border_ink_counts_the_outer_ring() -> None:
    image = np.zeros((1, 28, 28), np.float32)
    image[0, 0, :] = 200.0  # the top row: 28 of the 108 ring pixels
    assert math.isclose(feature(image, "border_ink")[0], 28 / 108, rel_tol=1e-6)


def test_features_of_a_batch_equal_those_of_each_image() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(5, 28, 28)).astype(np.float32)
    batch = summarize(images)
    for i in range(5):
        np.testing.assert_allclose(batch[i], summarize(images[i : i + 1])[0], rtol=1e-6)


def test_confidence_and_entropy() -> None:
    probs = np.array([[0.1] * 10, [1.0] + [0.0] * 9], np.float32)
    class_id, confidence, entropy = confidence_entropy(probs)
    assert class_id.tolist() == [0, 0]
    np.testing.assert_allclose(confidence, [0.1, 1.0])
    np.testing.assert_allclose(entropy, [math.log(10), 0.0], atol=1e-6)
