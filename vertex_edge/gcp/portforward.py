"""``kubectl port-forward`` to the Sacred services in the cluster, opened and closed by edge.py.

Both Services are ClusterIP (never exposed on the internet): the Omniboard dashboard and the
MongoDB that training logs to are reached through a port-forward on 127.0.0.1 that lives only
as long as the command that needs it.

``kubectl port-forward`` runs until stopped, so it is the one subprocess that cannot go
through :func:`vertex_edge.proc.run` (which waits for the process): :func:`open_forward`
starts it with an argument list (no shell), waits for its "Forwarding from" line and always
stops it on exit.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from vertex_edge.errors import ExternalToolError, TrackingError
from vertex_edge.proc import install_hint

if TYPE_CHECKING:
    from vertex_edge.config import EdgeConfig
    from vertex_edge.gcp.clients import GcpClients

log = logging.getLogger(__name__)

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


def mongo_url(user: str, password: str, port: int, *, db: str = "sacred") -> str:
    """``mongodb://user:password@127.0.0.1:port/db?authSource=admin`` (a secret: never print or log it)."""
    return f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/{db}?authSource=admin"


@contextlib.contextmanager
def mongo_url_via_port_forward(config: EdgeConfig, clients: GcpClients) -> Iterator[str]:
    """For training on the gcp target: yields a MongoDB URL that reaches the cluster's MongoDB
    through a port-forward open for the duration of the ``with`` block.

    The password is read from Secret Manager at run time; the URL lives only in memory (give
    it to ``pymongo.MongoClient`` / Sacred's MongoObserver; redact it with
    :func:`vertex_edge.tracking.redact_url` before showing it)."""
    from vertex_edge.gcp.names import GcpNames
    from vertex_edge.gcp.secret import read_password

    names = GcpNames.from_config(config)
    if not names.sacred:
        raise TrackingError(
            "the gcp target has no MongoDB in GKE (tracking is off or tracking.mongodb_url points elsewhere)",
            hint="set tracking.enabled: true, remove tracking.mongodb_url, run 'python edge.py setup --target gcp'",
        )
    password = read_password(clients, names)
    with clients.kube(names.cluster_path) as kube:
        _require_service(kube, names.namespace, names.mongodb_service)
        with kube.port_forward(names.namespace, names.mongodb_service, names.mongodb_port) as forward:
            yield mongo_url(names.mongodb_user, password, forward.port, db=names.mongodb_db)


@contextlib.contextmanager
def omniboard_via_port_forward(config: EdgeConfig, clients: GcpClients, *, local_port: int = 0) -> Iterator[Forward]:
    """A port-forward to Omniboard in the cluster (``forward.url`` is the local URL)."""
    from vertex_edge.gcp.names import GcpNames

    names = GcpNames.from_config(config)
    if not names.sacred:
        raise TrackingError(
            "the gcp target has no Omniboard in GKE (tracking is off or tracking.mongodb_url points elsewhere)",
            hint="use 'python edge.py experiments list'",
        )
    with clients.kube(names.cluster_path) as kube:
        _require_service(kube, names.namespace, names.omniboard_service)
        with kube.port_forward(
            names.namespace, names.omniboard_service, names.omniboard_port, local_port=local_port
        ) as forward:
            yield forward


def _require_service(kube: object, namespace: str, service: str) -> None:
    from vertex_edge.errors import NotProvisionedError
    from vertex_edge.gcp.kube import not_found, stderr_tail

    result = kube.kubectl(["get", "service", service, "--namespace", namespace, "-o", "name"], check=False)  # type: ignore[attr-defined]
    if not_found(result):
        raise NotProvisionedError(
            f"service {service} is not in namespace {namespace} of the cluster",
            hint="run 'python edge.py setup --target gcp' to install helm/sacred",
        )
    if result.returncode != 0:
        raise ExternalToolError(f"kubectl get service {service} failed: {stderr_tail(result)}")
