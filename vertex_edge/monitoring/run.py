"""``edge.py monitor`` as a library call: where things are, which reference, one report.

:class:`~vertex_edge.monitoring.settings.MonitoringPaths` says where records, feedback and
reports live for a target (local: under the storage root; gcp: in the bucket). :func:`run_monitor` reads the window, joins the
feedback, compares with the served model's reference profile and writes the report; the CLI
maps its verdict to the exit code (0 healthy or not enough data, 1 drift).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vertex_edge.artifact import CARD_FILE, ModelCard, parse_card
from vertex_edge.errors import DataError, UsageError
from vertex_edge.gcp.files import Files, is_gcs, join
from vertex_edge.monitoring.drift import Verdict, compare
from vertex_edge.monitoring.feedback import join_labels, read_feedback
from vertex_edge.monitoring.profile import PROFILE_FILE, ReferenceProfile
from vertex_edge.monitoring.records import Window, read_window
from vertex_edge.monitoring.report import write_report
from vertex_edge.monitoring.settings import MonitoringPaths
from vertex_edge.monitoring.thresholds import MonitorParams

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date or time (UTC when no zone is given), or ``30m``/``24h``/``7d``/``2w`` ago."""
    if value is None:
        return None
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(value.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {value!r}: expected an ISO date or time (2026-12-01, 2026-12-01T08:00) or 24h, 7d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_reference(model_dir: str, files: Files) -> tuple[ReferenceProfile, str]:
    """(the reference profile, the model version) of the model folder (a path or ``gs://``)."""
    card = read_card(model_dir, files)
    uri = join(model_dir, PROFILE_FILE)
    if not files.exists(uri):
        raise DataError(
            f"{uri} is missing: model {card.version} has no reference profile",
            hint="models trained before monitoring existed have none; retrain ('dvc repro') and deploy",
        )
    return ReferenceProfile.read(uri, files.read_bytes(uri)), card.version


def read_card(model_dir: str, files: Files) -> ModelCard:
    """The model card of a model folder (a path or ``gs://``), validated."""
    uri = join(model_dir, CARD_FILE)
    try:
        data = json.loads(files.read_bytes(uri))
    except ValueError as exc:
        raise DataError(f"{uri} is not valid JSON: {exc}") from None
    return parse_card(data, uri)


@dataclass
class MonitorRun:
    verdict: Verdict
    window: Window
    summary_path: Path
    report_path: Path
    model_version: str


def run_monitor(
    *,
    paths: MonitoringPaths,
    model_dir: str,
    params: MonitorParams,
    files: Files,
    since: datetime | None = None,
    last: int | None = None,
    out: Path | None = None,
    all_versions: bool = False,
    now: datetime | None = None,
) -> MonitorRun:
    """Compare the window (``since``, or the newest ``last``, default ``params.window``) with the
    model's reference and write ``summary.json`` and ``report.html``."""
    if since is not None and last is not None:
        raise UsageError("give --since or --last, not both")
    if last is not None and last < 1:
        raise UsageError(f"--last {last}: expected at least 1 record")
    profile, version = load_reference(model_dir, files)
    if since is None and last is None:
        last = params.window
    window = read_window(paths.records, files, since=since, last=last, model_version=None if all_versions else version)
    if not is_gcs(paths.feedback) and not Path(paths.feedback).exists():
        feedback = {}
    else:
        feedback = read_feedback(paths.feedback, files)
    labels = join_labels(window, feedback) if feedback else None
    verdict = compare(window, profile, params, labels)
    now = now or datetime.now(UTC)
    folder = out or paths.reports / now.strftime("%Y%m%dT%H%M%SZ")
    context = {
        "generated": now.replace(microsecond=0).isoformat(),
        "source": paths.records,
        "model_dir": model_dir,
        "model_version": version,
        "selection": {"since": since.isoformat() if since else None, "last": last, "all_versions": all_versions},
    }
    summary_path, report_path = write_report(folder, verdict, window, profile, context)
    return MonitorRun(verdict, window, summary_path, report_path, version)
