"""The monitor's outputs: ``summary.json`` (for machines) and ``report.html`` (plots, for people).

The HTML page is one self-contained file (the plots are embedded PNGs): the verdict, the window
(records, time span, model version), every check with its statistic, p-value, effect and
threshold, and plots of the window against the reference - predicted-class shares, confidence,
each input feature, each embedding component, the OOD score with its threshold, and per-class
recall on feedback labels. matplotlib is imported when a report is drawn (deferred: it is heavy,
and the prediction server never imports this module).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from vertex_edge.fsutil import atomic_write_text
from vertex_edge.monitoring.drift import Verdict
from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.profile import ReferenceProfile
from vertex_edge.monitoring.records import Window

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
_REF, _WIN = "#8a8f98", "#2563eb"


def summary(verdict: Verdict, window: Window, profile: ReferenceProfile, context: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: the verdict, each check, the window and the reference."""
    data = verdict.to_json()
    data["window"] = {
        "records": len(window),
        "first": window.first,
        "last": window.last,
        "model_versions": dict(window.versions),
        "files": window.files,
    }
    data["reference"] = {
        "rows": len(profile.class_id),
        "accuracy": profile.accuracy,
        "ood_threshold": profile.detector.threshold,
        "ood_fpr": profile.detector.fpr,
        "labels": profile.labels,
    }
    data.update(context)
    return _finite(data)


