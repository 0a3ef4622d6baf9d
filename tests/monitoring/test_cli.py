"""``edge.py monitor``: exit codes, the report files, feedback joined by request id, simulate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.monitoring.conftest import capture_images, edge, paths_of
from tests.monitoring.helpers import heldout


def write_params(repo: Path, **monitor: object) -> None:
    import yaml

    data = yaml.safe_load((repo / "params.yaml").read_text())
    data["monitor"].update(monitor)
    (repo / "params.yaml").write_text(yaml.safe_dump(data))


def summary_of(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_an_unshifted_window_is_healthy_and_the_report_is_written(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    images, _ = heldout(400, seed=21)
    capture_images(project / "models" / "fashion-mnist", paths_of(project).records, images)
    out = tmp_path / "report"
    assert edge(project, "monitor", "--last", "400", "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "healthy" in printed and "400 records" in printed
    data = summary_of(out)
    assert data["status"] == "healthy" and data["records"] == 400 and data["drifted"] == []
    names = {c["name"] for c in data["checks"]}
    assert {"classes", "confidence", "ood_rate", "feature:ink", "embedding:0"} <= names
    html = (out / "report.html").read_text()
    assert "Model monitor" in html and html.count("data:image/png;base64,") >= 4


def test_a_shifted_window_drifts_with_exit_code_1(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    images, _ = heldout(300, seed=22)
    capture_images(project / "models" / "fashion-mnist", paths_of(project).records, 255.0 - images)
    out = tmp_path / "report"
    assert edge(project, "monitor", "--since", "1h", "--out", str(out)) == 1
    assert "drift" in capsys.readouterr().out
    data = summary_of(out)
    assert data["status"] == "drift" and "ood_rate" in data["drifted"] and data["ood_rate"] > 0.5


def test_too_few_records_give_no_verdict_and_exit_0(project: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    images, _ = heldout(30, seed=23)
    capture_images(project / "models" / "fashion-mnist", paths_of(project).records, images)
    assert edge(project, "monitor", "--out", str(tmp_path / "r")) == 0
    assert "insufficient data" in capsys.readouterr().out


def test_no_records_is_an_error_with_a_hint_and_no_traceback(project: Path, capsys) -> None:  # noqa: ANN001
    assert edge(project, "monitor") == 1
    err = capsys.readouterr().err
    assert "no captured records" in err and "hint" in err and "Traceback" not in err


def test_bad_flags_are_usage_errors(project: Path, capsys) -> None:  # noqa: ANN001
    assert edge(project, "monitor", "--since", "yesterday") == 2
    assert "--since 'yesterday'" in capsys.readouterr().err
    assert edge(project, "monitor", "--since", "1h", "--last", "5") == 2


def test_other_model_versions_are_left_out(project: Path, tmp_path: Path) -> None:
    images, _ = heldout(250, seed=24)
    records = paths_of(project).records
    capture_images(project / "models" / "fashion-mnist", records, images)
    capture_images(project / "models" / "fashion-mnist", records, 255.0 - images[:50], version="older")
    out = tmp_path / "report"
    assert edge(project, "monitor", "--last", "250", "--out", str(out)) == 0
    data = summary_of(out)
    assert data["records"] == 250 and any("other model versions" in n for n in data["notes"])
    assert edge(project, "monitor", "--all-versions", "--last", "300", "--out", str(out)) == 1


def test_feedback_labels_are_joined_by_request_id_and_checked(project: Path, tmp_path: Path) -> None:
    images, labels = heldout(300, seed=25)
    records = paths_of(project).records
    ids = capture_images(project / "models" / "fashion-mnist", records, images)
    write_params(project, min_labels=20)
    wrong = (labels + 1) % 10  # users say every prediction was wrong
    for rid, label in zip(ids[:60], wrong[:60], strict=True):
        assert edge(project, "monitor", "feedback", rid, str(int(label))) == 0
    out = tmp_path / "report"
    assert edge(project, "monitor", "--last", "300", "--out", str(out)) == 1
    data = summary_of(out)
    assert data["labelled"] == 60 and data["accuracy"] == 0.0 and "accuracy" in data["drifted"]
    assert len(data["recall"]) == 10


def test_feedback_with_an_unknown_label_is_refused(project: Path, capsys) -> None:  # noqa: ANN001
    assert edge(project, "monitor", "feedback", "abc-1", "Hat") == 2
    assert "expected one of" in capsys.readouterr().err


@pytest.mark.parametrize("shift", ["none", "inverted"])
def test_simulate_needs_a_server(project: Path, shift: str, capsys) -> None:  # noqa: ANN001
    data = project / "data" / "prepared"
    data.mkdir(parents=True)
    images, labels = heldout(50)
    np.savez(data / "test.npz", images=images.astype(np.uint8), labels=labels.astype(np.uint8))
    code = edge(project, "monitor", "simulate", "--shift", shift, "--count", "5", "--url", "http://127.0.0.1:9/predict")
    assert code == 1 and "cannot reach the prediction server" in capsys.readouterr().err
