"""The monitoring columns computed inside ``model.onnx``: one more output, no work in Python.

:func:`attach_monitor` appends to the exported model the same computation as
:func:`vertex_edge.monitoring.features.summarize` and :meth:`OodDetector.score
<vertex_edge.monitoring.ood.OodDetector.score>`, as ONNX operators, and exposes it as the output
:data:`MONITOR_OUTPUT`: float32 ``[N, 2 + len(FEATURES) + embedding components]`` =
``ood score | ood flag (0/1) | input summary features | first embedding components``
(:func:`vertex_edge.monitoring.layout.layout_columns` names them, and the model's metadata
holds the names). ONNX Runtime computes it
with the model, in the server's own threads: the prediction server does no numpy linear algebra
on the request path (numpy's BLAS threads would compete with the event loop), and the output
costs about what a few more model layers would.

The probabilities stay output 0, unchanged. ``onnx`` is imported inside the functions
(deferred: training only; the server's image does not have it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vertex_edge.monitoring.embedding import EMBEDDING_OUTPUT
from vertex_edge.monitoring.features import FEATURES, INK_LEVEL, SIDE
from vertex_edge.monitoring.layout import MONITOR_OUTPUT, layout_columns, layout_metadata
from vertex_edge.monitoring.ood import OodDetector

_P = "edge_monitor/"


class _Builder:
    """Appends nodes and constants to a graph; every name is prefixed with ``edge_monitor/``."""

    def __init__(self, model: Any) -> None:
        from onnx import helper, numpy_helper  # deferred: training only

        self.helper, self.numpy_helper = helper, numpy_helper
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{_P}{hint}_{self.count}"

    def const(self, value: Any, hint: str = "c", dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.graph.initializer.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.graph.node.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int = 1) -> str:
        # ReduceSum takes axes as an input from opset 13, the others from opset 18
        if op_type == "ReduceSum" and self.opset >= 13 or self.opset >= 18:
            return self.op(op_type, x, self.const(axes, "axes", np.int64), keepdims=keepdims)
        return self.op(op_type, x, axes=axes, keepdims=keepdims)

    def sumsq(self, x: str) -> str:
        """Row sums of squares: [N, D] -> [N, 1]"""
        return self.reduce("ReduceSumSquare", x, [1])

    def slice(self, x: str, start: int, end: int, axis: int) -> str:
        c = self.const
        return self.op("Slice", x, c([start], "s", np.int64), c([end], "e", np.int64), c([axis], "a", np.int64))


def _pixel_weights(det: OodDetector | None) -> np.ndarray:
    """[784, 3 (+1 + kp)]: sum, x moment, y moment (and x . pixel_mean, the pixel components / 255)."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    columns = [np.ones(SIDE * SIDE, np.float32), xs.reshape(-1), ys.reshape(-1)]
    if det is not None:
        columns.append(det.pixel_mean / 255.0)
        columns.extend(det.pixel_basis / 255.0)
    return np.stack(columns, axis=1).astype(np.float32)


def _features(b: _Builder, image: str, flat: str, linear: str) -> str:
    """Features [N, F] in FEATURES order, from the image and ``linear`` = flat @ _pixel_weights."""
    pixels = float(SIDE * SIDE)
    total = b.slice(linear, 0, 1, 1)
    mean = b.op("Mul", total, b.const(1.0 / pixels))
    brightest = b.reduce("ReduceMax", flat, [1])
    mask = b.op("Cast", b.op("Greater", flat, b.const(INK_LEVEL)), to=1)
    ring = np.ones((SIDE, SIDE), np.float32)
    ring[1:-1, 1:-1] = 0.0
    ink = b.op("MatMul", mask, b.const(np.stack([np.full(SIDE * SIDE, 1 / pixels), ring.reshape(-1) / ring.sum()], 1)))
    kernels = np.zeros((2, 1, 2, 2), np.float32)
    kernels[0, 0, 0] = (-1.0, 1.0)  # right neighbour - pixel
    kernels[1, 0, :, 0] = (-1.0, 1.0)  # lower neighbour - pixel
    planes = b.op("Reshape", image, b.const([-1, 1, SIDE, SIDE], "shape", np.int64))
    grad = b.reduce("ReduceSum", b.op("Abs", b.op("Conv", planes, b.const(kernels))), [1, 2, 3], keepdims=0)
    edges = b.op("Div", b.op("Reshape", grad, b.const([-1, 1], "shape", np.int64)), b.op("Max", total, b.const(255.0)))
    mask3 = b.op("Reshape", mask, b.const([-1, SIDE, SIDE], "shape", np.int64))
    columns = b.reduce("ReduceMax", mask3, [1])  # [N, 1, 28]: a bright pixel in this column
    rows = b.op("Transpose", b.reduce("ReduceMax", mask3, [2]), perm=[0, 2, 1])
    present = b.op("Concat", columns, rows, axis=1)  # [N, 2, 28]
    extent = b.reduce("ReduceSum", present, [2], keepdims=0)  # [N, 2]: width, height
    moments = b.slice(linear, 1, 3, 1)
    com = b.op("Div", moments, b.op("Max", total, b.const(1e-6)))
    com = b.op("Where", b.op("Greater", total, b.const(0.0)), com, b.const([[(SIDE - 1) / 2.0] * 2]))
    return b.op("Concat", mean, brightest, ink, edges, extent, com, axis=1)


