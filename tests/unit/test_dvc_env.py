"""What DVC tells a stage: the experiment, and where a queued experiment's workspace is."""

from __future__ import annotations

from pathlib import Path

from vertex_edge.dvc_env import dvc_context, queued_workspace, stage_config, workspace_root


def test_outside_dvc_and_under_dvc_repro(tmp_path: Path) -> None:
    assert dvc_context(tmp_path, {}) == {"experiment": None, "baseline": None, "queued": False, "stage": None}
    env = {"DVC_ROOT": str(tmp_path), "DVC_STAGE": "train"}
    assert dvc_context(tmp_path, env) == {"experiment": None, "baseline": None, "queued": False, "stage": "train"}
    assert workspace_root(tmp_path, env) == tmp_path


def test_dvc_exp_run_in_the_workspace(tmp_path: Path) -> None:
    env = {"DVC_ROOT": str(tmp_path), "DVC_STAGE": "train", "DVC_EXP_NAME": "lr-1e3", "DVC_EXP_BASELINE_REV": "c0ffee"}
    assert dvc_context(tmp_path, env) == {"experiment": "lr-1e3", "baseline": "c0ffee", "queued": False, "stage": "train"}


def test_a_queued_experiment_runs_in_a_temporary_clone_of_the_workspace(tmp_path: Path) -> None:
    clone = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    clone.mkdir(parents=True)
    env = {"DVC_ROOT": str(tmp_path), "DVC_EXP_NAME": "q1", "DVC_EXP_BASELINE_REV": "c0ffee"}
    assert queued_workspace(clone, env) == tmp_path.resolve()
    assert dvc_context(clone, env)["queued"] is True
    assert workspace_root(clone, env) == tmp_path.resolve()
    # edge.yaml is not committed: the clone has none, the workspace's is used
    (tmp_path / "edge.yaml").write_text("version: 1\ntarget: local\nmodel:\n  name: shoes\n")
    assert stage_config(clone, Path("edge.yaml"), env).model.name == "shoes"
    assert stage_config(clone, Path("edge.yaml"), {}).model.name == "fashion-mnist"  # not queued: defaults
