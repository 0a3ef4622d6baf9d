"""The local target's deployer: the registry and endpoint under the storage root.

``deploy`` judges the candidate (the quality gate, then champion/challenger against the version
taking traffic), registers it as the next version (or reuses the version that already holds the
same ``model.onnx``), then sends all the endpoint's traffic to it. ``rollback`` returns to the
version deployed before the current one; ``--version N`` deploys a registered version. A version
whose files do not match its card (sha256) never becomes the target of any of them.

A deployment is reported done only when it is true: when an ``edge.py serve`` follows the endpoint
(:mod:`~vertex_edge.serving_status`), deploy waits (``--wait``, default 30 s) until the
server says it serves the new version. If the server could not load it (it keeps the old one), the
endpoint is set back to the version really serving, and the deploy fails saying so.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vertex_edge.data.idx import IMAGES_MAGIC, decompress, parse_idx
from vertex_edge.deploy.candidate import Candidate, Champion, DeployResult, deploy_user, judge, was_forced
from vertex_edge.deploy.traffic import rollback_refused
from vertex_edge.errors import QualityGateError, RegistryError, UsageError
from vertex_edge.fsutil import atomic_write_bytes
from vertex_edge.gitinfo import git_info
from vertex_edge.registry import Endpoint, LocalRegistry
from vertex_edge.serving_status import DEFAULT_WAIT_S, Outcome, wait_for_version
from vertex_edge.state import utcnow

log = logging.getLogger(__name__)

SAMPLE_REQUEST = "sample-request.json"


@dataclass
class LocalDeployer:
    registry: LocalRegistry
    endpoint_name: str
    repo: Path
    target: str = "local"
    wait_s: float = DEFAULT_WAIT_S

    def configure(self, *, traffic: int | None = None, wait_s: float | None = None, **_: Any) -> None:
        """CLI options: how long to wait for a running server to confirm a deployment."""
        if traffic is not None:
            raise UsageError(f"--traffic applies to the gcp target; target '{self.target}' sends all traffic")
        if wait_s is not None:
            if wait_s < 0:
                raise UsageError(f"--wait {wait_s}: expected seconds >= 0")
            self.wait_s = wait_s

    # ---------------------------------------------------------------- deploy

    def deploy(self, candidate: Candidate, *, force: bool, dry_run: bool) -> DeployResult:
        result = DeployResult(dry_run=dry_run, notes=list(candidate.notes))
        refusal = judge(candidate, result, self._champion(candidate), force=force, recorded_in="in the registry")
        if refusal is not None and not dry_run:
            raise refusal
        card_name = candidate.card.name
        if card_name and card_name != self.registry.model_name:
            result.notes.append(
                f"the model card names the model {card_name!r}; registering it as {self.registry.model_name!r} "
                "(edge.yaml model.name)"
            )
        forced = was_forced(candidate, result, force=force)
        if dry_run:
            existing = self.registry.find_by_sha256(candidate.onnx_sha256)
            version = existing.version if existing else self.registry.next_version()
            if existing:
                result.actions.append(f"would reuse version {version}: it holds this model.onnx already")
            else:
                result.actions.append(
                    f"would register {candidate.model_dir} (model {candidate.card.version}, "
                    f"{candidate.gate_text()}) as {self.registry.model_name} version {version} "
                    f"in {self.registry.versions_dir}"
                )
            self._plan_traffic(result, version)
            result.error = refusal
            return result
        with self.registry.lock(_command("deploy")):
            existing = self.registry.find_by_sha256(candidate.onnx_sha256)
            if existing is not None:
                existing.verify()
                version = existing.version
                result.actions.append(f"version {version} already holds this model.onnx: not registered again")
            else:
                registered = self.registry.register(candidate.model_dir, self._metadata(candidate, result, forced=forced))
                version = registered.version
                result.changed = True
                result.actions.append(
                    f"registered {candidate.model_dir} as {self.registry.model_name} version {version} "
                    f"(model {candidate.card.version}, {candidate.gate_text()})"
                )
            changed_at = self._apply_traffic(result, version, "deploy", forced=forced)
        self._confirm_serving(result, version, changed_at)
        return result

    def deploy_version(self, version: str, *, dry_run: bool, force: bool = False) -> DeployResult:
        target = self.registry.get(version)
        target.verify()
        result = DeployResult(dry_run=dry_run)
        gate = target.metadata.get("quality_gate") or {}
        if gate.get("passed") is False and not force:
            raise QualityGateError(
                f"version {target.version} was registered below the quality gate "
                f"(test accuracy {target.test_accuracy}, gate {gate.get('min_accuracy')}, forced by "
                f"{gate.get('forced_by') or 'someone'})",
                hint="deploy it anyway with --force (recorded), or deploy another version",
            )
        if dry_run:
            self._plan_traffic(result, target.version)
            return result
        with self.registry.lock(_command(f"deploy --version {version}")):
            changed_at = self._apply_traffic(result, target.version, "deploy", forced=bool(force and gate.get("passed") is False))
        self._confirm_serving(result, target.version, changed_at)
        return result

    def rollback(self, *, dry_run: bool) -> DeployResult:
        result = DeployResult(dry_run=dry_run)
        endpoint, _ = self.registry.endpoint()
        target = self._rollback_target(endpoint)
        if dry_run:
            result.actions.append(
                f"would roll {self.endpoint_name} back from version {endpoint.serving_version} to version {target}"  # type: ignore[union-attr]
            )
            self._plan_traffic(result, target, describe=False)
            return result
        with self.registry.lock(_command("rollback")):
            endpoint, _ = self.registry.endpoint()  # re-read under the lock
            target = self._rollback_target(endpoint)
            changed_at = self._apply_traffic(result, target, "rollback")
        self._confirm_serving(result, target, changed_at)
        return result

    def _rollback_target(self, endpoint: Endpoint | None) -> str:
        """The version deployed before the current one, verified: a corrupt one is refused, naming
        the newest intact earlier deployment to go to instead."""
        name = self.endpoint_name
        if endpoint is None or endpoint.serving_version is None:
            raise RegistryError(f"{name} has no deployment to roll back", hint="deploy first: 'python deploy-vertex.py'")
        current = endpoint.serving_version
        stack = endpoint.deployed_stack()
        if len(stack) < 2:
            raise RegistryError(
                f"{name} serves version {current} and has no earlier deployment to roll back to",
                hint="deploy a specific version with 'python deploy-vertex.py --version N'",
            )
        target = stack[-2]
        try:
            self.registry.get(target).verify()
        except RegistryError as exc:
            earlier = [v for v in reversed(stack[:-2]) if v not in (current, target)]
            intact = next((v for v in dict.fromkeys(earlier) if self._intact(v)), None)
            raise rollback_refused(name, target, current, exc.message, intact) from None
        return target

    def _intact(self, version: str) -> bool:
        try:
            return self.registry.get(version).intact()
        except RegistryError:  # no longer registered
            return False

    # ---------------------------------------------------------------- judging

    def _champion(self, candidate: Candidate) -> Champion | None:
        endpoint, _ = self.registry.endpoint()
        serving = endpoint.serving_version if endpoint else None
        if serving is None:
            return None
        version = self.registry.get(serving)
        return Champion(f"version {serving}", version.test_accuracy, version.metadata.get("data_version"),
                        same_model=version.onnx_sha256 == candidate.onnx_sha256)  # fmt: skip

    # ---------------------------------------------------------------- helpers

    def _plan_traffic(self, result: DeployResult, version: str, *, describe: bool = True) -> None:
        endpoint, _ = self.registry.endpoint()
        current = endpoint.traffic if endpoint else {}
        result.version = version
        if endpoint is not None and endpoint.serving_version == version and endpoint.traffic == {version: 100}:
            result.actions.append(f"{self.endpoint_name} already sends all traffic to version {version}: no change")
        elif describe:
            result.actions.append(
                f"would set {self.endpoint_name} traffic to {{{version}: 100}} (now {_traffic(current)})"
            )
        result.how_to_call = self.how_to_call(version)

    def _apply_traffic(
        self, result: DeployResult, version: str, action: Literal["deploy", "rollback"], *, forced: bool = False
    ) -> datetime | None:
        """Point the endpoint at ``version``; the time it changed (None: it already pointed there)."""
        endpoint, _ = self.registry.endpoint()
        before = dict(endpoint.traffic) if endpoint else {}
        result.version = version
        changed_at = None
        if endpoint is not None and endpoint.traffic == {version: 100}:
            result.actions.append(f"{self.endpoint_name} already sends all traffic to version {version}: no change")
        else:
            changed_at = datetime.now(UTC)
            updated = self.registry.set_traffic(self.endpoint_name, version, action, deploy_user(), forced=forced)
            result.changed = True
            verb = "rolled back" if action == "rollback" else "pointed"
            result.actions.append(
                f"{verb} {self.endpoint_name} at version {version}: traffic {_traffic(updated.traffic)} "
                f"(was {_traffic(before)})"
            )
        self._write_sample_request()
        result.how_to_call = self.how_to_call(version)
        return changed_at

    def _confirm_serving(self, result: DeployResult, version: str, changed_at: datetime | None) -> None:
        """Report what the running server (if any) really serves; a failed reload is an error."""
        outcome = wait_for_version(self.registry.model_root, version, since=changed_at, timeout_s=self.wait_s)
        if outcome.ok:
            result.actions.append(outcome.text())
            return
        if outcome.kind == "failed":
            result.error = self._set_back(outcome)
            return
        result.error = RegistryError(
            f"{outcome.text()} (waited {self.wait_s:g} s)",
            hint="see the server's log; 'python edge.py endpoint describe' shows what it serves; --wait SECONDS waits longer",
        )

    def _set_back(self, outcome: Outcome) -> RegistryError:
        """The server kept its version: point the endpoint back at it so every record tells the truth."""
        serving = outcome.status.serving_version if outcome.status else None
        message = outcome.text()
        if serving:
            with self.registry.lock(_command("rollback (failed reload)")):
                self.registry.get(serving)
                self.registry.set_traffic(
                    self.endpoint_name, serving, "rollback", deploy_user(),
                    note=f"the server could not load version {outcome.version}",
                )  # fmt: skip
            message += f"; {self.endpoint_name} was set back to version {serving}, which is what it serves"
        return RegistryError(message, hint="fix the version (or deploy another one) and run deploy-vertex.py again")

    def _metadata(self, candidate: Candidate, result: DeployResult, *, forced: bool) -> dict[str, Any]:
        card = candidate.card
        evaluation = {k: v for k, v in candidate.evaluation.items() if k != "per_class"}
        comparison = result.comparison
        gate: dict[str, Any] = {**candidate.verdict.record(), "min_accuracy": candidate.min_accuracy,
                                "source": candidate.policy.source, "forced": forced}  # fmt: skip
        if forced:
            gate |= {"forced_by": deploy_user(), "forced_at": utcnow()}
        if comparison is not None:
            gate["champion"] = {"version": comparison.champion, "accuracy": comparison.champion_accuracy,
                                "max_regression": comparison.max_regression, "ok": comparison.ok}  # fmt: skip
        return {
            "model": self.registry.model_name,
            "model_version": card.version,
            "created": utcnow(),
            "trained": card.created,
            "git": card.git.model_dump(),
            "registered_at_commit": git_info(self.repo).model_dump(),
            "data_version": card.data_version,
            "params": card.params,
            "metrics": {
                "test_accuracy": candidate.accuracy,
                "test_accuracy_source": candidate.accuracy_source,
                "evaluate": evaluation,
                "card": card.metrics.model_dump(mode="json"),
                "per_class": candidate.evaluation.get("per_class"),
            },
            "quality_gate": gate,
            "sacred_run_id": card.sacred_run_id,
            "labels": card.labels,
            "artifacts": {name: d.model_dump() for name, d in card.artifacts.items()},
            "source": str(candidate.model_dir),
            "registered_by": deploy_user(),
        }

    def how_to_call(self, version: str) -> list[str]:
        port = os.environ.get("AIP_HTTP_PORT") or "8080"
        predict = os.environ.get("AIP_PREDICT_ROUTE") or "/predict"
        health = os.environ.get("AIP_HEALTH_ROUTE") or "/health"
        sample = _shown(self.registry.model_root / SAMPLE_REQUEST, self.repo)
        return [
            f"python edge.py serve      # serves version {version} on http://127.0.0.1:{port}; "
            "picks up later deployments by itself",
            f"curl -s http://127.0.0.1:{port}{health}",
            f"curl -s -H 'Content-Type: application/json' -d @{sample} http://127.0.0.1:{port}{predict}",
        ]

    def _write_sample_request(self) -> None:
        """A request to try the endpoint with: the first test images, or a blank image without the data."""
        images = _test_images(self.repo, 3)
        instances = [img.astype(int).tolist() for img in images] if images is not None else [[[0] * 28] * 28]
        body = json.dumps({"instances": instances}, separators=(",", ":"))
        atomic_write_bytes(self.registry.model_root / SAMPLE_REQUEST, body.encode("utf-8") + b"\n")


def _test_images(repo: Path, count: int):  # noqa: ANN202 - numpy array or None
    path = repo / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        return None
    try:
        images = parse_idx(decompress(path), path.name, expected_magic=IMAGES_MAGIC)
    except Exception as exc:  # noqa: BLE001 - the sample request is a convenience only
        log.debug("no sample request: %s", exc)
        return None
    return images[:count] if images.ndim == 3 and images.shape[1:] == (28, 28) else None


def _traffic(traffic: dict[str, int]) -> str:
    return "{" + ", ".join(f"{v}: {p}" for v, p in traffic.items()) + "}" if traffic else "none"


def _shown(path: Path, repo: Path) -> str:
    try:
        return str(path.relative_to(repo))
    except ValueError:
        return str(path)


def _command(what: str) -> str:
    return f"deploy-vertex.py {what}"
