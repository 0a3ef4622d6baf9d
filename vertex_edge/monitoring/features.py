"""Cheap summaries of what the model saw and what it answered, for a batch at once.

Input summary features of the 28x28 image (float32, 0..255, as given to the model), never the
image itself:

==============  ============================================================================
``mean``        mean pixel value (0..255)
``max``         brightest pixel (Fashion-MNIST images are stretched to reach about 255)
``ink``         fraction of pixels brighter than 10 % of full scale
``border_ink``  the same fraction on the outermost ring of pixels (objects are centred)
``edges``       total absolute difference to the right and lower neighbour (over the top-left
                27x27 pixels) per unit of intensity
``width``       how many columns and rows hold a bright pixel (0..28): the object's width and
``height``      height (its bounding box for a solid object)
``com_x``       centre of mass of the intensity, in pixels from the left/top (13.5 = centre)
``com_y``
==============  ============================================================================

Output summaries: the predicted class, its probability (``confidence``) and the entropy of the
probabilities (in nats). Everything is vectorised over the batch (numpy only): the prediction
server runs it in its model thread, once per micro-batch.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("mean", "max", "ink", "border_ink", "edges", "width", "height", "com_x", "com_y")
SIDE = 28
INK_LEVEL = 25.5  # 10 % of full scale
_CENTRE = (SIDE - 1) / 2.0


def summarize(images: np.ndarray) -> np.ndarray:
    """float32 [N, 28, 28] -> float32 [N, len(FEATURES)] input summary features."""
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    flat = images.reshape(n, -1)
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    total = flat.sum(axis=1)
    out[:, 0] = total / flat.shape[1]
    out[:, 1] = flat.max(axis=1)
    mask = images > INK_LEVEL
    out[:, 2] = np.count_nonzero(mask.reshape(n, -1), axis=1) / flat.shape[1]
    ring = np.count_nonzero(mask[:, (0, -1), :], axis=(1, 2)) + np.count_nonzero(mask[:, 1:-1, (0, -1)], axis=(1, 2))
    out[:, 3] = ring / (4 * SIDE - 4)
    corner = images[:, :-1, :-1]
    grad = np.abs(images[:, :-1, 1:] - corner).sum(axis=(1, 2)) + np.abs(images[:, 1:, :-1] - corner).sum(axis=(1, 2))
    out[:, 4] = grad / np.maximum(total, 255.0)
    out[:, 5] = np.count_nonzero(mask.any(axis=1), axis=1)
    out[:, 6] = np.count_nonzero(mask.any(axis=2), axis=1)
    axis = np.arange(SIDE, dtype=np.float32)
    safe = np.where(total > 0, total, 1.0)
    out[:, 7] = np.where(total > 0, images.sum(axis=1) @ axis / safe, _CENTRE)
    out[:, 8] = np.where(total > 0, images.sum(axis=2) @ axis / safe, _CENTRE)
    return out


def confidence_entropy(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class, its probability, entropy in nats) per row of ``probs``."""
    probs = np.asarray(probs, dtype=np.float32)
    class_id = probs.argmax(axis=1)
    confidence = probs[np.arange(len(probs)), class_id]
    clipped = np.clip(probs, 1e-12, 1.0)
    entropy = -(probs * np.log(clipped)).sum(axis=1)
    return class_id, confidence, np.maximum(entropy, 0.0)
