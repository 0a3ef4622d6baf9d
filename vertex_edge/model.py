"""The Fashion-MNIST CNN, in backend-agnostic Keras 3 (TensorFlow here, JAX or PyTorch work too).

Input: float32 ``(N, 28, 28)`` raw pixel values 0..255 (the model rescales). Output: softmax
probabilities ``(N, num_classes)``. Augmentation is not part of the model, so the exported
ONNX graph is exactly the inference graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vertex_edge.params import ModelParams

if TYPE_CHECKING:  # pragma: no cover
    import keras


def build_model(
    params: ModelParams, *, image_shape: tuple[int, int] = (28, 28), num_classes: int = 10, seed: int = 0
) -> keras.Model:
    import keras
    from keras import layers

    inputs = keras.Input(shape=image_shape, dtype="float32", name="image")
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Reshape((*image_shape, 1))(x)
    for i, filters in enumerate(params.filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        # momentum 0.9: moving statistics settle within a few dozen steps (short runs, early epochs)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.Dropout(params.dropout, seed=seed)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(params.dense, activation="relu", name="dense")(x)
    x = layers.Dropout(params.dense_dropout, seed=seed + 1)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fashion_cnn")
