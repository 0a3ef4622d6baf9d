"""kubectl and helm against the GKE cluster, through :func:`vertex_edge.proc.run`.

:class:`KubeRunner` is what the provisioning steps, teardown and the port-forwards use; tests
inject a fake that records every argv. :func:`cluster_runner` builds the real one: it reads
the cluster's endpoint and CA from the Container API and writes a kubeconfig holding a
short-lived access token to a private temporary file (mode 0600, deleted afterwards) - no
``gcloud`` and no auth plugin needed, and nothing secret on any command line.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from vertex_edge import proc
from vertex_edge.errors import CloudError, NotProvisionedError

if TYPE_CHECKING:
    from vertex_edge.gcp.clients import GcpClients
    from vertex_edge.gcp.portforward import Forward

KUBECTL_TIMEOUT = 300.0
HELM_TIMEOUT = 900.0


class KubeRunner(Protocol):
    def kubectl(
        self, args: Sequence[str], *, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]: ...

    def helm(
        self, args: Sequence[str], *, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]: ...

    def port_forward(
        self, namespace: str, service: str, remote_port: int, *, local_port: int = 0
    ) -> contextlib.AbstractContextManager[Forward]: ...


@dataclass
class ToolRunner:
    """The real :class:`KubeRunner`: ``kubectl``/``helm`` with ``--kubeconfig <private file>``."""

    kubeconfig: Path
    kubectl_bin: str = "kubectl"
    helm_bin: str = "helm"

    def kubectl(
        self, args: Sequence[str], *, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args]
        return proc.run(argv, input=input, check=check, timeout=KUBECTL_TIMEOUT)

    def helm(
        self, args: Sequence[str], *, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.helm_bin, "--kubeconfig", str(self.kubeconfig), *args]
        return proc.run(argv, input=input, check=check, timeout=HELM_TIMEOUT)

    def port_forward(
        self, namespace: str, service: str, remote_port: int, *, local_port: int = 0
    ) -> contextlib.AbstractContextManager[Forward]:
        from vertex_edge.gcp.portforward import open_forward

        argv = [
            self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), "port-forward", "--namespace", namespace,
            "--address", "127.0.0.1", f"svc/{service}", f"{local_port or ''}:{remote_port}",
        ]  # fmt: skip
        return open_forward(argv)


def kubeconfig_yaml(server: str, ca_data: str | None, token: str) -> str:
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "edge", "cluster": cluster}],
        "users": [{"name": "edge", "user": {"token": token}}],
        "contexts": [{"name": "edge", "context": {"cluster": "edge", "user": "edge"}}],
        "current-context": "edge",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def cluster_endpoint(cluster: Any) -> tuple[str, str | None]:
    """(https server URL, base64 CA or None) of a GKE cluster: its IP endpoint, else its DNS endpoint."""
    ip = getattr(cluster, "endpoint", "") or ""
    ca = getattr(getattr(cluster, "master_auth", None), "cluster_ca_certificate", "") or None
    if ip:
        return f"https://{ip}", ca
    dns = getattr(
        getattr(getattr(cluster, "control_plane_endpoints_config", None), "dns_endpoint_config", None), "endpoint", ""
    )
    if dns:
        return f"https://{dns}", None  # the DNS endpoint has a publicly trusted certificate
    raise CloudError(f"cluster {getattr(cluster, 'name', '?')} has no reachable endpoint yet", hint="wait and retry")


@contextlib.contextmanager
def cluster_runner(clients: GcpClients, cluster_path: str) -> Iterator[ToolRunner]:
    """A :class:`ToolRunner` for the cluster at ``cluster_path`` (``projects/P/locations/R/clusters/C``)."""
    from google.api_core import exceptions as gexc

    from vertex_edge.gcp.clients import translate

    try:
        cluster = clients.container.get_cluster(request={"name": cluster_path}, timeout=60)
    except gexc.NotFound:
        raise NotProvisionedError(
            f"GKE cluster {cluster_path} does not exist", hint="run 'python edge.py setup --target gcp'"
        ) from None
    except Exception as exc:
        err = translate(exc, f"reading GKE cluster {cluster_path}")
        if err is None:
            raise
        raise err from None
    server, ca = cluster_endpoint(cluster)
    token = clients.access_token()
    with tempfile.TemporaryDirectory(prefix="edge-kube-") as tmp:
        path = Path(tmp) / "kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(kubeconfig_yaml(server, ca, token))
        yield ToolRunner(kubeconfig=path)


def not_found(result: subprocess.CompletedProcess[bytes]) -> bool:
    """Whether a kubectl/helm call failed because the object does not exist."""
    text = (result.stderr or b"").decode("utf-8", "replace").lower()
    return result.returncode != 0 and ("notfound" in text or "not found" in text)


def stderr_tail(result: subprocess.CompletedProcess[bytes], lines: int = 5) -> str:
    text = (result.stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return " / ".join(text[-lines:])