def _finite(value: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _hist(ax: Any, reference: np.ndarray, window: np.ndarray, title: str) -> None:
    reference, window = reference[np.isfinite(reference)], window[np.isfinite(window)]
    both = np.concatenate([reference, window])
    if both.size == 0:
        ax.set_visible(False)
        return
    low, high = float(both.min()), float(both.max())
    bins = np.linspace(low, high if high > low else low + 1.0, 31)
    ax.hist(reference, bins=bins, density=True, alpha=0.55, color=_REF, label="reference")
    ax.hist(window, bins=bins, density=True, histtype="step", linewidth=1.6, color=_WIN, label="window")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def plots(verdict: Verdict, window: Window, profile: ReferenceProfile) -> list[tuple[str, str]]:
    """(title, base64 PNG) of each plot."""
    import matplotlib  # deferred: see the module docstring

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out: list[tuple[str, str]] = []
    names = profile.labels
    classes = len(names)
    share = np.bincount(window.class_id[window.class_id >= 0], minlength=classes)[:classes] / max(len(window), 1)
    fig, ax = plt.subplots(figsize=(8, 3))
    x = np.arange(classes)
    ax.bar(x - 0.2, profile.class_share(), 0.4, color=_REF, label="reference")
    ax.bar(x + 0.2, share, 0.4, color=_WIN, label="window")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("share of predictions")
    ax.legend(fontsize=8)
    out.append(("Predicted classes", _png(fig)))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
    _hist(axes[0], profile.confidence, window.confidence, "confidence (probability of the predicted class)")
    # log scale: out-of-distribution images score hundreds of times the threshold
    _hist(axes[1], np.log1p(profile.ood_score), np.log1p(window.ood_score), "OOD score, log(1 + score)")
    axes[1].axvline(
        math.log1p(profile.detector.threshold), color="#dc2626", linestyle="--", linewidth=1, label="flag threshold"
    )
    axes[1].legend(fontsize=7)
    out.append(("Confidence and OOD score", _png(fig)))
    plt.close(fig)

    for title, ref, win, labels in (
        ("Input summary features", profile.features, window.features, list(FEATURES)),
        ("Embedding components", profile.embedding, window.embedding, [f"component {i}" for i in range(8)]),
    ):
        count = min(ref.shape[1], win.shape[1])
        if count == 0:
            continue
        cols = 3 if count > 4 else count
        rows = math.ceil(count / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(8, 2.1 * rows), squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i < count:
                _hist(ax, ref[:, i], win[:, i], labels[i])
            else:
                ax.set_visible(False)
        fig.tight_layout()
        out.append((title, _png(fig)))
        plt.close(fig)

    if verdict.recall:
        fig, ax = plt.subplots(figsize=(8, 3))
        ref = [np.nan if r is None else r for r in verdict.reference_recall]
        win = [np.nan if r is None else r for r in verdict.recall]
        ax.bar(x - 0.2, ref, 0.4, color=_REF, label="held-out")
        ax.bar(x + 0.2, win, 0.4, color=_WIN, label="feedback")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("recall")
        ax.legend(fontsize=8)
        out.append((f"Per-class recall on {verdict.labelled} feedback labels", _png(fig)))
        plt.close(fig)
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float) and value != 0 and abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def render_html(data: dict[str, Any], images: list[tuple[str, str]]) -> str:
    status = data["status"]
    colour = {"healthy": "#15803d", "drift": "#b91c1c"}.get(status, "#a16207")
    rows = []
    for check in data["checks"]:
        mark = "DRIFT" if check["drift"] else "ok"
        rows.append(
            f"<tr class='{'bad' if check['drift'] else ''}'><td>{html.escape(check['name'])}</td>"
            f"<td>{html.escape(check['test'])}</td><td>{_fmt(check['statistic'])}</td>"
            f"<td>{_fmt(check['p_value'], 4)}</td><td>{_fmt(check['threshold'], 4)}</td>"
            f"<td>{_fmt(check['effect'])} (min {_fmt(check['min_effect'], 2)})</td><td>{mark}</td>"
            f"<td>{html.escape(check.get('detail') or '')}</td></tr>"
        )
    window = data["window"]
    facts = [
        ("records", f"{window['records']:,}"),
        ("from", window["first"] or "-"),
        ("to", window["last"] or "-"),
        ("model", ", ".join(f"{v} ({n})" for v, n in window["model_versions"].items()) or "-"),
        ("source", data.get("source", "-")),
        ("OOD flagged", f"{_fmt(data.get('ood_rate'))} (calibrated {_fmt(data.get('expected_ood_rate'))})"),
        ("feedback", f"{data['labelled']} labels, accuracy {_fmt(data.get('accuracy'))} "
                     f"(held-out {_fmt(data.get('reference_accuracy'))})"),
    ]  # fmt: skip
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in data.get("notes", []))
    figures = "".join(
        f"<figure><figcaption>{html.escape(t)}</figcaption><img alt='{html.escape(t)}' src='data:image/png;base64,{p}'>"
        "</figure>"
        for t, p in images
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Model monitor: {html.escape(status)}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#1f2937}}
.status{{display:inline-block;padding:.2rem .7rem;border-radius:1rem;color:#fff;background:{colour};font-weight:600}}
table{{border-collapse:collapse;width:100%;font-size:12px}}td,th{{border-bottom:1px solid #e5e7eb;padding:.25rem .4rem;
text-align:left}}tr.bad td{{background:#fef2f2}}dl{{display:grid;grid-template-columns:9rem 1fr;gap:.2rem .8rem}}
dt{{color:#6b7280}}figure{{margin:1.2rem 0}}figcaption{{font-weight:600;margin-bottom:.3rem}}img{{max-width:100%}}
</style></head><body>
<h1>Model monitor <span class="status">{html.escape(status)}</span></h1>
<p>Generated {html.escape(str(data.get("generated", "")))}. A check drifts when its p-value is below
{_fmt(data["alpha"], 3)} / {len(data["checks"])} checks and its effect reaches the minimum (params.yaml
<code>monitor</code>).</p>
<dl>{"".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)}</dl>
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Checks</h2>
<table><tr><th>check</th><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>effect</th>
<th>verdict</th><th>detail</th></tr>{"".join(rows)}</table>
<h2>Window against the reference</h2>
{figures}
</body></html>
"""


def write_report(
    folder: Path, verdict: Verdict, window: Window, profile: ReferenceProfile, context: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``summary.json`` and ``report.html`` into ``folder`` (each atomically)."""
    data = summary(verdict, window, profile, context)
    folder = Path(folder)
    atomic_write_text(folder / SUMMARY_FILE, json.dumps(data, indent=2) + "\n")
    images = plots(verdict, window, profile) if len(window) else []
    atomic_write_text(folder / REPORT_FILE, render_html(data, images))
    return folder / SUMMARY_FILE, folder / REPORT_FILE
