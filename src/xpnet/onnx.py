"""Export a trained xpnet model to ONNX: one file that ONNX Runtime, TensorRT, OpenVINO or
a browser runs, built with ``onnx.helper`` (``pip install "xpnet[onnx]"``).

Every layer xpnet ships maps to standard operators, as in eval mode (a model in training
mode is exported as ``model.eval()`` computes; nothing about the model is changed):

=============================  =====================================================
xpnet                          ONNX
=============================  =====================================================
``Conv2d``                     ``Conv`` (pads [top, left, bottom, right])
``MaxPool2d``                  ``MaxPool`` (padding never wins the max, as in xpnet)
``AvgPool2d``                  ``AveragePool``, ``count_include_pad=1`` (as xpnet)
``AdaptiveAvgPool2d``          ``GlobalAveragePool`` (1x1), else ``AveragePool``
``BatchNorm1d/2d``             ``BatchNormalization`` with the running statistics, eps
``Linear``                     ``Gemm`` (``transB=1``)
``ReLU``/``Sigmoid``/``Tanh``  ``Relu``/``Sigmoid``/``Tanh``
``Softmax``                    ``Softmax`` (opset >= 13: per-axis semantics)
``Flatten``                    ``Flatten`` (axis 1)
``Residual``                   its block, its shortcut (or the input), ``Add``
``Dropout``                    nothing (the identity in eval mode)
=============================  =====================================================

The graph's input is ``images`` (``N x C x H x W`` float32, ``N`` dynamic), its output
``logits``; the file's metadata records xpnet's version and the model's spec
(``xpnet_version``, ``xpnet_spec``). A layer that cannot be exported raises
:class:`ExportError` naming it and its place in the model before anything is written;
the file is written atomically (a temporary file, then renamed), so a failed export
leaves no partial file behind.

Examples
--------
>>> import tempfile, pathlib
>>> from xpnet import models
>>> from xpnet.onnx import export
>>> path = pathlib.Path(tempfile.mkdtemp()) / "lenet5.onnx"
>>> export(models.build("lenet5", backend="numpy"), path, input_shape=(1, 28, 28)).name
'lenet5.onnx'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from ._files import write_atomically
from .nn import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    ReLU,
    Residual,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)

DEFAULT_OPSET = 17
MIN_OPSET = {"Softmax": 13, "Flatten": 13, "Gemm": 13, "BatchNormalization": 9}
"""The lowest opset each operator is exported for (others: 7); Softmax before 13 flattened
its input to 2-D, which is not xpnet's softmax."""
LOWEST_OPSET = 7


class ExportError(ValueError):
    """The model, shape or opset cannot be exported (nothing was written)."""


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _Graph:
    """The nodes and initialisers built so far, with unique names."""

    def __init__(self, opset: int) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def constant(self, name: str, value: Any) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], where: str, **attrs: Any) -> str:
        needed = MIN_OPSET.get(op, LOWEST_OPSET)
        if self.opset < needed:
            raise ExportError(
                f"opset {self.opset} is too old for {op} (layer {where}): it needs opset "
                f">= {needed}"
            )
        self._count += 1
        output = f"{op.lower()}_{self._count}"
        self.nodes.append(
            self.helper.make_node(op, list(inputs), [output], name=f"{where}:{op}", **attrs)
        )
        return output


