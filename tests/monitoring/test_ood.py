"""The OOD detector: calibration to the stated false-positive rate, and what it flags."""

from __future__ import annotations

import numpy as np
import pytest

from tests.monitoring.helpers import dense_model, heldout
from vertex_edge.errors import DataError
from vertex_edge.monitoring.embedding import EMBEDDING_OUTPUT, with_embedding_output
from vertex_edge.monitoring.features import summarize
from vertex_edge.monitoring.ood import Split3, fit_detector
from vertex_edge.monitoring.profile import run_model

MODEL = with_embedding_output(dense_model())


def fitted(n: int = 2000, fpr: float = 0.05, embedding: bool = True):  # noqa: ANN201
    images, _ = heldout(n, seed=1)
    emb = run_model(MODEL, images)[EMBEDDING_OUTPUT] if embedding else None
    return fit_detector(images, summarize(images), emb, Split3.of(n, 0), fpr=fpr)


def flagged(detector, images: np.ndarray) -> np.ndarray:  # noqa: ANN001
    emb = run_model(MODEL, images)[EMBEDDING_OUTPUT] if detector.uses_embedding else None
    return detector.score(images, summarize(images), emb)[1]


def test_the_three_parts_of_the_held_out_set_do_not_overlap() -> None:
    split = Split3.of(1000, 0)
    parts = [set(split.fit.tolist()), set(split.scale.tolist()), set(split.calibrate.tolist())]
    assert [len(p) for p in parts] == [500, 250, 250]
    assert set().union(*parts) == set(range(1000)) and sum(len(p) for p in parts) == 1000
    with pytest.raises(DataError, match="too few"):
        Split3.of(100, 0)


@pytest.mark.parametrize("embedding", [True, False])
def test_calibrated_to_the_stated_false_positive_rate(embedding: bool) -> None:
    detector, calibration = fitted(embedding=embedding)
    assert np.mean(calibration > detector.threshold) <= 0.05
    fresh, _ = heldout(3000, seed=7)  # new images from the same distribution
    rate = float(np.mean(flagged(detector, fresh)))
    assert 0.01 <= rate <= 0.10, rate


def test_noise_blank_and_inverted_images_are_flagged() -> None:
    detector, _ = fitted()
    rng = np.random.default_rng(3)
    images, _ = heldout(50, seed=9)
    odd = np.concatenate([
        rng.uniform(0, 255, size=(50, 28, 28)).astype(np.float32),
        np.zeros((5, 28, 28), np.float32),
        np.full((5, 28, 28), 255.0, np.float32),
        255.0 - images,
    ])  # fmt: skip
    assert np.mean(flagged(detector, odd)) >= 0.95


def test_the_fpr_must_be_a_rate() -> None:
    images, _ = heldout(400)
    with pytest.raises(DataError, match="false-positive rate"):
        fit_detector(images, summarize(images), None, Split3.of(400, 0), fpr=0.7)
