"""`edge.py train --dry-run`, `edge.py pipeline use|show` and `edge.py images`, in process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import git
from vertex_edge.cli.edge import main
from vertex_edge.cli.train import webapp_chart_values
from vertex_edge.config import parse_config

GCP_EDGE_YAML = {"target": "gcp", "gcp": {"project": "my-proj-123", "region": "europe-west4"}}


@pytest.fixture
def edge(capsys: pytest.CaptureFixture[str], project: Path) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--repo", str(project), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to find Google credentials (or reach Google) fails the test."""
    import google.auth

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a dry run must not look for credentials")

    monkeypatch.setattr(google.auth, "default", refuse)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def test_vertex_dry_run_prints_the_custom_job_spec_without_credentials(
    edge: Callable[..., tuple[int, str, str]], project: Path, prepared: Path, no_credentials: None
) -> None:
    (project / "edge.yaml").write_text(yaml.safe_dump(GCP_EDGE_YAML))
    shutil.copytree(prepared, project / "data" / "prepared")
    code, out, err = edge("train", "--backend", "vertex", "--dry-run", "--replicas", "2")
    assert code == 0, err
    spec = json.loads(out)
    commit = git(project, "rev-parse", "HEAD").strip()
    assert spec["project"] == "my-proj-123" and spec["location"] == "europe-west4"
    job = spec["custom_job"]
    pools = job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 1]
    assert pools[0]["machine_spec"]["accelerator_type"] == "NVIDIA_TESLA_T4"
    assert pools[0]["container_spec"]["image_uri"] == f"europe-west4-docker.pkg.dev/my-proj-123/edge/trainer:{commit}"
    assert job["job_spec"]["base_output_directory"]["output_uri_prefix"].startswith(
        "gs://my-proj-123-edge/vertex/jobs/"
    )
    assert job["labels"]["git_commit"] == commit
    assert not (project / "vertex_job.json").exists() and not (project / "models").exists()


def test_vertex_dry_run_from_a_fresh_checkout_with_project_flag(
    edge: Callable[..., tuple[int, str, str]], project: Path, no_credentials: None
) -> None:
    """No edge.yaml, no gcp section, no prepared data: --project is enough to see the CustomJob."""
    assert not (project / "edge.yaml").exists()
    code, out, err = edge(
        "train", "--backend", "vertex", "--dry-run", "--project", "demo-proj-42", "--region", "europe-west1"
    )
    assert code == 0, err
    spec = json.loads(out)
    assert spec["project"] == "demo-proj-42" and spec["location"] == "europe-west1"
    image = spec["custom_job"]["job_spec"]["worker_pool_specs"][0]["container_spec"]["image_uri"]
    assert image.startswith("europe-west1-docker.pkg.dev/demo-proj-42/edge/trainer:")
    assert not (project / "edge.yaml").exists()  # the flag plans; it writes no config


def test_project_flag_only_plans_vertex_jobs(edge: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = edge("train", "--project", "demo-proj-42")
    assert code == 2 and "--backend vertex --dry-run" in err


def test_dry_run_without_gcp_config_says_what_to_do(edge: Callable[..., tuple[int, str, str]], project: Path) -> None:
    (project / "edge.yaml").write_text(yaml.safe_dump({"target": "local"}))
    code, out, err = edge("train", "--backend", "vertex", "--dry-run")
    assert code == 2
    assert "needs a 'gcp' section" in err and "vertex-local" in err
    code, out, err = edge("train", "--backend", "cloud")
    assert code == 2 and "expected one of local, vertex, vertex-local" in err


def test_local_dry_run_names_the_stage(edge: Callable[..., tuple[int, str, str]], project: Path) -> None:
    (project / "edge.yaml").write_text(yaml.safe_dump({"target": "local"}))
    code, out, _ = edge("train", "--dry-run")
    assert (
        code == 0 and "would train here: data/prepared -> models/fashion-mnist" in out and "nothing was changed" in out
    )


def test_pipeline_use_and_show(edge: Callable[..., tuple[int, str, str]], project: Path) -> None:
    code, out, _ = edge("pipeline", "show")
    assert code == 0 and "active pipeline: local (dvc.yaml = dvc-step1.yaml)" in out
    code, out, _ = edge("pipeline", "use", "vertex", "--dry-run")
    assert code == 0 and "would copy dvc-step2.yaml" in out
    assert (project / "dvc.yaml").read_bytes() == (project / "dvc-step1.yaml").read_bytes()
    code, out, _ = edge("pipeline", "use", "vertex")
    assert code == 0 and "dvc.yaml is now dvc-step2.yaml" in out
    assert (project / "dvc.yaml").read_bytes() == (project / "dvc-step2.yaml").read_bytes()
    assert not list(project.glob(".dvc.yaml.*"))  # written atomically: no temporary file left
    code, out, _ = edge("pipeline", "use", "vertex")
    assert code == 0 and "already active" in out
    code, out, _ = edge("pipeline", "show")
    assert "active pipeline: vertex (dvc.yaml = dvc-step2.yaml)" in out
    code, out, err = edge("pipeline", "use", "cloud")
    assert code == 2 and "expected one of local, vertex" in err


def test_pipeline_use_refuses_to_drop_hand_edits_without_yes(
    edge: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    edited = (project / "dvc-step1.yaml").read_text() + "# my own edit\n"
    (project / "dvc.yaml").write_text(edited)
    code, out, _ = edge("pipeline", "show")
    assert "custom" in out
    code, out, err = edge("pipeline", "use", "local")
    assert code == 2 and "needs confirmation: pass --yes" in err
    assert (project / "dvc.yaml").read_text() == edited
    code, out, _ = edge("pipeline", "use", "local", "--yes")
    assert code == 0 and (project / "dvc.yaml").read_bytes() == (project / "dvc-step1.yaml").read_bytes()


def test_images_are_tagged_with_the_commit(edge: Callable[..., tuple[int, str, str]], project: Path) -> None:
    (project / "edge.yaml").write_text(yaml.safe_dump(GCP_EDGE_YAML))
    commit = git(project, "rev-parse", "HEAD").strip()
    code, out, _ = edge("images")
    registry = "europe-west4-docker.pkg.dev/my-proj-123/edge"
    assert code == 0
    assert out.split() == [f"{registry}/{n}:{commit}" for n in ("trainer", "prediction", "webapp")]
    code, out, _ = edge("images", "--only", "prediction", "--tag", "v1")
    assert out.strip() == f"{registry}/prediction:v1"


def test_webapp_values_name_the_endpoint_and_the_feedback_prefix(project: Path) -> None:
    config = parse_config(GCP_EDGE_YAML)
    values = webapp_chart_values(config, project, "europe-west4-docker.pkg.dev/p/edge/webapp:abc", endpoint_id="42")
    assert values["image"] == {"repository": "europe-west4-docker.pkg.dev/p/edge/webapp", "tag": "abc"}
    assert values["endpoint"] == {"backend": "vertex", "id": "42"}
    assert values["feedback"] == {
        "uri": "gs://my-proj-123-edge/monitoring/fashion-mnist/feedback",
        "modelInputLogged": True,
    }
    off = parse_config({**GCP_EDGE_YAML, "monitoring": {"capture": False, "request_response_logging": False}})
    assert webapp_chart_values(off, project, "r/webapp:t", endpoint_id="42")["feedback"] == {
        "uri": "",
        "modelInputLogged": False,
    }
