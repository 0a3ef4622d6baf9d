"""What a killed stage leaves behind is found and removed; dvc.lock says what can be restored."""

from __future__ import annotations

import os
import time
from pathlib import Path

from vertex_edge.stage_files import clean_stale_temps, recorded, restore_outputs, stale_temps


def test_stale_temporaries_of_the_outputs_are_found_by_age(tmp_path: Path) -> None:
    model = tmp_path / "models" / "fashion-mnist"
    metrics = tmp_path / "metrics" / "train.json"
    model.mkdir(parents=True)
    metrics.parent.mkdir()
    left = [tmp_path / "models" / ".fashion-mnist.k2j3.tmp", tmp_path / "models" / ".fashion-mnist.old-123",
            tmp_path / "metrics" / ".train.json.x1.tmp", tmp_path / "metrics" / ".train.json.x2.tmp.json"]  # fmt: skip
    left[0].mkdir()
    (left[0] / "model.onnx").write_bytes(b"half")
    for p in left[1:]:
        p.write_text("x")
    keep = [tmp_path / "models" / ".gitignore", tmp_path / "metrics" / ".evaluate.json.a.tmp"]
    for p in keep:
        p.write_text("x")
    old = time.time() - 3600
    for p in left + keep:
        os.utime(p, (old, old))
    assert stale_temps([model, metrics]) == sorted(left)
    fresh = tmp_path / "metrics" / ".train.json.live.tmp"
    fresh.write_text("being written")
    assert fresh not in stale_temps([metrics])  # a live writer renames it within seconds
    assert fresh in stale_temps([metrics], min_age_s=0)
    assert set(clean_stale_temps([model, metrics])) == set(left)
    assert all(not p.exists() for p in left) and all(p.exists() for p in keep) and fresh.exists()
    assert stale_temps([tmp_path / "missing" / "x"]) == []


def test_restore_needs_a_recorded_stage(tmp_path: Path) -> None:
    assert not recorded(tmp_path, "train")
    assert "nothing to restore" in restore_outputs(tmp_path, "train")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  train:\n    cmd: x\n    outs:\n    - path: m\n      md5: 1\n")
    assert recorded(tmp_path, "train") and not recorded(tmp_path, "evaluate")
    (tmp_path / "dvc.lock").write_text(":\n  - [")
    assert not recorded(tmp_path, "train")
