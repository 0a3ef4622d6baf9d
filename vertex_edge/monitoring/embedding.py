"""The model's penultimate activations as a second ONNX output, without retraining.

:func:`add_embedding_output` edits an exported ``model.onnx``: it finds each ``Softmax`` that
makes the probabilities, follows it back through the output layer's bias ``Add`` and ``MatMul``
(or one ``Gemm``) to that layer's input (the dense layer's activations), and exposes it as a
graph output named :data:`EMBEDDING_OUTPUT`. A mirror-averaging model has two such branches
(the image and its mirror image); their activations are averaged (``Mean``), as the
probabilities are. The first output (the probabilities) is unchanged, so a server that reads
output 0 answers exactly as before; the extra output costs no computation (the activations are
computed anyway), only a copy of ``dense`` floats per image.

The training export calls it once, after the ONNX export and before the model card's sha256
are taken. ``onnx`` is imported inside the functions (deferred: the prediction server's image
does not have it and never needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vertex_edge.errors import DataError
from vertex_edge.fsutil import atomic_write_bytes

EMBEDDING_OUTPUT = "embedding"
_DENSE_OPS = ("MatMul", "Gemm")
_PASS_THROUGH = ("Add", "Identity")  # the output layer's bias, or a renamed tensor


@dataclass(frozen=True)
class _Graph:
    producers: dict[str, Any]  # tensor name -> the node making it
    constants: dict[str, tuple[int, ...]]  # initializer name -> shape


def _index(graph: Any) -> _Graph:
    producers = {out: node for node in graph.node for out in node.output}
    constants = {init.name: tuple(init.dims) for init in graph.initializer}
    for node in graph.node:  # Constant nodes hold weights too in some exports
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = tuple(attr.t.dims)
    return _Graph(producers, constants)


def _dense_input(softmax: Any, graph: _Graph) -> tuple[str, int] | None:
    """From a Softmax back to its output layer's input: (tensor name, width), or None."""
    current = graph.producers.get(softmax.input[0])
    for _ in range(4):
        if current is None:
            return None
        data = [name for name in current.input if name and name not in graph.constants]
        if current.op_type in _DENSE_OPS:
            weights = [name for name in current.input[1:2] if name in graph.constants]
            if len(data) != 1 or not weights:
                return None
            shape = graph.constants[weights[0]]
            trans_b = current.op_type == "Gemm" and any(a.name == "transB" and a.i for a in current.attribute)
            return data[0], int(shape[1] if trans_b else shape[0])
        if current.op_type not in _PASS_THROUGH or len(data) != 1:
            return None
        current = graph.producers.get(data[0])
    return None


def embedding_sources(model: Any) -> list[tuple[str, int]]:
    """The output layer's input tensor of every Softmax branch: [(name, width)]."""
    graph = _index(model.graph)
    found = []
    for node in model.graph.node:
        if node.op_type == "Softmax":
            source = _dense_input(node, graph)
            if source is not None and source not in found:
                found.append(source)
    return found


def with_embedding_output(data: bytes, *, source: str = "model.onnx") -> bytes:
    """The ONNX model ``data`` with the penultimate activations added as a second output
    (unchanged when it already has one). :class:`DataError` when no dense output layer is found."""
    import onnx  # deferred: training only (see the module docstring)
    from onnx import TensorProto, helper

    model = onnx.load_from_string(data)
    if any(o.name == EMBEDDING_OUTPUT for o in model.graph.output):
        return data
    sources = embedding_sources(model)
    widths = {width for _, width in sources}
    if not sources or len(widths) != 1:
        raise DataError(
            f"{source}: cannot find the layer before the softmax (found {len(sources)} candidates)",
            hint="the embedding needs a Dense layer followed by a softmax; serve the model without an embedding",
        )
    names = [name for name, _ in sources]
    op = "Identity" if len(names) == 1 else "Mean"
    model.graph.node.append(helper.make_node(op, names, [EMBEDDING_OUTPUT], name="edge_embedding"))
    batch = model.graph.output[0].type.tensor_type.shape.dim[0]
    dim0: str | int | None = batch.dim_param or (batch.dim_value or None)
    model.graph.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, [dim0, widths.pop()]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def add_embedding_output(path: Path) -> int:
    """Rewrite ``path`` (atomically) with the embedding output; return the embedding width."""
    import onnx  # deferred: training only

    data = Path(path).read_bytes()
    edited = with_embedding_output(data, source=str(path))
    if edited != data:
        atomic_write_bytes(Path(path), edited)
    model = onnx.load_from_string(edited)
    out = next(o for o in model.graph.output if o.name == EMBEDDING_OUTPUT)
    return int(out.type.tensor_type.shape.dim[1].dim_value)
