"""Out-of-distribution score per prediction, calibrated on held-out data to a stated false-positive rate.

Several detectors each measure one way an input can be unlike the held-out images:

* ``knn``: distance to the k-th nearest held-out image in the model's embedding (the
  penultimate activations, L2-normalised and projected on their top principal components);
* ``embedding_residual``: how much of the embedding those components do not explain;
* ``pixel_residual``: the same for the pixels (a linear autoencoder of Fashion-MNIST images);
* input summary features (:mod:`vertex_edge.monitoring.features`): ``max`` (too dark), ``border_ink``
  (the object touches the edges), ``ink`` and ``edges`` (too little or too much of either).

Each detector's value is put on one scale: 0 at the held-out median, 1 at its 99.5th (or 0.5th)
percentile. The score is the largest of them; the flag is ``score > threshold``, where the
threshold is the ``1 - fpr`` quantile of the scores of held-out images that played no part in
fitting. The held-out set is cut in three: one part fits the components and the neighbours,
one sets the scales, one calibrates the threshold. Without an embedding (a model exported
without one) only the pixel and feature detectors are used.

numpy only: it runs in the prediction server's model thread, once per micro-batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from vertex_edge.errors import DataError
from vertex_edge.monitoring.features import FEATURES

EMBEDDING_DETECTORS = ("knn", "embedding_residual")
IMAGE_DETECTORS = ("pixel_residual", "max", "border_ink", "ink", "edges")
#: which tail of a detector is unusual
SIDES = {"knn": 1, "embedding_residual": 1, "pixel_residual": 1, "max": -1, "border_ink": 1, "ink": 0, "edges": 0}
_TAIL = 0.005  # 0.5 % in each tail of the held-out values sets a detector's unit
#: fewer held-out images cannot calibrate the flag (a quarter of them set the threshold)
MIN_HELDOUT = 300


@dataclass(frozen=True)
class Split3:
    """Row indices of the three parts of the held-out set."""

    fit: np.ndarray
    scale: np.ndarray
    calibrate: np.ndarray

    @classmethod
    def of(cls, n: int, seed: int) -> Split3:
        if n < MIN_HELDOUT:
            raise DataError(
                f"{n} held-out images are too few to calibrate the out-of-distribution flag; "
                f"expected at least {MIN_HELDOUT}",
                hint="raise train.validation_split (or train on more images)",
            )
        order = np.random.default_rng(seed).permutation(n)
        half, three_q = n // 2, (3 * n) // 4
        return cls(np.sort(order[:half]), np.sort(order[half:three_q]), np.sort(order[three_q:]))


def _normalise(embedding: np.ndarray) -> np.ndarray:
    embedding = np.asarray(embedding, dtype=np.float32)
    return embedding / np.maximum(np.linalg.norm(embedding, axis=1, keepdims=True), 1e-6)


def _basis(rows: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    mean = rows.mean(axis=0)
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    return mean.astype(np.float32), np.ascontiguousarray(vt[:components], dtype=np.float32)


@dataclass(frozen=True)
class OodDetector:
    names: tuple[str, ...]
    centre: np.ndarray  # [d] held-out medians
    upper: np.ndarray  # [d] 99.5th percentile - median (0: the upper tail is not unusual)
    lower: np.ndarray  # [d] median - 0.5th percentile (0: the lower tail is not unusual)
    threshold: float
    fpr: float
    pixel_mean: np.ndarray  # [784]
    pixel_basis: np.ndarray  # [kp, 784]
    embedding_mean: np.ndarray | None = None  # [D]
    embedding_basis: np.ndarray | None = None  # [ke, D]
    bank: np.ndarray | None = None  # [M, ke] projected held-out embeddings
    k: int = 5
    bank_norms: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bank is not None:
            object.__setattr__(self, "bank_norms", np.einsum("ij,ij->i", self.bank, self.bank)[None, :])

    @property
    def uses_embedding(self) -> bool:
        return self.embedding_basis is not None

    def project(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(components [N, ke], residual norm [N]) of the L2-normalised embedding."""
        assert self.embedding_mean is not None and self.embedding_basis is not None
        centred = _normalise(embedding) - self.embedding_mean
        z = centred @ self.embedding_basis.T
        residual = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", z, z)
        return z, np.sqrt(np.maximum(residual, 0.0))

    def raw(self, images: np.ndarray, features: np.ndarray, embedding: np.ndarray | None) -> np.ndarray:
        """Each detector's value per image: [N, len(names)]."""
        n = images.shape[0]
        values: dict[str, np.ndarray] = {}
        pixels = images.reshape(n, -1) * np.float32(1 / 255.0) - self.pixel_mean
        zp = pixels @ self.pixel_basis.T
        residual = np.einsum("ij,ij->i", pixels, pixels) - np.einsum("ij,ij->i", zp, zp)
        values["pixel_residual"] = np.sqrt(np.maximum(residual, 0.0) / pixels.shape[1])
        for name in ("max", "border_ink", "ink", "edges"):
            values[name] = features[:, FEATURES.index(name)]
        if self.uses_embedding:
            if embedding is None:
                raise DataError("the out-of-distribution detector needs the model's embedding output")
            z, values["embedding_residual"] = self.project(embedding)
            values["knn"] = self._knn(z)
        return np.stack([values[name] for name in self.names], axis=1).astype(np.float32)

    def _knn(self, z: np.ndarray) -> np.ndarray:
        assert self.bank is not None
        d2 = np.einsum("ij,ij->i", z, z)[:, None] - 2.0 * (z @ self.bank.T) + self.bank_norms
        return np.sqrt(np.maximum(np.partition(d2, self.k - 1, axis=1)[:, self.k - 1], 0.0))

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Detector values in units of their held-out tail: [N, d] (0 at the median)."""
        up = np.where(self.upper > 0, (raw - self.centre) / np.where(self.upper > 0, self.upper, 1.0), 0.0)
        down = np.where(self.lower > 0, (self.centre - raw) / np.where(self.lower > 0, self.lower, 1.0), 0.0)
        return np.maximum(np.maximum(up, down), 0.0)

    def score(
        self, images: np.ndarray, features: np.ndarray, embedding: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score [N], flag [N] bool)."""
        scores = self.scale(self.raw(images, features, embedding)).max(axis=1).astype(np.float32)
        return scores, scores > self.threshold


