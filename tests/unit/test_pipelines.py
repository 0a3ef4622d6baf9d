"""The two DVC pipelines: every stage but `train` identical, dvc.yaml a copy of one of them, the
`edge.py train` paths the same as the stages', params checked before train, every output cached
(a failed stage gets them back with `dvc checkout`), and only the compared figures as metrics."""

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
    assert {"vertex_job.json": {"cache": False}} in train["outs"]
    # same outputs and params as the local stage, plus the job record
    assert [o for o in train["outs"] if o != {"vertex_job.json": {"cache": False}}] == local["outs"]
    assert train["params"] == local["params"]
    for dep in train["deps"]:
        assert (REPO / dep).exists() or dep in ("data/prepared", "reports/train_params.json"), dep


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


def test_params_are_checked_before_train_and_evaluate_delete_anything() -> None:
    for file in PIPELINES.values():
        stages = load(file)["stages"]
        check = stages["check"]
        assert check["cmd"].startswith("python -m steps.check ")
        assert set(check["params"]) == {"train", "evaluate", "deploy"}
        (out,) = check["outs"]
        assert out in stages["train"]["deps"]  # so DVC runs check first


def test_every_output_is_cached_and_only_the_compared_figures_are_metrics() -> None:
    for file in PIPELINES.values():
        pipeline = load(file)
        for name, stage in pipeline["stages"].items():
            for key in ("outs", "metrics", "plots"):
                for out in stage.get(key, []):
                    options = next(iter(out.values())) if isinstance(out, dict) else {}
                    if out != {"vertex_job.json": {"cache": False}}:  # the job record stays in git
                        assert options.get("cache", True), f"{file}: {name}: {out} is not cached"
            assert "metrics" not in stage, f"{file}: {name}: metrics are registered at the top level"
        assert pipeline["metrics"] == ["metrics/evaluate.json", "metrics/train.json"]  # evaluate's first
        outs = [o if isinstance(o, str) else next(iter(o)) for s in pipeline["stages"].values() for o in s["outs"]]
        assert set(pipeline["metrics"]) <= set(outs)
        assert "reports/data.json" in outs and "reports/evaluation.json" in outs