def _emit(layer: Module, x: str, rank: int, where: str, g: _Graph) -> tuple[str, int]:
    """Add ``layer`` applied to the value ``x`` (of ``rank`` dimensions) to ``g``; return
    the output's name and rank. ``where`` names the layer's place (``"4.block.0"``)."""
    kind = type(layer).__name__
    if isinstance(layer, Sequential):
        for index, child in enumerate(layer.children()):
            x, rank = _emit(child, x, rank, f"{where}.{index}" if where else str(index), g)
        return x, rank
    if isinstance(layer, Residual):
        prefix = f"{where}." if where else ""
        out, out_rank = _emit(layer.block, x, rank, f"{prefix}block", g)
        skip = (
            x
            if layer.shortcut is None
            else _emit(layer.shortcut, x, rank, f"{prefix}shortcut", g)[0]
        )
        return g.node("Add", [out, skip], where or kind), out_rank
    if isinstance(layer, Dropout) and _exact(layer):
        return x, rank
    state = layer.state_dict()  # a leaf's own weights (a container's would copy them all)
    if isinstance(layer, Conv2d) and _exact(layer):
        _expect_rank(rank, 4, kind, where)
        w = g.constant(f"{where}.weight", state["weight"])
        inputs = [x, w] + ([g.constant(f"{where}.bias", state["bias"])] if "bias" in state else [])
        (kh, kw), (ph, pw) = state["weight"].shape[2:], layer.padding
        return g.node("Conv", inputs, where, kernel_shape=[kh, kw], strides=list(layer.stride),
                      pads=[ph, pw, ph, pw]), 4  # fmt: skip
    if isinstance(layer, (MaxPool2d, AvgPool2d)) and _exact(layer):
        _expect_rank(rank, 4, kind, where)
        kernel = _pair(layer.kernel_size)
        stride = kernel if layer.stride is None else _pair(layer.stride)
        ph, pw = _pair(layer.padding)
        attrs: dict[str, Any] = {"kernel_shape": list(kernel), "strides": list(stride),
                                 "pads": [ph, pw, ph, pw]}  # fmt: skip
        if isinstance(layer, AvgPool2d):
            attrs["count_include_pad"] = 1  # xpnet counts the zero padding, as PyTorch
            return g.node("AveragePool", [x], where, **attrs), 4
        return g.node("MaxPool", [x], where, **attrs), 4
    if isinstance(layer, AdaptiveAvgPool2d) and _exact(layer):
        _expect_rank(rank, 4, kind, where)
        if layer.output_size == (1, 1):
            return g.node("GlobalAveragePool", [x], where), 4
        raise ExportError(
            f"layer {where} (AdaptiveAvgPool2d{layer.output_size}): only output_size 1 "
            "exports without knowing the input size; use AvgPool2d for other sizes"
        )
    if isinstance(layer, (BatchNorm1d, BatchNorm2d)) and _exact(layer):
        if not layer.track_running_stats:
            raise ExportError(
                f"layer {where} ({kind}, track_running_stats=False) normalises by each "
                "batch's statistics even in eval mode; ONNX's BatchNormalization takes fixed ones"
            )
        channels = layer.num_features
        scale = state.get("weight", np.ones(channels, np.float32))
        shift = state.get("bias", np.zeros(channels, np.float32))
        inputs = [x] + [
            g.constant(f"{where}.{name}", value)
            for name, value in (("weight", scale), ("bias", shift),
                                ("running_mean", state["running_mean"]),
                                ("running_var", state["running_var"]))
        ]  # fmt: skip
        return g.node("BatchNormalization", inputs, where, epsilon=float(layer.eps)), rank
    if isinstance(layer, Linear) and _exact(layer):
        w = g.constant(f"{where}.weight", state["weight"])
        if rank == 2:
            inputs = [x, w] + (
                [g.constant(f"{where}.bias", state["bias"])] if "bias" in state else []
            )
            return g.node("Gemm", inputs, where, transB=1), 2
        out = g.node("MatMul", [x, g.constant(f"{where}.weight_t", state["weight"].T)], where)
        if "bias" in state:
            out = g.node("Add", [out, g.constant(f"{where}.bias", state["bias"])], where)
        return out, rank
    simple: dict[type, str] = {ReLU: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh"}
    if type(layer) in simple:
        return g.node(simple[type(layer)], [x], where), rank
    if isinstance(layer, Softmax) and _exact(layer):
        return g.node("Softmax", [x], where, axis=int(layer.axis)), rank
    if isinstance(layer, Flatten) and _exact(layer):
        return g.node("Flatten", [x], where, axis=1), 2
    raise ExportError(
        f"layer {where or '(the model)'} ({layer.type_name()}) has no ONNX export: xpnet "
        "exports Conv2d, pooling, BatchNorm, Linear, ReLU/Sigmoid/Tanh, Softmax, Flatten, "
        "Dropout, Residual and Sequential"
    )


def _exact(layer: Module) -> bool:
    """xpnet's own class, not a user's subclass (whose forward may differ)."""
    return type(layer).__module__.startswith("xpnet.")


def _expect_rank(rank: int, expected: int, kind: str, where: str) -> None:
    if rank != expected:
        raise ExportError(f"layer {where} ({kind}) needs a {expected}-D input; it gets {rank}-D")


def _image_shape(input_shape: Any) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) == 4:
        shape = shape[1:]  # (N, C, H, W): the batch size is dynamic anyway
    if len(shape) != 3 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ExportError(
            f"input_shape must be (C, H, W) or (N, C, H, W) with positive sizes (the "
            f"images are 4-D); got {input_shape!r}"
        )
    return shape


