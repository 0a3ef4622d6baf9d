"""The Fashion-MNIST CNN, in backend-agnostic Keras 3 (TensorFlow here, JAX or PyTorch work too).

Input: float32 ``(N, 28, 28)`` raw pixel values 0..255 (the model rescales). Output: softmax
probabilities ``(N, num_classes)``. Augmentation (``params.yaml`` ``train.augment``) runs as
Keras layers at the front of the training model: inside the backend's graph, so it costs the CPU
almost nothing. They are identity at inference, but their random ops do not convert to ONNX, so
the model is exported from :func:`inference_copy`, the same network without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vertex_edge.params import AugmentParams, ModelParams, TrainParams

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import numpy as np


def build_model(
    params: ModelParams,
    *,
    image_shape: tuple[int, int] = (28, 28),
    num_classes: int = 10,
    seed: int = 0,
    augment: AugmentParams | None = None,
    precision: str = "float32",
    steps_per_epoch: int = 1,
) -> keras.Model:
    """The network; ``augment`` adds the training-only augmentation layers (alternating flips
    need ``steps_per_epoch``, the training batches per epoch). ``precision``
    ``"mixed_bfloat16"`` computes in bfloat16 with float32 weights (the same weights as a float32
    build, so :func:`inference_copy` stays float32); the probabilities are float32 either way."""
    import keras
    from keras import layers

    dt = precision  # a Keras dtype policy name, given to every layer (no global policy)
    inputs = keras.Input(shape=image_shape, dtype="float32", name="image")
    x = inputs
    if augment is not None and augment.flip == "alternate":
        # deferred: the layer's module imports Keras (see its docstring); it reads raw pixels (float32)
        from vertex_edge.training.layers import AlternatingFlip

        x = AlternatingFlip(steps_per_epoch, name="augment_flip", dtype="float32")(x)
    x = layers.Rescaling(1.0 / 255.0, dtype=dt)(x)
    x = layers.Reshape((*image_shape, 1), dtype=dt)(x)
    if augment is not None and augment.flip is True:
        x = layers.RandomFlip("horizontal", seed=seed + 2, name="augment_flip", dtype=dt)(x)
    if augment is not None and augment.shift:
        factor = augment.shift / min(image_shape)  # whole pixels: nearest, zero fill
        x = layers.RandomTranslation(
            factor, factor, fill_mode="constant", interpolation="nearest", seed=seed + 3, name="augment_shift", dtype=dt
        )(x)
    if augment is not None and augment.erase:
        x = layers.RandomErasing(
            factor=(augment.erase, augment.erase), scale=(0.02, 0.25), fill_value=0.0, value_range=(0.0, 1.0),
            seed=seed + 4, name="augment_erase", dtype=dt,
        )(x)  # fmt: skip
    for i, filters in enumerate(params.filters):
        for j in range(1, params.convs):  # VGG-style extra convolutions at full resolution
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}_{j}", dtype=dt)(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}_{j}", dtype=dt)(x)
            x = layers.Activation("relu", dtype=dt)(x)
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}", dtype=dt)(x)
        # Pool first: batch norm and ReLU then touch a quarter of the values. On a CPU that is
        # about 30% of the training time for the same accuracy.
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}", dtype=dt)(x)
        # momentum 0.9: moving statistics settle within a few dozen steps (short runs, early epochs)
        x = layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}", dtype=dt)(x)
        x = layers.Activation("relu", dtype=dt)(x)
    x = layers.Dropout(params.dropout, seed=seed, dtype=dt)(x)
    x = layers.Flatten(dtype=dt)(x)
    x = layers.Dense(params.dense, activation="relu", name="dense", dtype=dt)(x)
    x = layers.Dropout(params.dense_dropout, seed=seed + 1, dtype=dt)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="fashion_cnn")


def float32_copy(
    model: keras.Model, params: TrainParams, *, image_shape: tuple[int, ...], num_classes: int
) -> keras.Model:
    """``model``'s network without its augmentation layers, in float32, with copied weights (the
    weights of a ``mixed_bfloat16`` model are float32 already)."""
    net = build_model(params.model, image_shape=image_shape, num_classes=num_classes, seed=params.seed)  # type: ignore[arg-type]
    for layer in net.layers:  # by name: an augmentation layer may hold state (a step counter)
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return net


def inference_copy(
    model: keras.Model, params: TrainParams, *, image_shape: tuple[int, ...], num_classes: int
) -> keras.Model:
    """``model``'s network without its augmentation layers (which hold no weights), as a new
    model with copied weights, averaging over the mirror image when ``mirror_average`` is set:
    what is exported to ONNX and served. Being a plain copy, it also lets the
    Vertex chief export a model trained under a distribution strategy on its own."""
    import numpy as np

    net = float32_copy(model, params, image_shape=image_shape, num_classes=num_classes)
    if params.model.mirror_average:
        import keras
        from keras import layers

        inputs = keras.Input(shape=image_shape, dtype="float32", name="image")
        mirrored = layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror")(inputs)  # left <-> right
        outputs = layers.Average(name="mean_probabilities")([net(inputs), net(mirrored)])
        net = keras.Model(inputs, outputs, name=f"{net.name}_mirror_average")
    net(np.zeros((1, *image_shape), dtype="float32"))  # Keras exports only models that were called
    return net


def predict(model: keras.Model, images: np.ndarray, params: TrainParams, *, batch_size: int = 512) -> np.ndarray:
    """Class probabilities from the training model, as :func:`inference_copy` computes them."""
    import numpy as np

    x = images.astype(np.float32)
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if params.model.mirror_average:
        probs = (probs + np.asarray(model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0))) / 2
    return probs
