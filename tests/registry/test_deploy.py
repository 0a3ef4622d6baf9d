"""`python deploy-vertex.py` on the local target: register, gate, traffic, rollback, dry run;
judging a model by ITS figures against the committed gate and the champion."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import git
from tests.registry.conftest import train

REG = Path(".edge/registry/fashion-mnist")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_dry_run_prints_the_plan_and_changes_nothing(deploy_project: Path, deploy_cli) -> None:
    code, out, err = deploy_cli("--dry-run")
    assert code == 0, err
    assert "would register" in out and "as fashion-mnist version 1" in out
    assert "quality gate (params.yaml (working tree)): test accuracy 0.9300 >= the quality gate 0.9000" in out
    assert "champion/challenger: nothing takes traffic yet; not compared" in out
    assert "would set fashion-mnist-endpoint traffic to {1: 100} (now none)" in out
    assert "nothing was changed" in out
    assert not (deploy_project / ".edge").exists()


def test_deploy_registers_a_version_with_metadata_and_points_the_endpoint(deploy_project: Path, deploy_cli) -> None:
    code, out, err = deploy_cli()
    assert code == 0, err
    assert "registered" in out and "version 1" in out
    assert "pointed fashion-mnist-endpoint at version 1: traffic {1: 100} (was none)" in out
    assert "python edge.py serve" in out and "curl -s -H 'Content-Type: application/json'" in out
    assert "sample-request.json http://127.0.0.1:8080/predict" in out
    folder = deploy_project / REG / "versions" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["metadata.json", "model.keras", "model.onnx", "model_card.json"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["version"] == "1"
    assert meta["model_version"] == "v1-aaaa"
    assert meta["created"] and meta["trained"]
    assert meta["git"]["commit"].startswith("3f2a9c1d")
    assert meta["data_version"] == "md5:0123456789abcdef"
    assert meta["params"] == {"epochs": 1, "batch_size": 128}
    assert meta["metrics"]["test_accuracy"] == 0.93
    assert meta["metrics"]["evaluate"]["count"] == 100
    assert meta["metrics"]["test_accuracy_source"].startswith("evaluation.json (ONNX Runtime, 100 test images")
    assert meta["quality_gate"] == {
        "threshold": 0.9, "accuracy": 0.93, "margin": 0.03, "passed": True, "min_accuracy": 0.9,
        "source": "params.yaml (working tree)", "forced": False,
    }  # fmt: skip
    assert meta["sacred_run_id"] == "7"
    endpoint = json.loads((deploy_project / REG / "endpoint.json").read_text())
    assert endpoint["traffic"] == {"1": 100}
    sample = json.loads((deploy_project / REG / "sample-request.json").read_text())
    assert len(sample["instances"][0]) == 28


def test_redeploying_the_same_model_changes_nothing(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0
    before = (deploy_project / REG / "endpoint.json").read_text()
    code, out, _ = deploy_cli()
    assert code == 0
    assert "version 1 already holds this model.onnx: not registered again" in out
    assert "already sends all traffic to version 1: no change" in out
    assert (deploy_project / REG / "endpoint.json").read_text() == before
    assert [p.name for p in (deploy_project / REG / "versions").iterdir()] == ["1"]


def test_quality_gate_refuses_with_the_figures_unless_forced(deploy_project: Path, deploy_cli) -> None:
    train(deploy_project, version="v-bad", accuracy=0.85)
    code, out, err = deploy_cli()
    assert code == 1
    assert "refusing to deploy v-bad: test accuracy 0.8500" in err
    assert "below the quality gate evaluate.min_accuracy 0.9000" in err
    assert "--force" in err and "Traceback" not in err
    assert not (deploy_project / ".edge").exists()

    code, out, err = deploy_cli("--force")
    assert code == 0, err
    assert "--force: deploying although test accuracy 0.8500 is below the quality gate 0.9000" in out
    meta = json.loads((deploy_project / REG / "versions" / "1" / "metadata.json").read_text())
    gate = meta["quality_gate"]
    assert (gate["passed"], gate["forced"], gate["threshold"], gate["accuracy"]) == (False, True, 0.9, 0.85)
    assert gate["forced_by"] and gate["forced_at"]
    endpoint = json.loads((deploy_project / REG / "endpoint.json").read_text())
    assert endpoint["history"][-1]["forced"] is True

    # a version registered below the gate takes traffic again only with --force
    train(deploy_project, version="v-good", accuracy=0.95)
    assert deploy_cli()[0] == 0
    code, _, err = deploy_cli("--version", "1")
    assert code == 1 and "version 1 was registered below the quality gate" in err
    assert deploy_cli("--version", "1", "--force")[0] == 0


def test_min_accuracy_can_only_make_the_gate_stricter(deploy_project: Path, deploy_cli) -> None:
    code, _, err = deploy_cli("--min-accuracy", "0.95", "--dry-run")
    assert code == 1 and "below the quality gate evaluate.min_accuracy 0.9500" in err
    code, _, err = deploy_cli("--min-accuracy", "0.5")
    assert code == 2 and "can only make the gate stricter" in err and "--force" in err
    code, _, err = deploy_cli("--min-accuracy", "1.5")
    assert code == 2 and "between 0 and 1" in err


def test_the_committed_threshold_decides_not_the_working_tree(deploy_project: Path, deploy_cli) -> None:
    for args in (["init", "-q"], ["config", "user.email", "t@e"], ["config", "user.name", "t"],
                 ["add", "params.yaml"], ["commit", "-qm", "params"]):  # fmt: skip
        git(deploy_project, *args)
    commit = git(deploy_project, "rev-parse", "HEAD")[:8]
    # an experiment's override in the working tree (`dvc exp run -S evaluate.min_accuracy=0`, then apply)
    (deploy_project / "params.yaml").write_text("train:\n  epochs: 1\nevaluate:\n  min_accuracy: 0.0\n")
    train(deploy_project, version="v-weak", accuracy=0.76)
    code, out, err = deploy_cli("--dry-run")
    assert code == 1
    assert f"quality gate (params.yaml at commit {commit}): test accuracy 0.7600 is below the quality gate 0.9000" in out
    assert "the working tree's params.yaml sets evaluate.min_accuracy 0.0000" in out
    assert f"the threshold comes from params.yaml at commit {commit}" in err
    assert not (deploy_project / ".edge").exists()


def test_deploy_then_rollback_walks_back_the_history(deploy_project: Path, deploy_cli, edge_cli) -> None:
    assert deploy_cli()[0] == 0
    train(deploy_project, version="v2-bbbb", accuracy=0.94, bias_class=3)
    assert deploy_cli()[0] == 0
    train(deploy_project, version="v3-cccc", accuracy=0.95, bias_class=5)
    code, out, _ = deploy_cli()
    assert code == 0 and "traffic {3: 100} (was {2: 100})" in out

    code, out, _ = deploy_cli("--rollback", "--dry-run")
    assert code == 0 and "would roll fashion-mnist-endpoint back from version 3 to version 2" in out
    code, out, _ = deploy_cli("--rollback")
    assert code == 0 and "rolled back fashion-mnist-endpoint at version 2: traffic {2: 100} (was {3: 100})" in out
    code, out, _ = deploy_cli("--rollback")
    assert code == 0 and "at version 1" in out
    code, _, err = deploy_cli("--rollback")
    assert code != 0 and "no earlier deployment to roll back to" in err

    code, out, _ = deploy_cli("--version", "3")
    assert code == 0 and "traffic {3: 100} (was {1: 100})" in out
    code, _, err = deploy_cli("--version", "9")
    assert code != 0 and "has no version 9 (registered: 1, 2, 3)" in err

    code, out, err = edge_cli("endpoint", "describe")
    assert code == 0, err
    assert "version 3: 100%" in out and "v2-bbbb" in out and "rollback" in out
    code, out, _ = edge_cli("endpoint", "describe", "--json")
    data = json.loads(out)
    assert data["traffic_version"] == "3" and data["serving_version"] is None and data["server"] is None
    assert [v["traffic"] for v in data["versions"]] == [0, 0, 100]
    assert data["versions"][1]["metrics"]["test_accuracy"] == 0.94


def test_rollback_with_nothing_deployed(deploy_project: Path, deploy_cli) -> None:
    code, _, err = deploy_cli("--rollback")
    assert code != 0 and "has no deployment to roll back" in err


def test_missing_or_inconsistent_model_is_refused(deploy_project: Path, deploy_cli) -> None:
    (deploy_project / "models" / "fashion-mnist" / "model.onnx").write_bytes(b"tampered")
    code, _, err = deploy_cli()
    assert code != 0 and "the files do not belong together" in err
    code, _, err = deploy_cli("--model-dir", "models/nope")
    assert code != 0 and "models/nope does not exist" in err and "dvc repro" in err
    assert not (deploy_project / ".edge").exists()


def test_missing_evaluation_falls_back_to_the_card(deploy_project: Path, deploy_cli) -> None:
    (deploy_project / "reports" / "evaluation.json").unlink()
    code, out, err = deploy_cli("--dry-run")
    assert code == 0, err
    assert "judging the model by its card's test accuracy" in out


def test_an_evaluation_of_another_model_is_an_error(deploy_project: Path, deploy_cli) -> None:
    """`dvc repro train` without evaluate: the record names the previous model's sha256."""
    stale = (deploy_project / "reports" / "evaluation.json").read_text()
    train(deploy_project, version="v-new", accuracy=0.26, bias_class=2)
    (deploy_project / "reports" / "evaluation.json").write_text(stale)
    code, _, err = deploy_cli("--force")
    assert code == 1
    assert "is the evaluation of model v1-aaaa" in err and "holds model v-new" in err
    assert "belong to another model" in err and "dvc repro" in err
    assert not (deploy_project / ".edge").exists()