def to_onnx(model: Module, *, input_shape: Any, opset: int = DEFAULT_OPSET) -> Any:
    """The ONNX ``ModelProto`` of ``model`` for images of ``input_shape`` (checked with
    ``onnx.checker.check_model(full_check=True)``); see the module docstring.

    Parameters
    ----------
    model : Module
        Built from xpnet's layers.
    input_shape : sequence of int
        One image's (C, H, W); the batch size stays dynamic.
    opset : int
        The ONNX opset to target.

    Returns
    -------
    onnx.ModelProto
        The graph, weights included.
    """
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'xpnet[onnx]'") from None
    from onnx import TensorProto, helper

    highest = onnx.defs.onnx_opset_version()
    if (
        isinstance(opset, bool)
        or not isinstance(opset, int)
        or not LOWEST_OPSET <= opset <= highest
    ):
        raise ExportError(
            f"opset must be an int in [{LOWEST_OPSET}, {highest}] (this onnx's newest); got {opset!r}"
        )
    channels, height, width = _image_shape(input_shape)
    if not isinstance(model, Module):
        raise ExportError(f"model must be an xpnet Module; got {type(model).__name__}")
    g = _Graph(opset)
    output, rank = _emit(model, "images", 4, "", g)
    output = g.node("Identity", [output], "output") if output == "images" else output
    g.nodes[-1].output[0] = "logits"
    images = helper.make_tensor_value_info(
        "images", TensorProto.FLOAT, ["N", channels, height, width]
    )
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N"] + [None] * (rank - 1))
    graph = helper.make_graph(g.nodes, "xpnet", [images], [logits], g.initializers)
    proto = helper.make_model(
        graph, producer_name="xpnet", producer_version=__version__,
        opset_imports=[helper.make_opsetid("", opset)],
    )  # fmt: skip
    proto.ir_version = min(proto.ir_version, _IR_FOR_OPSET.get(opset, proto.ir_version))
    helper.set_model_props(
        proto, {"xpnet_version": __version__, "xpnet_spec": json.dumps(model.spec())}
    )
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the exported graph does not check: {first}") from None
    return proto


_IR_FOR_OPSET = {7: 3, 8: 3, 9: 4, 10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8,
                 18: 8, 19: 9, 20: 9, 21: 10}  # fmt: skip
"""The IR version each opset came with: older runtimes refuse a newer IR than they know."""


def export(
    model: Module, path: str | Path, *, input_shape: Any, opset: int = DEFAULT_OPSET
) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically; nothing on an error).

    Parameters
    ----------
    model : Module
        Any backend (the weights are read as NumPy float32); exported as in eval mode.
    path : str or Path
    input_shape : (C, H, W) or (N, C, H, W)
        The images' shape; the batch dimension is dynamic (``"N"``) whatever is given.
    opset : int, default 17

    Returns
    -------
    Path

    Raises
    ------
    ExportError
        A layer without an ONNX mapping (named with its place), a bad ``input_shape`` or
        ``opset``; ``OSError`` if ``path`` cannot be written.
    """
    proto = to_onnx(model, input_shape=input_shape, opset=opset)
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:
        return write_atomically(path, lambda handle: handle.write(proto.SerializeToString()))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """What an exported file says of itself: ``xpnet_version`` and ``spec`` (a dict).

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file written by :func:`export`.

    Returns
    -------
    dict
        ``xpnet_version`` (str or None) and ``spec`` (the model's spec, or None).
    """
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return {
        "xpnet_version": props.get("xpnet_version"),
        "spec": json.loads(props.get("xpnet_spec", "null")),
    }


__all__ = ["DEFAULT_OPSET", "ExportError", "export", "read_metadata", "to_onnx"]