def _ood(
    b: _Builder, det: OodDetector, flat: str, linear: str, features: str, embedding: str | None
) -> tuple[str, str | None]:
    """(score [N, 1], embedding components [N, ke] or None)."""
    # ||x/255 - m||^2 - ||(x/255 - m) B||^2, from the linear columns (x.m, x B / 255)
    kp = det.pixel_basis.shape[0]
    sq = b.op("Add", b.op("Mul", b.sumsq(flat), b.const(1 / 255.0**2)),
              b.op("Mul", b.slice(linear, 3, 4, 1), b.const(-2.0)))  # fmt: skip
    sq = b.op("Add", sq, b.const(float(det.pixel_mean @ det.pixel_mean)))
    zp = b.op("Sub", b.slice(linear, 4, 4 + kp, 1), b.const((det.pixel_basis @ det.pixel_mean)[None, :]))
    residual = b.op("Relu", b.op("Sub", sq, b.sumsq(zp)))
    raw = {"pixel_residual": b.op("Sqrt", b.op("Mul", residual, b.const(1.0 / (SIDE * SIDE))))}
    image_names = [n for n in det.names if n in FEATURES]
    gathered = b.op("Gather", features, b.const([FEATURES.index(n) for n in image_names], "index", np.int64), axis=1)
    z = None
    if det.uses_embedding:
        assert embedding is not None and det.embedding_mean is not None and det.embedding_basis is not None
        assert det.bank is not None and det.bank_norms is not None
        norm = b.op("Max", b.op("Sqrt", b.sumsq(embedding)), b.const(1e-6))
        centred = b.op("Sub", b.op("Div", embedding, norm), b.const(det.embedding_mean))
        z = b.op("MatMul", centred, b.const(det.embedding_basis.T))
        z_sq = b.sumsq(z)
        raw["embedding_residual"] = b.op("Sqrt", b.op("Relu", b.op("Sub", b.sumsq(centred), z_sq)))
        cross = b.op("MatMul", z, b.const(det.bank.T * -2.0))
        d2 = b.op("Add", b.op("Add", cross, z_sq), b.const(det.bank_norms))
        nearest = b.name("topk")
        b.graph.node.append(b.helper.make_node(
            "TopK", [d2, b.const([det.k], "k", np.int64)], [nearest, b.name("topk_idx")], name=nearest,
            axis=1, largest=0, sorted=1,
        ))  # fmt: skip
        raw["knn"] = b.op("Sqrt", b.op("Relu", b.slice(nearest, det.k - 1, det.k, 1)))
    order = [n for n in det.names if n not in FEATURES] + image_names
    values = b.op("Concat", *(raw[n] for n in order if n in raw), gathered, axis=1)  # [N, d]
    # the scales in the graph's column order (computed detectors first, then the gathered features)
    inv = [list(det.names).index(n) for n in order]
    centre, upper, lower = det.centre[inv], det.upper[inv], det.lower[inv]
    offset = b.op("Sub", values, b.const(centre))
    up = b.op("Mul", offset, b.const(np.where(upper > 0, 1.0 / np.where(upper > 0, upper, 1.0), 0.0)))
    down = b.op("Mul", offset, b.const(np.where(lower > 0, -1.0 / np.where(lower > 0, lower, 1.0), 0.0)))
    scaled = b.op("Relu", b.op("Max", up, down))
    return b.reduce("ReduceMax", scaled, [1]), z


def attach_monitor(data: bytes, detector: OodDetector | None, *, components: int) -> bytes:
    """``data`` (an ONNX model whose input is the image, with the ``embedding`` output when the
    detector uses one) with the :data:`MONITOR_OUTPUT` output added. Without a detector the
    score and flag columns are 0 (features and, when present, no embedding components)."""
    import onnx  # deferred: training only
    from onnx import TensorProto, helper

    model = onnx.load_from_string(data)
    if any(o.name == MONITOR_OUTPUT for o in model.graph.output):
        raise ValueError("the model already has a monitor output")
    b = _Builder(model)
    image = model.graph.input[0].name
    has_embedding = any(o.name == EMBEDDING_OUTPUT for o in model.graph.output)
    flat = b.op("Reshape", image, b.const([-1, SIDE * SIDE], "shape", np.int64))
    linear = b.op("MatMul", flat, b.const(_pixel_weights(detector)))
    features = _features(b, image, flat, linear)
    columns = []
    z = None
    if detector is not None:
        score, z = _ood(b, detector, flat, linear, features, EMBEDDING_OUTPUT if has_embedding else None)
        flag = b.op("Cast", b.op("Greater", score, b.const(detector.threshold)), to=1)
        columns += [score, flag]
    else:
        zeros = b.op("Mul", b.slice(features, 0, 1, 1), b.const(0.0))
        columns += [zeros, zeros]
    columns.append(features)
    if components:
        if z is None:
            raise ValueError("embedding components need a detector fitted on the embedding")
        columns.append(b.slice(z, 0, components, 1))
    packed = b.op("Concat", *columns, axis=1)
    model.graph.node.append(helper.make_node("Identity", [packed], [MONITOR_OUTPUT], name=f"{_P}output"))
    batch = model.graph.output[0].type.tensor_type.shape.dim[0]
    dim0: str | int | None = batch.dim_param or (batch.dim_value or None)
    columns_names = layout_columns(components)
    model.graph.output.append(
        helper.make_tensor_value_info(MONITOR_OUTPUT, TensorProto.FLOAT, [dim0, len(columns_names)])
    )
    threshold = None if detector is None else detector.threshold
    fpr = None if detector is None else detector.fpr
    for key, value in layout_metadata(columns_names, threshold=threshold, fpr=fpr).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()