def test_champion_challenger(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0  # version 1: 0.93
    train(deploy_project, version="v-worse", accuracy=0.91, bias_class=4)  # passes the gate, 0.02 below the champion
    code, out, err = deploy_cli("--dry-run")
    assert code == 1
    assert "champion/challenger: challenger 0.9100 vs champion version 1 0.9300 (-0.0200; tolerance -0.0100): REFUSED" in out
    assert "deploying would be refused" in out and "more than deploy.max_regression 0.0100" in err
    code, _, err = deploy_cli()
    assert code == 1 and "is 0.0200 below version 1 (0.9300)" in err
    assert [p.name for p in (deploy_project / REG / "versions").iterdir()] == ["1"]

    (deploy_project / "params.yaml").write_text("train:\n  epochs: 1\nevaluate:\n  min_accuracy: 0.9\ndeploy:\n  max_regression: 0.05\n")
    code, out, _ = deploy_cli("--dry-run")
    assert code == 0 and "(-0.0200; tolerance -0.0500): ok" in out

    (deploy_project / "params.yaml").write_text("train:\n  epochs: 1\nevaluate:\n  min_accuracy: 0.9\ndeploy:\n  max_regression: 0.0\n")
    code, out, err = deploy_cli("--force")
    assert code == 0, err
    meta = json.loads((deploy_project / REG / "versions" / "2" / "metadata.json").read_text())
    assert meta["quality_gate"]["forced"] is True and meta["quality_gate"]["passed"] is True
    assert meta["quality_gate"]["champion"] == {"version": "version 1", "accuracy": 0.93, "max_regression": 0.0, "ok": False}


def test_champion_on_other_data_is_shown_not_enforced(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0
    folder = train(deploy_project, version="v-newdata", accuracy=0.91, bias_class=4)
    card = json.loads((folder / "model_card.json").read_text())
    (folder / "model_card.json").write_text(json.dumps({**card, "data_version": "md5:ffff"}))
    code, out, err = deploy_cli()
    assert code == 0, err
    assert "measured on different data versions, not enforced" in out


def test_a_corrupt_version_never_takes_traffic(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli()[0] == 0
    train(deploy_project, version="v2-bbbb", accuracy=0.94, bias_class=3)
    assert deploy_cli()[0] == 0
    (deploy_project / REG / "versions" / "1" / "model.onnx").write_bytes(b"bit rot")
    before = (deploy_project / REG / "endpoint.json").read_text()
    for args in (["--rollback"], ["--rollback", "--dry-run"], ["--version", "1"]):
        code, _, err = deploy_cli(*args)
        assert code == 1, args
        assert "version 1 is corrupt" in err
    assert (deploy_project / REG / "endpoint.json").read_text() == before


def test_rollback_onto_a_corrupt_version_names_the_newest_intact_one(deploy_project: Path, deploy_cli) -> None:
    """v1, v2, v3 deployed; v2 (the rollback target) rots: refused, naming v1 and how to go there."""
    assert deploy_cli()[0] == 0
    train(deploy_project, version="v2-bbbb", accuracy=0.94, bias_class=3)
    assert deploy_cli()[0] == 0
    train(deploy_project, version="v3-cccc", accuracy=0.95, bias_class=5)
    assert deploy_cli()[0] == 0
    (deploy_project / REG / "versions" / "2" / "model.onnx").write_bytes(b"bit rot")
    before = (deploy_project / REG / "endpoint.json").read_text()
    code, _, err = deploy_cli("--rollback")
    assert code == 1
    assert "cannot roll fashion-mnist-endpoint back to version 2: version 2 is corrupt" in err
    assert "versions/2/model.onnx has sha256" in err and "the endpoint was not changed" in err
    assert "the newest intact earlier version is 1: 'python deploy-vertex.py --version 1'" in err
    assert (deploy_project / REG / "endpoint.json").read_text() == before
    (deploy_project / REG / "versions" / "1" / "model.keras").write_bytes(b"not the card's")  # any listed file counts
    code, _, err = deploy_cli("--rollback")
    assert code == 1 and "no earlier version is intact" in err
    code, _, err = deploy_cli("--version", "1")
    assert code == 1 and "version 1 is corrupt" in err and "versions/1/model.keras" in err
    assert (deploy_project / REG / "endpoint.json").read_text() == before


def test_every_file_the_card_lists_is_registered(deploy_project: Path, deploy_cli) -> None:
    """e.g. the reference profile 'edge.py monitor' compares with, listed in the card by training."""
    folder = deploy_project / "models" / "fashion-mnist"
    (folder / "reference_profile.npz").write_bytes(b"a profile")
    card = json.loads((folder / "model_card.json").read_text())
    card["artifacts"]["reference_profile.npz"] = {"sha256": hashlib.sha256(b"a profile").hexdigest(), "bytes": 9}
    (folder / "model_card.json").write_text(json.dumps(card))
    code, _, err = deploy_cli()
    assert code == 0, err
    assert (deploy_project / REG / "versions" / "1" / "reference_profile.npz").read_bytes() == b"a profile"


def test_flag_conflicts(deploy_project: Path, deploy_cli) -> None:
    assert deploy_cli("--rollback", "--version", "1")[0] == 2
    assert deploy_cli("--rollback", "--force")[0] == 2


def test_endpoint_describe_before_any_deployment(deploy_project: Path, edge_cli) -> None:
    code, out, _ = edge_cli("endpoint", "describe")
    assert code == 0 and "no versions registered" in out


def test_serve_without_a_deployment_says_what_to_do(deploy_project: Path, edge_cli) -> None:
    code, _, err = edge_cli("serve")
    assert code == 2 and "deploy-vertex.py" in err


def test_entry_point_script(deploy_project: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(repo / "deploy-vertex.py"), "--dry-run"],
        cwd=deploy_project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "would register" in proc.stdout


def test_serve_on_a_busy_port_says_so(deploy_project: Path, deploy_cli, edge_cli) -> None:
    import socket

    assert deploy_cli()[0] == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = edge_cli("serve", "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
