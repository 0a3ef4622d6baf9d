"""A window of captured records against the model's reference profile: the checks and the verdict.

Checks (each a test of "the window comes from the reference distribution"):

==================  =====================================  ==============================
check               statistic                              effect that must also be met
==================  =====================================  ==============================
``classes``         chi-square, predicted-class counts     total variation of the shares
``confidence``      two-sample Kolmogorov-Smirnov          KS distance
``feature:<name>``  KS, each input summary feature         KS distance
``embedding:<i>``   KS, each embedding component           KS distance
``ood_rate``        exact binomial, flagged count vs the   rate above the calibrated rate
                    flag's calibrated false-positive rate
``accuracy``        two-proportion z-test on feedback      drop below held-out accuracy
                    labels vs held-out accuracy
==================  =====================================  ==============================

The per-window false-alarm rate ``alpha`` is shared by every check that runs (Bonferroni: a
check drifts when its p-value is below ``alpha / checks`` and its effect reaches the minimum),
so an unshifted window is flagged with probability at most ``alpha``. Univariate KS tests with a
Bonferroni correction on a model's outputs and representation are the label-free shift
detectors that "Failing Loudly" (Rabanser et al., 2019) found strongest on images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vertex_edge.monitoring.capture import COLUMN_DECIMALS, OUTPUT_DECIMALS
from vertex_edge.monitoring.features import FEATURES
from vertex_edge.monitoring.profile import ReferenceProfile
from vertex_edge.monitoring.records import Window
from vertex_edge.monitoring.stats import binom_sf, chi2_contingency, ks_2samp, total_variation, two_proportion_less
from vertex_edge.monitoring.thresholds import MonitorParams


@dataclass(frozen=True)
class Check:
    name: str
    test: str
    statistic: float
    p_value: float
    effect: float
    min_effect: float
    threshold: float = 1.0  # the p-value below which it counts (alpha / checks)
    drift: bool = False
    detail: str = ""


@dataclass
class Verdict:
    status: str  # "healthy", "drift" or "insufficient data"
    records: int
    checks: list[Check]
    alpha: float
    labelled: int = 0
    accuracy: float | None = None
    reference_accuracy: float | None = None
    recall: list[float | None] = field(default_factory=list)
    reference_recall: list[float | None] = field(default_factory=list)
    ood_rate: float | None = None
    expected_ood_rate: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return self.status == "drift"

    @property
    def drifted(self) -> list[Check]:
        return [c for c in self.checks if c.drift]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["drifted"] = [c.name for c in self.drifted]
        return data


def _ks(name: str, window: np.ndarray, reference: np.ndarray, min_effect: float, decimals: int) -> Check | None:
    window = window[~np.isnan(window)]
    if len(window) == 0:
        return None
    # the records are rounded: round the reference alike, or ties at the top of a distribution
    # (confidence 1.0) would differ only by rounding
    result = ks_2samp(np.round(window, decimals), np.round(reference.astype(np.float64), decimals))
    return Check(name, "ks", result.statistic, result.p_value, result.statistic, min_effect)


def _recall(true: np.ndarray, predicted: np.ndarray, classes: int) -> list[float | None]:
    out: list[float | None] = []
    for k in range(classes):
        mask = true == k
        out.append(float(np.mean(predicted[mask] == k)) if mask.any() else None)
    return out


def compare(
    window: Window, profile: ReferenceProfile, params: MonitorParams, labels: np.ndarray | None = None
) -> Verdict:
    """Run every check on ``window``; ``labels`` are the joined feedback labels (-1: none)."""
    classes = len(profile.labels)
    effect = params.min_effect
    notes = list(window.notes)
    if len(window) < params.min_records:
        notes.append(
            f"{len(window)} records; at least {params.min_records} are needed for a verdict (monitor.min_records)"
        )
        return Verdict("insufficient data", len(window), [], params.alpha, notes=notes)
    checks: list[Check] = []
    counts = np.bincount(window.class_id[window.class_id >= 0], minlength=classes)[:classes]
    ref_counts = np.bincount(profile.class_id, minlength=classes)[:classes]
    chi = chi2_contingency(counts, ref_counts)
    tv = total_variation(counts / max(counts.sum(), 1), profile.class_share())
    checks.append(Check("classes", "chi-square", chi.statistic, chi.p_value, tv, effect.classes))
    dist, cols = effect.distribution, COLUMN_DECIMALS
    optional = [_ks("confidence", window.confidence, profile.confidence, dist, OUTPUT_DECIMALS)]
    for i, name in enumerate(FEATURES):
        optional.append(_ks(f"feature:{name}", window.features[:, i], profile.features[:, i], dist, cols))
    for i in range(min(window.embedding.shape[1], profile.embedding.shape[1])):
        optional.append(_ks(f"embedding:{i}", window.embedding[:, i], profile.embedding[:, i], dist, cols))
    checks.extend(c for c in optional if c is not None)
    missing = len(FEATURES) - sum(1 for c in checks if c.name.startswith("feature:"))
    if missing:
        notes.append(f"{missing} input features are missing from the records (a model without the monitor output)")
    ood_rate = expected = None
    scored = ~np.isnan(window.ood_score)
    if scored.any():
        flagged, n = int(window.ood_flag[scored].sum()), int(scored.sum())
        ood_rate, expected = flagged / n, profile.detector.fpr
        checks.append(
            Check("ood_rate", "binomial", float(flagged), binom_sf(flagged, n, expected), ood_rate - expected,
                  effect.ood_rate, detail=f"{flagged} of {n} flagged, {100 * expected:.1f} % expected")
        )  # fmt: skip
    verdict = Verdict("healthy", len(window), checks, params.alpha, ood_rate=ood_rate, expected_ood_rate=expected)
    verdict.reference_accuracy = profile.accuracy
    verdict.reference_recall = [None if np.isnan(r) else float(r) for r in profile.recall()]
    if labels is not None and (labels >= 0).any():
        known = labels >= 0
        correct = int((window.class_id[known] == labels[known]).sum())
        verdict.labelled, verdict.accuracy = int(known.sum()), correct / int(known.sum())
        verdict.recall = _recall(labels[known], window.class_id[known], classes)
        if verdict.labelled >= params.min_labels:
            ref_correct = int((profile.class_id == profile.label).sum())
            test = two_proportion_less(correct, verdict.labelled, ref_correct, len(profile.label))
            checks.append(
                Check("accuracy", "two-proportion z", test.statistic, test.p_value, -test.statistic,
                      effect.accuracy_drop, detail=f"{correct} of {verdict.labelled} labelled predictions right")
            )  # fmt: skip
        else:
            notes.append(
                f"{verdict.labelled} feedback labels; accuracy is checked from {params.min_labels} (monitor.min_labels)"
            )
    threshold = params.alpha / len(checks)
    verdict.checks = [
        Check(**{**asdict(c), "threshold": threshold, "drift": c.p_value < threshold and c.effect >= c.min_effect})
        for c in checks
    ]
    verdict.status = "drift" if any(c.drift for c in verdict.checks) else "healthy"
    verdict.notes = notes
    return verdict
