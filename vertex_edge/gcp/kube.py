"""kubectl and helm against the GKE cluster: the processes, and nothing about what runs there.

:class:`KubeRunner` is what the provisioning steps, teardown and the port-forwards use; tests
inject a fake that records every argv. :func:`cluster_runner` builds the real one: it reads
the cluster's endpoint and CA from the Container API and writes a kubeconfig holding a
short-lived access token to a private temporary file (mode 0600, deleted afterwards) - no
``gcloud`` and no auth plugin needed, and nothing secret on any command line.

``kubectl port-forward`` runs until stopped, so it is the one subprocess that cannot go
through :func:`vertex_edge.proc.run` (which waits for the process): :func:`open_forward`
starts it with an argument list (no shell), waits for its "Forwarding from" line and always
stops it on exit. What is forwarded to (Sacred's MongoDB and Omniboard) is
:mod:`vertex_edge.gcp.sacred`'s business.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from vertex_edge import proc
from vertex_edge.errors import CloudError, ExternalToolError, NotProvisionedError
from vertex_edge.gcp.errors import google_call, is_not_found
from vertex_edge.proc import install_hint

if TYPE_CHECKING:
    from vertex_edge.gcp.clients import GcpClients

log = logging.getLogger(__name__)

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


def _get_cluster(clients: GcpClients, cluster_path: str) -> Any:
    try:
        return clients.container.get_cluster(request={"name": cluster_path}, timeout=60)
    except Exception as exc:
        if is_not_found(exc):
            raise NotProvisionedError(
                f"GKE cluster {cluster_path} does not exist", hint="run 'python edge.py setup --target gcp'"
            ) from None
        raise


@contextlib.contextmanager
def cluster_runner(clients: GcpClients, cluster_path: str) -> Iterator[ToolRunner]:
    """A :class:`ToolRunner` for the cluster at ``cluster_path`` (``projects/P/locations/R/clusters/C``)."""
    cluster = google_call(f"reading GKE cluster {cluster_path}", lambda: _get_cluster(clients, cluster_path))
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


# --- kubectl port-forward -----------------------------------------------------------------

_FORWARDING = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+)")


@dataclass
class Forward:
    """A running port-forward: ``http://127.0.0.1:<port>`` reaches the service."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def wait(self, poll: float = 0.5) -> None:
        """Block until the forward ends (Ctrl-C raises KeyboardInterrupt to the caller)."""
        while self.alive():
            time.sleep(poll)


def _pump(stream: object, lines: queue.Queue[bytes | None]) -> None:
    # keeps reading for the whole life of the process: kubectl prints a line per connection
    # and would block on a full pipe otherwise
    try:
        for line in iter(stream.readline, b""):  # type: ignore[attr-defined]
            lines.put(line)
    finally:
        lines.put(None)


@contextlib.contextmanager
def open_forward(argv: Sequence[str], *, ready_timeout: float = 30.0) -> Iterator[Forward]:
    """Run ``argv`` (a ``kubectl port-forward``), yield the local port once it listens, stop it on exit."""
    argv = [str(a) for a in argv]
    log.debug("start %s port-forward", argv[0])
    try:
        process = subprocess.Popen(  # noqa: S603 - argument list, no shell
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError:
        raise ExternalToolError(f"'{argv[0]}' was not found on PATH", hint=install_hint(argv[0])) from None
    lines: queue.Queue[bytes | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
    try:
        port = _wait_for_port(process, lines, ready_timeout)
        yield Forward(port=port, process=process)
    finally:
        _stop(process)


def _wait_for_port(process: subprocess.Popen[bytes], lines: queue.Queue[bytes | None], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExternalToolError(f"kubectl port-forward did not start listening within {timeout:g} s")
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if line is None:  # stdout closed: the process ended
            process.wait(timeout=5)
            err = (process.stderr.read() if process.stderr else b"").decode("utf-8", "replace").strip()
            detail = " / ".join(err.splitlines()[-3:])
            raise ExternalToolError(
                f"kubectl port-forward exited with code {process.returncode}" + (f": {detail}" if detail else "")
            )
        match = _FORWARDING.search(line)
        if match:
            return int(match.group(1))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
