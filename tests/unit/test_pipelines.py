"""The two DVC pipelines: every stage but `train` identical, dvc.yaml a copy of one of them, and the
`edge.py train` paths the same as the stages'."""

from __future__ import annotations

import shlex

import yaml

from tests.conftest import REPO
from vertex_edge.cli.train import PIPELINES
from vertex_edge.training.stage import DATA_DIR, JOB_RECORD, OUTPUTS, PARAMS_FILE


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def test_every_stage_but_train_is_identical() -> None:
    local, vertex = load("dvc-step1.yaml"), load("dvc-step2.yaml")
    assert list(local["stages"]) == list(vertex["stages"])
    for name in local["stages"]:
        if name != "train":
            assert local["stages"][name] == vertex["stages"][name], f"stage {name!r} differs"
    assert {k: v for k, v in local.items() if k != "stages"} == {k: v for k, v in vertex.items() if k != "stages"}


def test_vertex_train_stage_submits_the_job_and_records_it() -> None:
    local = load("dvc-step1.yaml")["stages"]["train"]
    train = load("dvc-step2.yaml")["stages"]["train"]
    assert train["cmd"].startswith("python -m steps.train_vertex ")
    assert "vertex_job.json" in [next(iter(o)) if isinstance(o, dict) else o for o in train["outs"]]
    # same outputs, params, metrics and plots as the local stage, plus the job record
    assert [o for o in train["outs"] if o != {"vertex_job.json": {"cache": False}}] == local["outs"]
    for key in ("params", "metrics", "plots"):
        assert train[key] == local[key]
    for dep in train["deps"]:
        assert (REPO / dep).exists() or dep == "data/prepared", dep


def test_dvc_yaml_is_one_of_the_pipelines() -> None:
    active = (REPO / "dvc.yaml").read_bytes()
    assert active in {(REPO / f).read_bytes() for f in PIPELINES.values()}


def test_edge_train_uses_the_stage_paths() -> None:
    stage_args = [
        "--data-dir", str(DATA_DIR), "--params", str(PARAMS_FILE), "--model-dir", str(OUTPUTS.model_dir),
        "--metrics", str(OUTPUTS.metrics), "--history", str(OUTPUTS.history),
    ]  # fmt: skip
    for file, extra in (("dvc-step1.yaml", []), ("dvc-step2.yaml", ["--job-record", str(JOB_RECORD)])):
        argv = shlex.split(load(file)["stages"]["train"]["cmd"])[3:]
        assert argv == [*stage_args, *extra], file
