"""A tiny ONNX model + model card with the real artifact contract, built without TensorFlow.

The model scores class k by the brightness of rows 2k+3..2k+5 (like tests/synthetic.py), so a
bar drawn there is classified as k; ``bias`` pushes every prediction towards one class (two
versions can then be told apart by their answers).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def bar_image(class_id: int) -> np.ndarray:
    """A 28x28 image the tiny model classifies as ``class_id``."""
    image = np.zeros((28, 28), dtype=np.float32)
    image[2 * class_id + 3 : 2 * class_id + 6, 4:24] = 220.0
    return image


def build_onnx(path: Path, *, bias_class: int | None = None, hidden: int = 0) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.zeros((784, 10), dtype=np.float32)
    for k in range(10):
        rows = np.zeros((28, 28), dtype=np.float32)
        rows[2 * k + 3 : 2 * k + 6, :] = 1.0
        weights[:, k] = rows.reshape(-1) / 255.0 / 10.0
    bias = np.zeros(10, dtype=np.float32)
    if bias_class is not None:
        bias[bias_class] = 50.0
    nodes = [
        helper.make_node("Reshape", ["image", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(np.array([-1, 784], dtype=np.int64), "shape"),
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(bias, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def _artifact(path: Path) -> dict:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def write_model_dir(
    folder: Path,
    *,
    version: str = "20261122T110000Z-aaaaaaaa",
    accuracy: float = 0.95,
    bias_class: int | None = None,
    run_id: str | None = "7",
    labels: list[str] | None = None,
) -> Path:
    """``folder`` with model.onnx, model.keras (a stand-in file) and model_card.json."""
    folder.mkdir(parents=True, exist_ok=True)
    build_onnx(folder / "model.onnx", bias_class=bias_class)
    (folder / "model.keras").write_bytes(b"keras stand-in for " + version.encode())
    card = {
        "name": "fashion-mnist",
        "version": version,
        "created": "2026-11-22T11:00:00+00:00",
        "labels": labels or LABELS,
        "input": {"name": "image", "shape": [None, 28, 28], "dtype": "float32", "range": [0, 255]},
        "output": {"shape": [None, 10], "kind": "softmax probabilities"},
        "params": {"epochs": 1, "batch_size": 128},
        "data_version": "md5:0123456789abcdef",
        "git": {"commit": "3f2a9c1d" + "0" * 32, "dirty": False},
        "metrics": {"test_accuracy": accuracy, "test_loss": 0.3},
        "artifacts": {"model.onnx": _artifact(folder / "model.onnx"), "model.keras": _artifact(folder / "model.keras")},
        "sacred_run_id": run_id,
    }
    (folder / "model_card.json").write_text(json.dumps(card, indent=2))
    return folder
