"""edge.yaml validation: unknown keys, wrong types and missing fields are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from vertex_edge.config import EdgeConfig, dump_config, load_config, parse_config
from vertex_edge.errors import ConfigError


def test_defaults_are_local() -> None:
    config = parse_config({})
    assert config.target == "local"
    assert config.model.name == "fashion-mnist"
    assert config.storage.root == ".edge"
    assert config.tracking.mongodb_url is None


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    config = parse_config({"model": {"name": "shoes"}, "tracking": {"mongodb_url": "mongodb://db:27017"}})
    path.write_text(dump_config(config))
    assert load_config(path) == config


def test_local_config_omits_cloud_defaults() -> None:
    assert "\nvertex:" not in dump_config(EdgeConfig())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"modle": {"name": "x"}}, ["modle: unknown key", "expected one of: version, target, model"]),
        ({"model": {"name": "x", "size": 3}}, ["model.size: unknown key", "expected one of: name"]),
        ({"target": "aws"}, ["target:", "'local' or 'gcp'", "'aws'"]),
        ({"tracking": {"enabled": "maybe"}}, ["tracking.enabled:", "bool"]),
        ({"model": {"name": "Bad Name"}}, ["model.name:", "lower-case letters"]),
        ({"target": "gcp"}, ["target 'gcp' needs a 'gcp' section"]),
        ({"target": "gcp", "gcp": {"region": "us-central1"}}, ["gcp.project: missing required key", "GCP project id"]),
        ({"vertex": {"serving": {"min_replicas": 3, "max_replicas": 1}}}, ["max_replicas must be >= min_replicas"]),
    ],
)
def test_invalid_configs_name_key_problem_and_form(data: dict, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    message = err.value.message
    for fragment in expected:
        assert fragment in message, message
    assert err.value.exit_code == 2


def test_password_in_mongodb_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"tracking": {"mongodb_url": "mongodb://user:s3cr3t@db:27017"}})
    assert "EDGE_MONGODB_URL" in err.value.message
    assert "s3cr3t" not in err.value.message


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("target: local\nmodel: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "not valid YAML" in err.value.message and "line" in err.value.message


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(path)


def test_missing_file_hints_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "edge.yaml")
    assert "edge.py setup" in (err.value.hint or "")


def test_the_monitoring_section(tmp_path: Path) -> None:
    assert parse_config({}).monitoring.sample_rate == 1.0 and "monitoring" not in dump_config(EdgeConfig())
    config = parse_config({"monitoring": {"sample_rate": 0.25, "request_response_logging": False}})
    path = tmp_path / "edge.yaml"
    path.write_text(dump_config(config))
    assert "monitoring:" in path.read_text() and load_config(path) == config
    with pytest.raises(ConfigError) as err:
        parse_config({"monitoring": {"sample_rate": 1.5, "sampling": 1, "capture": "sometimes"}})
    message = err.value.message
    assert "monitoring.sample_rate: Input should be less than or equal to 1 (got 1.5); expected share of instances" in message
    assert "monitoring.sampling: unknown key (expected one of: capture, sample_rate, request_response_logging)" in message
    assert "monitoring.capture:" in message
