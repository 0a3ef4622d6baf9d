"""Offline Helm helpers for chart tests: render and lint with helm-python-sdk (no helm binary, no
cluster), and validate manifests with kubernetes-validate. Generic: any chart under helm/."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
#: Kubernetes versions every rendered manifest must be valid for: GKE's oldest supported minor and the newest schema.
KUBE_VERSIONS = ("1.30.0", "1.37.0")


def render_chart(
    chart_dir: str | os.PathLike[str],
    values: dict[str, Any] | None = None,
    *,
    release: str = "release",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Render the chart offline (like ``helm template``) and return every manifest as a dict,
    sorted by kind and name. NOTES.txt and empty documents are left out. Invalid values raise
    ``helm_python.HelmValuesError`` (schema) or ``HelmRenderError`` (templates, ``required``)."""
    import helm_python as helm

    with helm.Chart.load(os.fspath(chart_dir)) as chart:
        rendered = chart.render(values=values or {}, name=release, namespace=namespace, is_install=True)
    manifests = []
    for path, text in rendered.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                manifests.append(doc)
    return sorted(manifests, key=lambda m: (m.get("kind", ""), m.get("metadata", {}).get("name", "")))


def lint_chart(chart_dir: str | os.PathLike[str], values: dict[str, Any] | None = None, *, strict: bool = True) -> list[str]:
    """``helm lint --strict`` offline: the warnings and errors found, one string each (empty = clean).
    Informational notes (e.g. "icon is recommended") are not counted."""
    import helm_python as helm

    report = helm.lint(os.fspath(chart_dir), values or {}, strict=strict)
    problems = [f"{m['path']}: {m['error'].strip()}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    if not problems:
        problems = [str(e).strip() for e in report.get("errors", [])]
    return problems


def validate_manifests(manifests: Iterable[dict[str, Any]], versions: Iterable[str] = KUBE_VERSIONS) -> list[str]:
    """Validate each manifest (strict: unknown fields are errors) against the Kubernetes schemas.
    Returns the problems found, one string each (empty = all valid)."""
    import kubernetes_validate

    problems = []
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in getattr(exc, "path", ()))
                problems.append(f"{name} (k8s {version}) at {path or '(top)'}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(f"{name} (k8s {version}): no schema ({exc})")
    return problems


def by_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m.get("kind") == kind]


@pytest.fixture(scope="session")
def helm_available() -> None:
    try:
        import helm_python  # noqa: F401
    except (ImportError, OSError) as exc:  # the SDK ships a native library
        pytest.skip(f"helm-python-sdk is not usable here: {exc}")
