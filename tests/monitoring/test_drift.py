"""The verdict on synthetic windows with a known answer; reading windows back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tests.monitoring.conftest import capture_images
from tests.monitoring.helpers import heldout
from vertex_edge.errors import DataError
from vertex_edge.gcp.files import Files
from vertex_edge.monitoring.drift import compare
from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.feedback import join_labels, parse_feedback
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile
from vertex_edge.monitoring.records import Window, read_window
from vertex_edge.monitoring.thresholds import MonitorParams, monitor_params


@pytest.fixture(scope="module")
def profile(prepared_model: Path) -> ReferenceProfile:
    return ReferenceProfile.read(prepared_model / PROFILE_FILE)


def window_like(profile: ReferenceProfile, n: int, seed: int = 0, classes: np.ndarray | None = None) -> Window:
    """A window drawn (with replacement) from the reference rows themselves: no drift by construction."""
    rows = np.random.default_rng(seed).integers(0, len(profile.class_id), size=n)
    return Window(
        request_id=[f"r{i}" for i in range(n)], instance=np.zeros(n, np.int64), time=["2026-12-01T00:00:00Z"] * n,
        model_version=["v"] * n, class_id=profile.class_id[rows] if classes is None else classes,
        confidence=profile.confidence[rows].astype(float), entropy=profile.entropy[rows].astype(float),
        ood_score=profile.ood_score[rows].astype(float), ood_flag=profile.ood_score[rows] > profile.detector.threshold,
        features=profile.features[rows].astype(float), embedding=profile.embedding[rows].astype(float),
    )  # fmt: skip


def test_windows_from_the_reference_are_healthy(profile: ReferenceProfile) -> None:
    params = MonitorParams()
    verdicts = [compare(window_like(profile, 400, seed), profile, params) for seed in range(20)]
    assert sum(v.drift for v in verdicts) <= 2  # alpha = 5 % per window
    first = verdicts[0]
    assert len(first.checks) == 2 + len(FEATURES) + profile.embedding.shape[1] + 1
    assert all(c.threshold == pytest.approx(0.05 / len(first.checks)) for c in first.checks)


def test_class_imbalance_drifts_on_classes(profile: ReferenceProfile) -> None:
    window = window_like(profile, 400, classes=np.array([1] * 200 + [8] * 200))
    verdict = compare(window, profile, MonitorParams())
    assert verdict.drift and "classes" in [c.name for c in verdict.drifted]


def test_a_significant_but_tiny_difference_is_not_drift(profile: ReferenceProfile) -> None:
    window = window_like(profile, 400)
    window.features[:, FEATURES.index("mean")] += 0.5  # visible to KS on a huge window, harmless
    strict = monitor_params({"monitor": {"min_effect": {"distribution": 0.9}}})
    assert not compare(window, profile, strict).drift
    assert not compare(window_like(profile, 400), profile, strict).drift


def test_ood_rate_above_the_calibrated_rate_drifts(profile: ReferenceProfile) -> None:
    window = window_like(profile, 400)
    window.ood_flag[:80] = True
    verdict = compare(window, profile, MonitorParams())
    check = next(c for c in verdict.checks if c.name == "ood_rate")
    assert check.drift and verdict.ood_rate >= 0.2


def test_insufficient_records(profile: ReferenceProfile) -> None:
    verdict = compare(window_like(profile, 50), profile, MonitorParams())
    assert verdict.status == "insufficient data" and not verdict.checks and "min_records" in verdict.notes[0]


def test_reading_windows_skips_broken_lines_and_filters_by_time(prepared_model: Path, tmp_path: Path) -> None:
    records = tmp_path / "records"
    images, _ = heldout(20, seed=2)
    capture_images(prepared_model, str(records), images)
    file = next(records.rglob("*.jsonl"))
    with open(file, "ab") as fh:
        fh.write(b'{"request_id": "half-written", "ti')
    window = read_window(str(records), Files(), last=5)
    assert len(window) == 5 and window.skipped == 1 and "skipped" in window.notes[0]
    old = records / "dt=2020-01-01" / "records-000000-1-1.jsonl"
    old.parent.mkdir()
    old.write_text(json.dumps({"request_id": "old", "instance": 0, "time": "2020-01-01T00:00:00.000Z"}) + "\n")
    assert "old" not in read_window(str(records), Files(), since=datetime(2021, 1, 1, tzinfo=UTC)).request_id
    assert read_window(str(records), Files(), last=100).request_id[0] == "old"
    with pytest.raises(DataError, match="no captured records"):
        read_window(str(tmp_path / "nothing"), Files())


def test_feedback_join_newest_answer_wins(profile: ReferenceProfile) -> None:
    window = window_like(profile, 3)
    labels = join_labels(window, {("r0", 0): 4, ("r2", 0): 7})
    assert labels.tolist() == [4, -1, 7]
    assert parse_feedback("r1", "Bag", ["Bag", "Coat"]).class_id == 0
    with pytest.raises(Exception, match="request id"):
        parse_feedback("bad id with spaces", 0, ["Bag"])
