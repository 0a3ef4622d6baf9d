"""params.yaml: a stage's sections must be complete (no silent code defaults), and deploy reads
the committed version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, git
from vertex_edge.errors import ConfigError
from vertex_edge.params import SECTIONS, committed_params, load_params, missing_keys, parse_params


def test_the_committed_params_file_sets_every_key() -> None:
    params = load_params(REPO / "params.yaml", require=list(SECTIONS))
    assert params.evaluate.min_accuracy == 0.9 and params.deploy.max_regression == 0.01


def test_an_empty_file_is_an_error_naming_what_is_needed(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("")
    with pytest.raises(ConfigError, match="is empty: it must set train") as err:
        load_params(tmp_path / "params.yaml", require=["train"])
    assert "git checkout -- params.yaml" in (err.value.hint or "")
    assert load_params(tmp_path / "params.yaml").train.epochs >= 1  # readers that need nothing still work


def test_a_partial_section_names_every_missing_key(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    del data["train"]["learning_rate"]
    del data["train"]["model"]["dense"]
    data["evaluate"] = {}
    text = yaml.safe_dump(data)
    with pytest.raises(ConfigError) as err:
        parse_params(text, "params.yaml", require=["train", "evaluate"])
    assert "does not set train.learning_rate, train.model.dense, evaluate.min_accuracy" in err.value.message
    parse_params(text, "params.yaml", require=["deploy"])  # only the required sections are checked


def test_missing_keys_walks_nested_sections() -> None:
    from vertex_edge.params import TrainParams

    assert missing_keys(TrainParams, None, "train") == ["train"]
    assert "train.augment.flip" in missing_keys(TrainParams, {"augment": {"shift": 0}}, "train")


def test_bad_values_and_bad_yaml(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["train"]["epochs"] = 0
    with pytest.raises(ConfigError, match="train.epochs"):
        parse_params(yaml.safe_dump(data), "params.yaml", require=["train"])
    with pytest.raises(ConfigError, match="not valid YAML at line 1"):
        parse_params("train: [", "params.yaml")


def test_committed_params_read_head_not_the_working_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text("evaluate:\n  min_accuracy: 0.9\n")
    assert committed_params(repo, repo / "params.yaml") is None  # not a git checkout
    for args in (["init", "-q"], ["config", "user.email", "t@e"], ["config", "user.name", "t"]):
        git(repo, *args)
    assert committed_params(repo, repo / "params.yaml") is None  # no commit yet
    git(repo, "add", "params.yaml")
    git(repo, "commit", "-qm", "params")
    (repo / "params.yaml").write_text("evaluate:\n  min_accuracy: 0.0\n")
    found = committed_params(repo, repo / "params.yaml", require=["evaluate"])
    assert found is not None
    params, source = found
    assert params.evaluate.min_accuracy == 0.9
    assert source == f"params.yaml at commit {git(repo, 'rev-parse', 'HEAD')[:8]}"