def fit_detector(
    images: np.ndarray,
    features: np.ndarray,
    embedding: np.ndarray | None,
    split: Split3,
    *,
    fpr: float,
    pixel_components: int = 32,
    embedding_components: int = 32,
    bank_size: int = 1000,
    k: int = 5,
    seed: int = 0,
) -> tuple[OodDetector, np.ndarray]:
    """Fit on ``split.fit``, scale on ``split.scale``, set the threshold on ``split.calibrate``.

    Returns the detector and the scores of the calibration part."""
    if not 0 < fpr < 0.5:
        raise DataError(f"ood fpr {fpr}: expected a false-positive rate between 0 and 0.5")
    pixel_mean, pixel_basis = _basis(images[split.fit].reshape(len(split.fit), -1) / 255.0, pixel_components)
    names = IMAGE_DETECTORS
    parts: dict[str, np.ndarray | None] = {"embedding_mean": None, "embedding_basis": None, "bank": None}
    if embedding is not None:
        names = EMBEDDING_DETECTORS + IMAGE_DETECTORS
        # fewer components than dimensions, or the residual is rounding noise
        components = max(1, min(embedding_components, embedding.shape[1] // 2))
        mean, basis = _basis(_normalise(embedding[split.fit]), components)
        centred = _normalise(embedding[split.fit]) - mean
        bank_rows = np.random.default_rng(seed).permutation(len(split.fit))[:bank_size]
        parts = {"embedding_mean": mean, "embedding_basis": basis, "bank": (centred[bank_rows] @ basis.T)}
    d = len(names)
    draft = OodDetector(
        names=names, centre=np.zeros(d, np.float32), upper=np.ones(d, np.float32), lower=np.ones(d, np.float32),
        threshold=np.inf, fpr=fpr, pixel_mean=pixel_mean, pixel_basis=pixel_basis, k=k, **parts,
    )  # fmt: skip
    emb = None if embedding is None else embedding[split.scale]
    raw = draft.raw(images[split.scale], features[split.scale], emb)
    low, centre, high = np.quantile(raw, [_TAIL, 0.5, 1 - _TAIL], axis=0)
    spread = np.quantile(raw, 0.999, axis=0) - np.quantile(raw, 0.001, axis=0)
    floor = 0.01 * spread + 1e-6  # a detector whose held-out values barely vary still has a unit
    sides = np.array([SIDES[name] for name in names])
    upper = np.where(sides >= 0, np.maximum(high - centre, floor), 0.0).astype(np.float32)
    lower = np.where(sides <= 0, np.maximum(centre - low, floor), 0.0).astype(np.float32)
    scaled = _replace(draft, centre=centre.astype(np.float32), upper=upper, lower=lower)
    emb = None if embedding is None else embedding[split.calibrate]
    calib, _ = scaled.score(images[split.calibrate], features[split.calibrate], emb)
    threshold = float(np.quantile(calib, 1 - fpr, method="higher"))
    return _replace(scaled, threshold=threshold), calib


def _replace(detector: OodDetector, **changes: object) -> OodDetector:
    return dataclasses.replace(detector, **changes)  # type: ignore[arg-type]
