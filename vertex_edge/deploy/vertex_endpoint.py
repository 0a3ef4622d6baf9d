"""The gcp target's deployer: Vertex AI Model Registry + the endpoint recorded in the state.

``deploy`` uploads the trained model as a new *version* of one registry model (the parent model:
every deployment of ``edge.yaml`` ``model.name`` lands in the same model), with the prediction
image, the Vertex AI custom-container contract (``/predict``, ``/health``, port 8080), the
artifact folder in the bucket and lineage labels (git commit, data version, Sacred run id, test
accuracy). A version that already holds the same trained model (alias ``v<card version>``) is
reused, not uploaded again.

Switching the endpoint is zero-downtime:

1. the new version is deployed *alongside* the current one with 0% traffic (100% when the
   endpoint serves nothing yet), so it only gets traffic once its replicas are up;
2. the traffic split then gives it 100% (or ``--traffic N`` for a canary: the rest stays on the
   current deployment);
3. only after the switch, deployments left with 0% traffic are undeployed.

A failure before step 2 leaves the old deployment's traffic untouched (the half-deployed new one
is removed). ``rollback`` gives all traffic back to the previous deployment (during a canary: the
older deployed model; otherwise the previous registry version, deployed the same way).

It says the truth: a registry version whose artifact folder does not match its card is never
deployed, given traffic or rolled back onto (:mod:`.vertex_registry`); a deployment is reported
done only once a fresh read of the endpoint shows the version deployed (the SDK's deploy returns
when its replicas are ready) with its share of the traffic - otherwise the command fails saying
what Vertex AI reports. Then the endpoint's request-response logging is set as ``edge.yaml``
``monitoring`` asks (:func:`~vertex_edge.monitoring.vertex.ensure_request_logging`).

The ``aiplatform`` SDK is injected (module or fake), so tests assert every call offline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vertex_edge.deploy.candidate import Candidate, Champion, DeployResult, judge, was_forced
from vertex_edge.deploy.traffic import Deployed, EndpointView, new_split, version_alias
from vertex_edge.deploy.vertex_registry import RegistryAccess
from vertex_edge.errors import CloudError, RegistryError, UsageError
from vertex_edge.gcp.errors import google_call
from vertex_edge.gcp.labels import gcp_label
from vertex_edge.monitoring.vertex import ensure_request_logging

log = logging.getLogger(__name__)


@dataclass
class VertexDeployer(RegistryAccess):
    aip: Any  # google.cloud.aiplatform, or a fake with the same surface
    upload_dir: Callable[[Path, str], None]  # copies the model folder to a gs:// URI
    project: str
    location: str
    bucket: str
    endpoint_name: str  # the endpoint's resource name, from the state
    model_name: str  # the parent model's display name
    serving_image: str
    machine_type: str = "n1-standard-2"
    min_replicas: int = 1
    max_replicas: int = 2
    credentials: Any = None
    traffic: int = 100
    confirm: Callable[[str], None] = field(default=lambda question: None)
    echo: Callable[[str], None] = field(default=lambda line: None)
    image_check: Callable[[str], None] | None = None  # raises when the prediction image is missing
    verify_model: Callable[[str], Any] | None = None  # checks a version's artifact folder (DataError if corrupt)
    serving_env: dict[str, str] = field(default_factory=dict)  # the container's capture settings
    endpoint_service: Callable[[], Any] | None = None  # builds the EndpointServiceClient (request-response logging)
    request_logging_rate: float | None = None  # edge.yaml monitoring: the logging's sampling rate (0 off)
    target: str = "gcp"

    def configure(
        self,
        *,
        traffic: int | None = None,
        confirm: Callable[[str], None] | None = None,
        echo: Callable[[str], None] | None = None,
        wait_s: float | None = None,
    ) -> None:
        """CLI options: the new version's traffic share, how to confirm, where progress goes.
        (``wait_s`` is the local target's: a Vertex AI deployment returns once it serves.)"""
        if traffic is not None:
            if not 1 <= traffic <= 100:
                raise UsageError(f"--traffic {traffic}: expected a percentage from 1 to 100")
            self.traffic = traffic
        if confirm is not None:
            self.confirm = confirm
        if echo is not None:
            self.echo = echo

    # ---------------------------------------------------------------- SDK access

    def _endpoint(self) -> Any:
        return google_call("cannot open the endpoint", lambda: self.aip.Endpoint(endpoint_name=self.endpoint_name, **self._where()))

    def _view(self, endpoint: Any) -> EndpointView:
        models = google_call("cannot read the endpoint's deployed models", endpoint.list_models)
        traffic = google_call("cannot read the endpoint's traffic split", lambda: dict(endpoint.traffic_split or {}))
        deployed = [
            Deployed(str(m.id), str(m.model).split("@", 1)[0], str(m.model_version_id or ""), str(m.display_name or ""))
            for m in models
        ]
        return EndpointView(deployed, {str(k): int(v) for k, v in traffic.items()})

    # ---------------------------------------------------------------- deploy

    def deploy(self, candidate: Candidate, *, force: bool, dry_run: bool) -> DeployResult:
        if not dry_run:
            candidate.check_gate(force=force)  # refused before any call to Google Cloud
        result = DeployResult(dry_run=dry_run, notes=list(candidate.notes))
        card = candidate.card
        alias = version_alias(card)
        parent = self._parent()
        existing = self._version(parent, alias) if parent is not None else None
        endpoint = self._endpoint()
        view = self._view(endpoint)
        refusal = judge(candidate, result, self._champion(candidate, parent, view), force=force,
                        recorded_in="in the model's labels")  # fmt: skip
        if refusal is not None and not dry_run:
            raise refusal
        forced = was_forced(candidate, result, force=force)
        if existing is not None:
            self._verify(existing)
        if dry_run:
            if existing is not None:
                result.actions.append(f"reuse registry version {existing.version_id}: it holds model {card.version}")
            else:
                parent_text = f"a new version of {parent.resource_name}" if parent is not None else "its first version"
                result.actions.append(
                    f"upload {candidate.model_dir} to {self.artifact_uri(card)} and register it as {parent_text} "
                    f"of '{self.model_name}' (model {card.version}, {candidate.gate_text()}; image {self.serving_image})"
                )
            self._plan_switch(result, view, None if existing is None else str(existing.version_id))
            result.error = refusal
            return result
        self.confirm(
            f"Deploy model {card.version} ({candidate.gate_text()}) to {self.endpoint_name} "
            f"with {self.traffic}% of the traffic?"
        )
        if existing is not None:
            model = existing
            result.actions.append(f"registry version {model.version_id} already holds model {card.version}: not uploaded again")
        else:
            model = self._upload(candidate, parent, forced=forced)
            result.changed = True
            result.actions.append(
                f"registered model {card.version} as version {model.version_id} of {model.resource_name} "
                f"({candidate.gate_text()})"
            )
        self._finish(result, model, self._switch(result, endpoint, view, model))
        return result

    def _champion(self, candidate: Candidate, parent: Any, view: EndpointView) -> Champion | None:
        """The newest deployment taking traffic, with the figures its registry labels hold."""
        live = view.newest_live()
        model = self._version(parent, live.version) if (live is not None and parent is not None) else None
        if live is None or model is None:
            return None
        labels = dict(getattr(model, "labels", None) or {})
        data = labels.get("data_version")
        same_data = data is not None and data == gcp_label(candidate.card.data_version)
        return Champion(
            f"version {live.version}", _label_accuracy(labels.get("test_accuracy")),
            None if data is None else (candidate.card.data_version if same_data else data),
            same_model=version_alias(candidate.card) in (getattr(model, "version_aliases", None) or []),
        )  # fmt: skip

    def deploy_version(self, version: str, *, dry_run: bool, force: bool = False) -> DeployResult:
        result = DeployResult(dry_run=dry_run)
        parent = self._parent()
        model = self._version(parent, version) if parent is not None else None
        if model is None:
            raise RegistryError(f"'{self.model_name}' has no registry version {version!r}")
        self._verify(model)
        endpoint = self._endpoint()
        view = self._view(endpoint)
        if dry_run:
            self._plan_switch(result, view, str(model.version_id))
            return result
        self.confirm(f"Deploy version {model.version_id} of {self.model_name} to {self.endpoint_name}?")
        self._finish(result, model, self._switch(result, endpoint, view, model))
        return result

    def rollback(self, *, dry_run: bool) -> DeployResult:
        result = DeployResult(dry_run=dry_run)
        endpoint = self._endpoint()
        view = self._view(endpoint)
        current = view.newest_live()
        if current is None:
            raise RegistryError(f"{self.endpoint_name} has no deployment to roll back", hint="deploy first: 'python deploy-vertex.py'")
        older = [d for d in view.deployed if d.id != current.id and d.order < current.order]
        parent = self._parent()
        if older:  # a canary: the previous deployment is still up
            previous = max(older, key=lambda d: d.order)
            previous_model = self._version(parent, previous.version) if parent is not None else None
            if previous_model is not None:
                self._verify(previous_model)
            split = {previous.id: 100}
            if dry_run:
                result.actions.append(
                    f"would give version {previous.version} ({previous.id}) 100% of the traffic "
                    f"(now {view.describe()}), then undeploy version {current.version}"
                )
                return result
            self.confirm(f"Roll {self.endpoint_name} back from version {current.version} to version {previous.version}?")
            google_call("cannot set the traffic split", lambda: endpoint.update(traffic_split=split))
            result.changed = True
            result.actions.append(f"rolled back: version {previous.version} gets 100% of the traffic (was {view.describe()})")
            self._undeploy_idle(result, endpoint, keep=previous.id)
            result.version = previous.version
            result.how_to_call = self.how_to_call()
            if previous_model is not None:
                self._finish(result, previous_model, 100)
            return result
        target = self._rollback_target(parent, current.version)
        if dry_run:
            result.actions.append(f"would roll {self.endpoint_name} back from version {current.version} to version {target.version_id}")
            self._plan_switch(result, view, str(target.version_id))
            return result
        self.confirm(f"Roll {self.endpoint_name} back from version {current.version} to version {target.version_id}?")
        self._finish(result, target, self._switch(result, endpoint, view, target, verb="rolled back"))
        return result

    # ---------------------------------------------------------------- steps

    def _deployed_of(self, view: EndpointView, model: Any) -> Deployed | None:
        base = str(model.resource_name).split("@", 1)[0]
        version = str(model.version_id)
        matches = [d for d in view.deployed if d.model == base and d.version == version]
        return max(matches, key=lambda d: view.share(d.id)) if matches else None

    def _plan_switch(self, result: DeployResult, view: EndpointView, version: str | None) -> None:
        shown = version or "(new)"
        result.version = version
        live = [d for d in view.deployed if view.share(d.id) > 0]
        if version is not None:
            current = next((d for d in view.deployed if d.version == version), None)
            if current is not None and view.share(current.id) == self.traffic == 100:
                result.actions.append(f"{self.endpoint_name} already sends all traffic to version {version}: no change")
                return
        result.actions.append(
            f"deploy version {shown} to {self.endpoint_name} alongside the current deployment with "
            f"{'100' if not live else '0'}% traffic ({self.machine_type}, {self.min_replicas}-{self.max_replicas} replicas)"
        )
        if live:
            result.actions.append(f"once it is up, give it {self.traffic}% of the traffic (now {view.describe()})")
            if self.traffic == 100:
                result.actions.append("then undeploy " + ", ".join(f"version {d.version} ({d.id})" for d in view.deployed))
        if self.request_logging_rate is not None:
            rate = self.request_logging_rate
            result.actions.append("then set the endpoint's request-response logging "
                                  + (f"on at a sampling rate of {rate:g}" if rate > 0 else "off") + " (edge.yaml monitoring)")  # fmt: skip
        result.how_to_call = self.how_to_call()

    def _switch(self, result: DeployResult, endpoint: Any, view: EndpointView, model: Any, *, verb: str = "deployed") -> int:
        """Deploy ``model`` alongside (if it is not yet), give it its share, undeploy the idle;
        returns the share of the traffic it should now have."""
        version = str(model.version_id)
        result.version = version
        before = view.describe()
        deployed = self._deployed_of(view, model)
        if deployed is not None and view.share(deployed.id) == self.traffic:
            result.actions.append(f"{self.endpoint_name} already sends {self.traffic}% of the traffic to version {version}")
            self._undeploy_idle(result, endpoint, keep=deployed.id)
            result.how_to_call = self.how_to_call()
            return self.traffic
        live = [d for d in view.deployed if view.share(d.id) > 0]
        if deployed is None:
            first = not live
            self.echo(
                f"deploying version {version} to {self.endpoint_name} ({self.machine_type}, "
                f"{self.min_replicas}-{self.max_replicas} replicas; this takes several minutes)"
            )
            try:
                google_call(f"cannot deploy version {version} to the endpoint",
                    lambda: endpoint.deploy(
                        model=model,
                        deployed_model_display_name=f"{self.model_name}-v{version}",
                        traffic_percentage=100 if first else 0,
                        machine_type=self.machine_type,
                        min_replica_count=self.min_replicas,
                        max_replica_count=self.max_replicas,
                        sync=True,
                    ),
                )
            except CloudError as exc:
                self._remove_failed(endpoint, view, model)
                raise CloudError(
                    f"{exc.message}; the endpoint's traffic is unchanged ({before})", hint=exc.hint
                ) from None
            after = self._view(endpoint)
            deployed = self._deployed_of(after, model)
            if deployed is None:
                raise CloudError(f"version {version} was deployed but is not on {self.endpoint_name}; traffic unchanged")
            result.changed = True
            if first:
                result.actions.append(f"{verb} version {version} to {self.endpoint_name} ({deployed.id}): 100% of the traffic")
                result.how_to_call = self.how_to_call()
                return 100
            result.actions.append(f"deployed version {version} alongside ({deployed.id}) with 0% traffic")
            view = after
        split = new_split(view, deployed.id, self.traffic)
        try:
            google_call("cannot set the traffic split", lambda: endpoint.update(traffic_split=split))
        except CloudError as exc:
            if view.share(deployed.id) == 0:
                self._undeploy(result, endpoint, deployed.id, f"version {version}")
            raise CloudError(f"{exc.message}; the endpoint's traffic is unchanged ({before})", hint=exc.hint) from None
        result.changed = True
        result.actions.append(
            f"{verb} {self.endpoint_name} to version {version}: traffic "
            + ", ".join(f"{k}: {v}%" for k, v in split.items())
            + f" (was {before})"
        )
        self._undeploy_idle(result, endpoint, keep=deployed.id)
        result.how_to_call = self.how_to_call()
        return self.traffic

    def _remove_failed(self, endpoint: Any, before: EndpointView, model: Any) -> None:
        """After a failed deploy: remove a half-deployed new model, if the API left one (0% traffic)."""
        try:
            after = self._view(endpoint)
        except CloudError:
            return
        known = {d.id for d in before.deployed}
        for d in after.deployed:
            if d.id not in known and after.share(d.id) == 0:
                try:
                    google_call("cannot undeploy", lambda d=d: endpoint.undeploy(deployed_model_id=d.id, sync=True))
                except CloudError as exc:
                    log.warning("could not remove the failed deployment %s: %s", d.id, exc.message)

    def _undeploy_idle(self, result: DeployResult, endpoint: Any, *, keep: str) -> None:
        """Undeploy every deployment left with 0% traffic (after the switch; reruns converge)."""
        view = self._view(endpoint)
        for d in view.deployed:
            if d.id != keep and view.share(d.id) == 0:
                self._undeploy(result, endpoint, d.id, f"version {d.version}")

    def _undeploy(self, result: DeployResult, endpoint: Any, deployed_id: str, what: str) -> None:
        self.echo(f"undeploying {what} ({deployed_id})")
        try:
            google_call(f"cannot undeploy {what}", lambda: endpoint.undeploy(deployed_model_id=deployed_id, sync=True))
        except CloudError as exc:
            result.notes.append(
                f"{what} ({deployed_id}) has no traffic but could not be undeployed ({exc.message}); "
                "run 'python deploy-vertex.py' again to retry"
            )
            return
        result.actions.append(f"undeployed {what} ({deployed_id})")

    def _finish(self, result: DeployResult, model: Any, share: int) -> None:
        """Done only when Vertex AI says so: a fresh read of the endpoint must show ``model``
        deployed with ``share`` % of the traffic; then the request-response logging edge.yaml asks for."""
        version = str(model.version_id)
        view = self._view(self._endpoint())
        deployed = self._deployed_of(view, model)
        if deployed is None or view.share(deployed.id) != share:
            result.error = CloudError(
                f"Vertex AI does not report version {version} deployed with {share}% of the traffic on "
                f"{self.endpoint_name}: it reports {view.describe()}",
                hint="see the endpoint in the Google Cloud console; run 'python deploy-vertex.py' again to converge",
            )
            return
        result.actions.append(
            f"Vertex AI reports version {version} deployed ({deployed.id}, ready) with {share}% of the traffic: {view.describe()}"
        )
        if self.request_logging_rate is None or self.endpoint_service is None:
            return
        try:
            result.actions.append(ensure_request_logging(
                self.endpoint_service(), self.endpoint_name, project=self.project, sampling_rate=self.request_logging_rate,
            ))  # fmt: skip
        except CloudError as exc:
            result.notes.append(f"{exc.message}; the deployment itself is done")

    def serving_model_uri(self) -> str | None:
        """The artifact folder of the newest deployment taking traffic (the model whose reference
        profile 'edge.py monitor' compares with); None when nothing serves."""
        live = self._view(self._endpoint()).newest_live()
        parent = self._parent() if live is not None else None
        model = self._version(parent, live.version) if (live is not None and parent is not None) else None
        return str(getattr(model, "uri", "") or "") or None

    def how_to_call(self) -> list[str]:
        url = f"https://{self.location}-aiplatform.googleapis.com/v1/{self.endpoint_name}:predict"
        return [
            f"curl -s -X POST -H \"Authorization: Bearer $(gcloud auth print-access-token)\" "
            f"-H 'Content-Type: application/json' -d '{{\"instances\": [<28x28 pixel rows>]}}' {url}",
            "python edge.py webapp      # the web app in front of this endpoint (gcp target)",
        ]


def _label_accuracy(value: str | None) -> float | None:
    """A ``test_accuracy`` label (``0_9342``) as a number."""
    try:
        return float(str(value).replace("_", ".")) if value else None
    except ValueError:
        return None
