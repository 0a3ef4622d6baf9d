"""A fake of the slice of ``google.cloud.aiplatform`` the Vertex deployer uses: the Model Registry
(parent models with versions and aliases) and one Endpoint (deployed models + traffic split).

It keeps state like the service does, records every call (``world.calls``) and can fail any
operation once (``world.fail_next["Endpoint.deploy"] = exc``). It enforces the service's rules
the deployer relies on: a traffic split sums to 100 and names only deployed models, and a
deployed model with traffic cannot be undeployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.api_core import exceptions as gexc

LOCATION = "projects/123/locations/europe-west4"
ENDPOINT = f"{LOCATION}/endpoints/555"


@dataclass
class Version:
    version_id: str
    aliases: list[str]
    kwargs: dict[str, Any]


@dataclass
class World:
    models: dict[str, list[Version]] = field(default_factory=dict)  # parent resource name -> versions
    display: dict[str, str] = field(default_factory=dict)  # parent -> display name
    deployed: list[SimpleNamespace] = field(default_factory=list)
    traffic: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    traffic_at: list[tuple[str, dict[str, int]]] = field(default_factory=list)  # traffic when each mutation began
    fail_next: dict[str, Exception] = field(default_factory=dict)
    next_deployed_id: int = 1000

    def record(self, name: str, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))
        self.traffic_at.append((name, self.serving()))
        exc = self.fail_next.pop(name, None)
        if exc is not None:
            raise exc

    def mutations(self) -> list[str]:
        return [n for n, _ in self.calls if n in ("Model.upload", "Endpoint.deploy", "Endpoint.update", "Endpoint.undeploy")]

    def serving(self) -> dict[str, int]:
        """{version id: traffic %} of what is deployed."""
        return {d.model_version_id: self.traffic.get(d.id, 0) for d in self.deployed}


class FakeAiplatform:
    def __init__(self, world: World | None = None) -> None:
        self.world = w = world or World()

        class Model:
            def __init__(self, model_name: str, version: str | None = None, **kwargs: Any) -> None:
                w.calls.append(("Model", {"model_name": model_name, "version": version}))
                base, _, at = model_name.partition("@")
                version = version or at or None
                versions = w.models.get(base)
                if not versions:
                    raise gexc.NotFound(f"model {base} not found")
                if version is None:
                    chosen = versions[-1]
                else:
                    found = [v for v in versions if v.version_id == version or version in v.aliases]
                    if not found:
                        raise gexc.NotFound(f"version {version} of {base} not found")
                    chosen = found[0]
                self.resource_name = base
                self.version_id = chosen.version_id
                self.display_name = w.display[base]
                self.labels = chosen.kwargs.get("labels", {})
                self.uri = chosen.kwargs.get("artifact_uri", "")  # the version's artifact folder

            @classmethod
            def list(cls, filter: str = "", order_by: str | None = None, **kwargs: Any) -> list[Any]:
                w.calls.append(("Model.list", {"filter": filter, "order_by": order_by}))
                wanted = filter.partition("=")[2].strip('"')
                return [cls(model_name=base) for base, name in w.display.items() if name == wanted]

            @classmethod
            def upload(cls, **kwargs: Any) -> Any:
                w.record("Model.upload", **kwargs)
                parent = kwargs.get("parent_model")
                if parent is None:
                    parent = f"{LOCATION}/models/{len(w.models) + 1}"
                    w.models[parent] = []
                    w.display[parent] = kwargs["display_name"]
                versions = w.models[parent]
                version = Version(str(len(versions) + 1), list(kwargs.get("version_aliases") or []), kwargs)
                versions.append(version)
                return cls(model_name=parent, version=version.version_id)

        class Endpoint:
            def __init__(self, endpoint_name: str, **kwargs: Any) -> None:
                w.calls.append(("Endpoint", {"endpoint_name": endpoint_name}))
                self.resource_name = endpoint_name

            def list_models(self) -> list[Any]:
                return [SimpleNamespace(**vars(d)) for d in w.deployed]

            @property
            def traffic_split(self) -> dict[str, int]:
                return dict(w.traffic)

            def deploy(self, model: Any, traffic_percentage: int = 0, **kwargs: Any) -> None:
                w.record("Endpoint.deploy", model=(model.resource_name, model.version_id),
                         traffic_percentage=traffic_percentage, **kwargs)  # fmt: skip
                if not w.deployed and traffic_percentage != 100:
                    raise gexc.InvalidArgument("the first deployed model must get 100% of the traffic")
                deployed_id = str(w.next_deployed_id)
                w.next_deployed_id += 1
                w.deployed.append(SimpleNamespace(id=deployed_id, model=model.resource_name,
                                                  model_version_id=model.version_id,
                                                  display_name=kwargs.get("deployed_model_display_name", "")))  # fmt: skip
                if traffic_percentage == 100:
                    w.traffic = {k: 0 for k in w.traffic}
                w.traffic[deployed_id] = traffic_percentage

            def update(self, traffic_split: dict[str, int] | None = None, **kwargs: Any) -> None:
                w.record("Endpoint.update", traffic_split=dict(traffic_split or {}))
                split = dict(traffic_split or {})
                ids = {d.id for d in w.deployed}
                if sum(split.values()) != 100 or not set(split) <= ids:
                    raise gexc.InvalidArgument(f"bad traffic split {split}")
                w.traffic = {i: split.get(i, 0) for i in ids}

            def undeploy(self, deployed_model_id: str, **kwargs: Any) -> None:
                w.record("Endpoint.undeploy", deployed_model_id=deployed_model_id)
                if w.traffic.get(deployed_model_id, 0) > 0:
                    raise gexc.FailedPrecondition("cannot undeploy a model that receives traffic")
                w.deployed = [d for d in w.deployed if d.id != deployed_model_id]
                w.traffic.pop(deployed_model_id, None)

        class ModelRegistry:
            def __init__(self, model: str, **kwargs: Any) -> None:
                self.model = model

            def list_versions(self) -> list[Any]:
                return [SimpleNamespace(version_id=v.version_id) for v in w.models.get(self.model, [])]

        self.Model = Model
        self.Endpoint = Endpoint
        self.ModelRegistry = ModelRegistry
