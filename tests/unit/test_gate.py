"""The quality gate's verdict, the evaluation record that names its model, champion/challenger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vertex_edge.errors import DataError, QualityGateError
from vertex_edge.gate import Comparison, EvaluationRecord, judge

SHA = "ab" * 32


def test_a_verdict_records_threshold_accuracy_margin_and_passed() -> None:
    verdict = judge(0.8725, 0.9)
    assert verdict.record() == {"threshold": 0.9, "accuracy": 0.8725, "margin": -0.0275, "passed": False}
    assert verdict.text() == "test accuracy 0.8725 is below the quality gate 0.9000"
    with pytest.raises(QualityGateError, match="below the quality gate evaluate.min_accuracy 0.9000"):
        verdict.enforce("refusing")
    verdict.enforce("refusing", force=True)
    assert judge(0.9, 0.9).passed


def test_the_evaluation_record_round_trips_and_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "evaluation.json"
    assert EvaluationRecord.read(path) is None
    record = EvaluationRecord(model_version="v1", model_sha256=SHA, accuracy=0.9, log_loss=0.3, count=10,
                              gate=judge(0.9, 0.9).record())  # fmt: skip
    record.write(path)
    assert EvaluationRecord.read(path) == record
    path.write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        EvaluationRecord.read(path)
    path.write_text(json.dumps({"accuracy": 0.9, "per_class": {}}))  # the old metrics/evaluate.json
    with pytest.raises(DataError, match="not an evaluation record") as err:
        EvaluationRecord.read(path)
    assert "dvc repro" in (err.value.hint or "")


def test_champion_challenger() -> None:
    worse = Comparison("version 3", 0.93, 0.915, 0.01)
    assert not worse.ok and worse.text().endswith(": REFUSED")
    with pytest.raises(QualityGateError, match=r"is 0.0150 below version 3 \(0.9300\)"):
        worse.enforce("refusing")
    worse.enforce("refusing", force=True)
    assert Comparison("version 3", 0.93, 0.921, 0.01).ok  # within the tolerance
    assert Comparison("version 3", 0.93, 0.92, 0.01).ok  # exactly at it
    other_data = Comparison("version 3", 0.93, 0.5, 0.01, same_data=False)
    assert other_data.ok and "different data versions, not enforced" in other_data.text()
    unknown = Comparison("version 3", None, 0.5, 0.01)
    assert unknown.ok and "not compared" in unknown.text()
