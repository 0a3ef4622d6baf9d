"""Training options added for the faster, more accurate default: profiles, warm-up, label
smoothing, weight averaging, bfloat16 training with a float32 export; determinism. Tiny data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.synthetic import synthetic_images
from vertex_edge.data.prepare import Split
from vertex_edge.errors import ConfigError
from vertex_edge.params import Params, TrainParams, load_params

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = {"filters": [4, 8], "dense": 16}


def tiny_data(n_train: int = 192, n_test: int = 64) -> tuple[Split, Split]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n_train + n_test).astype(np.uint8)
    images = synthetic_images(labels, seed=1)
    return Split(images[:n_train], labels[:n_train]), Split(images[n_train:], labels[n_train:])


# ----------------------------------------------------------------------------- params


def test_empty_and_partial_params_validate_with_the_new_options_off() -> None:
    for data in (None, {}, {"train": {}}, {"train": {"epochs": 1}}):
        train = Params.model_validate(data).train
        assert train.profile == "default" and train.profiles == {}
        assert (train.warmup_epochs, train.label_smoothing, train.ema_momentum) == (0.0, 0.0, 0.0)
        assert train.precision == "float32"


def test_the_repository_params_files_validate() -> None:
    default = load_params(REPO / "params.yaml").train
    assert default.profile == "default" and "gpu" in default.profiles
    gpu = TrainParams.model_validate({**yaml.safe_load((REPO / "params.yaml").read_text())["train"], "profile": "gpu"})
    assert gpu.precision == "float32"  # GPUs without bfloat16 support are common on Vertex AI
    assert gpu.epochs > default.epochs
    baseline = load_params(REPO / "benchmarks" / "params" / "baseline-93.yaml").train
    assert baseline.epochs == 15 and baseline.batch_size == 64 and baseline.precision == "float32"


def test_a_profile_overrides_values_and_merges_nested_sections() -> None:
    base = {
        "epochs": 15,
        "model": {"filters": [8, 16], "dense": 32},
        "profiles": {"gpu": {"epochs": 40, "model": {"dense": 64}}},
    }
    assert TrainParams.model_validate(base).epochs == 15
    gpu = TrainParams.model_validate({**base, "profile": "gpu"})
    assert gpu.epochs == 40
    assert gpu.model.dense == 64 and gpu.model.filters == [8, 16]  # merged key by key
    # the resolved params travel as JSON (Vertex AI job); reading them again changes nothing
    assert TrainParams.model_validate_json(gpu.model_dump_json()) == gpu


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"profile": "tpu"}, "profile 'tpu' is not defined (known: default)"),
        ({"profiles": {"gpu": {"epoch": 40}}}, "profiles.gpu: epoch: Extra inputs are not permitted"),
        ({"profiles": {"gpu": {"model": {"convs": 9}}}}, "profiles.gpu: model.convs"),
        ({"profiles": {"gpu": {"batch_size": 0}}}, "profiles.gpu: batch_size"),
        ({"profiles": {"gpu": {"profile": "gpu"}}}, "cannot set 'profile'"),
        ({"precision": "float16"}, "precision"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"ema_momentum": -0.1}, "ema_momentum"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_options_are_reported(tmp_path: Path, train: dict, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"train": train}))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    assert message in str(err.value) + str(getattr(err.value, "hint", ""))


# ----------------------------------------------------------------------------- fit loop pieces


def test_warmup_then_cosine_schedule_and_its_cap() -> None:
    from vertex_edge.training.fit import make_optimizer, make_schedule

    params = TrainParams(epochs=10, learning_rate=0.01, warmup_epochs=2)
    schedule = make_schedule(params, steps_per_epoch=10)  # 100 steps, 20 of warm-up
    lr = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    assert lr[0] == pytest.approx(0.0) and lr[1] == pytest.approx(0.005) and lr[2] == pytest.approx(0.01)
    assert lr[2] > lr[3] > lr[4] == pytest.approx(0.0001)  # cosine down to 1%
    # no warm-up: today's schedule
    plain = make_schedule(TrainParams(epochs=10, learning_rate=0.01), steps_per_epoch=10)
    assert float(plain(0)) == pytest.approx(0.01)
    # final_lr: where the cosine ends (0: all the way down)
    to_zero = make_schedule(TrainParams(epochs=10, learning_rate=0.01, warmup_epochs=2, final_lr=0.0), steps_per_epoch=10)
    assert float(to_zero(100)) == pytest.approx(0.0, abs=1e-9) and float(to_zero(20)) == pytest.approx(0.01)
    # a 1-epoch run of params with 1 warm-up epoch still trains: warm-up is capped at half the run
    short = make_schedule(TrainParams(epochs=1, learning_rate=0.01, warmup_epochs=1), steps_per_epoch=10)
    assert float(short(5)) == pytest.approx(0.01)
    assert not make_optimizer(TrainParams(), steps_per_epoch=10).use_ema
    averaged = make_optimizer(TrainParams(ema_momentum=0.99), steps_per_epoch=10)
    assert averaged.use_ema and averaged.ema_momentum == pytest.approx(0.99)
    decayed = make_optimizer(TrainParams(weight_decay=0.05), steps_per_epoch=10)
    assert type(decayed).__name__ == "AdamW" and decayed.weight_decay == pytest.approx(0.05)
    assert type(make_optimizer(TrainParams(), steps_per_epoch=10)).__name__ == "Adam"


def test_label_smoothing_uses_one_hot_targets() -> None:
    from vertex_edge.training.fit import make_loss, targets

    labels = np.array([0, 3, 9], dtype=np.uint8)
    assert make_loss(TrainParams()) == "sparse_categorical_crossentropy"
    np.testing.assert_array_equal(targets(labels, TrainParams(), 10), [0, 3, 9])
    smooth = TrainParams(label_smoothing=0.1)
    assert make_loss(smooth).get_config()["label_smoothing"] == pytest.approx(0.1)
    one_hot = targets(labels, smooth, 10)
    assert one_hot.shape == (3, 10) and one_hot.dtype == np.float32
    np.testing.assert_array_equal(one_hot.argmax(axis=1), labels)


def test_bfloat16_training_model_has_float32_weights_output_and_export() -> None:
    from vertex_edge.training.network import build_model, float32_copy, inference_copy

    params = TrainParams(precision="mixed_bfloat16", model=TINY_MODEL)
    model = build_model(params.model, augment=params.augment, seed=1, precision=params.precision)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert all(w.dtype == np.float32 for w in model.get_weights())
    images = synthetic_images(np.arange(8) % 10, seed=2).astype(np.float32)
    probs = np.asarray(model(images, training=False))
    assert probs.dtype == np.float32
    copy = float32_copy(model, params, image_shape=(28, 28), num_classes=10)
    assert {layer.compute_dtype for layer in copy.layers if layer.weights} == {"float32"}
    np.testing.assert_allclose(np.asarray(copy(images)), np.asarray(probs), atol=0.05)  # bfloat16 rounding
    served = inference_copy(model, params, image_shape=(28, 28), num_classes=10)
    assert {w.dtype for w in served.get_weights()} == {np.dtype(np.float32)}


def test_blocks_with_more_convolutions_export_like_single_ones() -> None:
    from vertex_edge.training.network import build_model, inference_copy

    params = TrainParams(model={**TINY_MODEL, "convs": 2})
    model = build_model(params.model, augment=params.augment, seed=1)
    names = {layer.name for layer in model.layers}
    assert {"conv1_1", "bn1_1", "conv1", "conv2_1", "conv2"} <= names
    images = synthetic_images(np.arange(4) % 10, seed=3).astype(np.float32)
    served = inference_copy(model, params, image_shape=(28, 28), num_classes=10)
    mirrored = np.asarray(model(images[:, :, ::-1], training=False))
    np.testing.assert_allclose(
        np.asarray(served(images)), (np.asarray(model(images, training=False)) + mirrored) / 2, atol=1e-6
    )


@pytest.mark.slow
def test_train_with_every_option_keeps_the_average_and_is_deterministic(tmp_path: Path) -> None:
    import keras

    from vertex_edge.training.fit import train

    train_split, test_split = tiny_data()
    params = TrainParams(
        epochs=2, batch_size=32, learning_rate=0.004, warmup_epochs=1, label_smoothing=0.1, ema_momentum=0.9,
        weight_decay=0.05, precision="mixed_bfloat16", validation_split=0.25, early_stopping_patience=1,
        model=TINY_MODEL, seed=5,
    )  # fmt: skip
    first = train(train_split, test_split, params, num_classes=10)
    assert first.epochs_run == 2 and 0.0 <= first.test_accuracy <= 1.0 and first.cpu_seconds > 0
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(first.history[-1])
    # the moving average is what the model holds at the end (not the last or best epoch's raw weights)
    averages = first.model.optimizer._model_variables_moving_average
    for weight, average in zip(first.model.trainable_weights, averages, strict=True):
        np.testing.assert_array_equal(np.asarray(weight), np.asarray(average))
    # the Vertex AI stage and a resumed job load the saved training model (bfloat16 layers, AdamW, schedule)
    first.model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    images = test_split.images[:4].astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(loaded(images, training=False)), np.asarray(first.model(images, training=False))
    )
    # same seed, same machine: the same weights and accuracy
    second = train(train_split, test_split, params, num_classes=10)
    assert second.test_accuracy == first.test_accuracy
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_alternating_flips_mirror_each_image_every_other_epoch_and_survive_a_checkpoint(tmp_path) -> None:  # noqa: ANN001
    import keras

    from vertex_edge.training.layers import AlternatingFlip
    from vertex_edge.training.network import build_model, float32_copy

    layer = AlternatingFlip(steps_per_epoch=2)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28)).astype(np.float32)
    mirrored = images[:, :, ::-1]
    seen = [np.asarray(layer(images, training=True)) for _ in range(6)]  # 3 epochs of 2 steps
    flipped = np.array([[np.array_equal(s[i], mirrored[i]) for i in range(6)] for s in seen])
    assert all(np.array_equal(s[i], images[i]) or flipped[k, i] for k, s in enumerate(seen) for i in range(6))
    np.testing.assert_array_equal(flipped[0], flipped[1])  # the same within an epoch
    np.testing.assert_array_equal(flipped[2], ~flipped[0])  # the other way round in the next one
    np.testing.assert_array_equal(flipped[4], flipped[0])
    assert 0 < flipped[0].sum() < 6  # the first orientation is a per-image bit (pixel-sum parity)
    np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)

    params = TrainParams(augment={"flip": "alternate", "shift": 1}, model={"filters": [4], "dense": 8})
    model = build_model(params.model, augment=params.augment, seed=1, steps_per_epoch=3)
    model(images, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")  # registered: a checkpoint resumes
    assert int(loaded.get_layer("augment_flip").step.numpy()) == 1
    copy = float32_copy(loaded, params, image_shape=(28, 28), num_classes=10)
    assert not any(layer.name.startswith("augment_") for layer in copy.layers)
    np.testing.assert_allclose(np.asarray(copy(images)), np.asarray(model(images, training=False)), atol=1e-6)
