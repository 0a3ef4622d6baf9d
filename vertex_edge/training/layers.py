"""Custom Keras layers of the training graph (backend-agnostic Keras 3 ops only).

:class:`AlternatingFlip` is the derandomised horizontal flip of speedrun practice (airbench):
instead of a coin toss per image per step, every image is mirrored in every other epoch, so each
one is seen both ways over any two consecutive epochs. Which of the two epochs comes first is a
fixed bit per image (the parity of its pixel sum, which a flip does not change), so the order
does not depend on how the batches are shuffled. The epoch comes from a step counter that the
layer keeps as a non-trainable weight (checkpointed with the model, so a resumed run carries on
where it stopped).

This module imports Keras at import time: :mod:`vertex_edge.training.network` imports it inside
the functions that build a training model, and anything loading a ``model.keras`` that contains
the layer (the Vertex trainer resuming from a checkpoint) imports it first, which registers it.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vertex_edge")
class AlternatingFlip(keras.layers.Layer):
    """Mirror each image (``[N, H, W]`` raw pixels) in alternate epochs while training; identity
    at inference. ``steps_per_epoch`` is the number of training batches per epoch."""

    def __init__(self, steps_per_epoch: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps_per_epoch = max(1, int(steps_per_epoch))

    def build(self, input_shape: Any) -> None:
        self.step = self.add_weight(name="step", shape=(), dtype="int32", initializer="zeros", trainable=False)

    def call(self, images: Any, training: bool | None = None) -> Any:
        if not training:
            return images
        epoch = ops.floor_divide(ops.convert_to_tensor(self.step), self.steps_per_epoch)
        self.step.assign(self.step + 1)
        # raw pixels are whole numbers: their sum is exact in float32 (at most 784 * 255)
        parity = ops.cast(ops.sum(images, axis=(1, 2)), "int32") % 2
        flip = ops.equal((parity + epoch) % 2, 1)
        return ops.where(flip[:, None, None], ops.flip(images, axis=2), images)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "steps_per_epoch": self.steps_per_epoch}
