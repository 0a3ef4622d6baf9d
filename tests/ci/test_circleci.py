""".circleci/config.yml: valid against CircleCI's schema, and every command it runs exists here -
Makefile targets, scripts, `edge.py` subcommands and options, `deploy-vertex.py` flags, modules."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from tests.conftest import REPO

CONFIG = REPO / ".circleci" / "config.yml"
# tools CI installs or the image has; anything else must be something in this repository
EXTERNAL = {"sudo", "apt-get", "gcloud", "docker", "helm", "kubectl", "echo", "export", "cd", "test", "curl"}


def run_commands() -> Iterator[tuple[str, str]]:
    """(job or command name, command string) of every `run` step."""
    config = yaml.safe_load(CONFIG.read_text())
    sources = {**config.get("jobs", {}), **config.get("commands", {})}
    for name, body in sources.items():
        for step in body.get("steps", []):
            run = step.get("run") if isinstance(step, dict) else None
            if run is None:
                continue
            yield name, run if isinstance(run, str) else run["command"]


def statements(command: str) -> Iterator[list[str]]:
    """Each simple command's words (split on newlines, &&, ||, ; and |; env assignments dropped)."""
    text = command.replace("\\\n", " ")
    for line in text.splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                words.pop(0)
            if words:
                yield words


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), flags=re.M))


def edge_command() -> Any:
    from vertex_edge.cli.edge import app

    return typer.main.get_command(app)


def deploy_command() -> Any:
    from vertex_edge.cli.deploy import app

    return typer.main.get_command(app)


def check_cli(root: Any, words: list[str], where: str) -> None:
    """Walk subcommands; every --option must exist on the command reached (values skipped)."""
    command = root
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            params = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
            assert name in params, f"{where}: {' '.join(words)}: {command.name} has no option {name}"
            param = params[name]
            is_option = getattr(param, "param_type_name", "") == "option"
            takes_value = is_option and not getattr(param, "is_flag", False) and "=" not in word
            i += 2 if takes_value else 1
            continue
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            assert word in command.commands, f"{where}: no '{word}' subcommand in {' '.join(words)}"
            command = command.commands[word]
        i += 1


def check(words: list[str], where: str) -> None:
    tool = words[0]
    if tool == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        assert targets, f"{where}: 'make' without a target"
        for target in targets:
            assert target in make_targets(), f"{where}: no Makefile target '{target}'"
        return
    if tool.endswith("python") or tool in ("python3", "python3.11"):
        if tool.startswith(".venv/"):
            assert Path(sys.executable).parent.joinpath("python").exists()
        rest = words[1:]
        if rest[0] == "-m":
            module = rest[1]
            if module.startswith("steps."):
                assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{where}: no module {module}"
            else:
                assert importlib.util.find_spec(module) is not None, f"{where}: {module} is not installed"
            return
        script = rest[0]
        assert (REPO / script).is_file(), f"{where}: no script {script}"
        if script == "edge.py":
            check_cli(edge_command(), rest[1:], where)
        elif script == "deploy-vertex.py":
            check_cli(deploy_command(), rest[1:], where)
        return
    if "/" in tool:
        path = REPO / tool
        assert path.is_file(), f"{where}: no script {tool}"
        assert path.stat().st_mode & 0o111, f"{where}: {tool} is not executable"
        return
    assert tool in EXTERNAL, f"{where}: '{tool}' is neither in this repository nor a known CI tool"


@pytest.mark.slow  # runs a subprocess
def test_schema_is_valid() -> None:
    exe = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(exe), "--builtin-schema", "vendor.circle-ci", str(CONFIG)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_command_exists() -> None:
    seen = 0
    for where, command in run_commands():
        for words in statements(command):
            check(words, where)
            seen += 1
    assert seen >= 10


def test_pushes_test_and_main_deploys() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    workflow = config["workflows"]["ci"]
    jobs = {next(iter(j)) if isinstance(j, dict) else j: (j[next(iter(j))] if isinstance(j, dict) else {}) for j in workflow["jobs"]}
    assert {"lint", "unit-tests", "integration-tests", "deploy"} <= set(jobs)
    assert jobs["deploy"]["filters"] == {"branches": {"only": "main"}}
    assert set(jobs["deploy"]["requires"]) == {"lint", "unit-tests", "integration-tests"}
    deploy = " ".join(c for w, c in run_commands() if w == "deploy")
    order = ["gcp-auth.sh", "images-push", "dvc pull", "vertex-repro", "dvc push", "-m steps.gate", "deploy-vertex.py --yes",
             "webapp-deploy"]  # fmt: skip
    positions = [deploy.index(step) for step in order]
    assert positions == sorted(positions), "deploy steps out of order"


def test_a_daily_workflow_monitors_the_deployed_model() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    workflow = config["workflows"]["monitor"]
    (trigger,) = workflow["triggers"]
    assert trigger["schedule"]["cron"] == "0 6 * * *" and trigger["schedule"]["filters"] == {"branches": {"only": "main"}}
    assert workflow["jobs"] == [{"monitor": {"context": "gcp-deploy"}}]
    monitor = " ".join(c for w, c in run_commands() if w == "monitor")
    order = ["gcp-auth.sh", "edge.py setup --target gcp", "edge.py monitor --since 24h"]
    positions = [monitor.index(step) for step in order]
    assert positions == sorted(positions)
    steps = config["jobs"]["monitor"]["steps"]
    assert {"store_artifacts": {"path": "monitoring-report"}} in steps


def test_makefile_ci_targets_call_existing_cli_commands() -> None:
    text = (REPO / "Makefile").read_text()
    section = text[text.index("# --- CI and cloud targets (vertex) ---") :]
    recipes = "\n".join(line for line in section.splitlines() if line.startswith("\t"))
    calls = re.findall(r"edge\.py ([^)|\"]+)", recipes)
    assert calls
    for call in calls:
        words = [w for w in shlex.split(call) if not w.startswith("$")]
        check_cli(edge_command(), words, "Makefile")


@pytest.mark.slow  # runs bash -n
@pytest.mark.parametrize("script", [".circleci/gcp-auth.sh", ".circleci/install-cloud-tools.sh"])
def test_scripts_parse_and_never_trace_secrets(script: str) -> None:
    path = REPO / script
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    text = path.read_text()
    assert "set -x" not in text.replace("set +x", "")
    if "gcp-auth" in script:
        assert "GCLOUD_SERVICE_KEY" in text and "create-cred-config" in text
        assert 'echo "${GCLOUD_SERVICE_KEY' not in text and "echo $GCLOUD_SERVICE_KEY" not in text
