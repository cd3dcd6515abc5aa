"""Layers with parameters or shape changes: Conv2d, Linear, pooling, Flatten, Dropout, Sequential."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .. import functional as F
from .. import init
from .._backend import DeviceRandom, get_backend
from .._typing import Array
from .._validation import flag, namespace_of, pair, positive_int
from ..functional.pool import check_pool_args
from .activations import ReLU
from .module import Module, Parameter, in_inference_mode
from .normalization import _BatchNorm


class _WeightAndBias(Module):
    """A layer around one op ``f(x, weight, bias, **options)`` with hand-written backward.

    Subclasses name the op (``_op_forward``, ``_op_backward``) and its options
    (:meth:`_options`); parameters are created by :func:`_default_parameters`.
    """

    param_names = ("weight", "bias")
    _op_forward: ClassVar[Callable[..., Any]]
    _op_backward: ClassVar[Callable[..., Any]]
    weight: Parameter
    bias: Parameter | None

    def _options(self) -> dict[str, Any]:
        return {}

    def forward(self, x: Array) -> Array:
        bias = None if self.bias is None else self.bias.data
        out, self._saved = type(self)._op_forward(x, self.weight.data, bias, **self._options())
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        grad_x, self.weight.grad, grad_bias = type(self)._op_backward(
            grad_out, self._take_saved(), input_grad=input_grad
        )
        if self.bias is not None:
            self.bias.grad = grad_bias
        return grad_x


class Conv2d(_WeightAndBias):
    """2-D convolution layer; weight (C_out, C_in, kH, kW) as in PyTorch.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output (the number of filters).
    kernel_size, stride, padding : int or (int, int)
        Window size, step and zero padding on each side.
    bias : bool
        Learn a bias per output channel.
    rng : int or numpy.random.Generator, optional
        Seed for the initial weights (PyTorch's default scheme: uniform in
        +-1/sqrt(fan_in) for weight and bias).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    _op_forward = staticmethod(F.conv2d_forward)
    _op_backward = staticmethod(F.conv2d_backward)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        rng: Any = None,
        backend: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        c_in = positive_int(in_channels, "in_channels", "Conv2d")
        c_out = positive_int(out_channels, "out_channels", "Conv2d")
        kh, kw = pair(kernel_size, "kernel_size", "Conv2d", minimum=1)
        self.stride = pair(stride, "stride", "Conv2d", minimum=1)
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        shape = (c_out, c_in, kh, kw)
        self.weight, self.bias = _default_parameters(shape, bias, rng, backend, dtype)

    def _options(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding}

    @classmethod
    def state_shapes(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        c_in = positive_int(config.get("in_channels"), "in_channels", "Conv2d")
        c_out = positive_int(config.get("out_channels"), "out_channels", "Conv2d")
        kh, kw = pair(config.get("kernel_size"), "kernel_size", "Conv2d", minimum=1)
        return _weight_and_bias_shapes((c_out, c_in, kh, kw), config)

    def multiply_adds(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        _, c_in, kh, kw = self.weight.shape
        return math.prod(output_shape) * c_in * kh * kw

    def config(self) -> dict[str, Any]:
        c_out, c_in, kh, kw = self.weight.shape
        return {
            "in_channels": c_in,
            "out_channels": c_out,
            "kernel_size": (kh, kw),
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.bias is not None,
        }


class Linear(_WeightAndBias):
    """Fully connected layer ``x @ weight.T + bias``; weight (out, in) as in PyTorch.

    Parameters
    ----------
    in_features, out_features : int
        Sizes of each input and output row.
    bias : bool
        Learn a bias.
    rng : int or numpy.random.Generator, optional
        Seed for the initial weights (PyTorch's default scheme).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    _op_forward = staticmethod(F.linear_forward)
    _op_backward = staticmethod(F.linear_backward)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        rng: Any = None,
        backend: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        shape = (
            positive_int(out_features, "out_features", "Linear"),
            positive_int(in_features, "in_features", "Linear"),
        )
        self.weight, self.bias = _default_parameters(shape, bias, rng, backend, dtype)

    def multiply_adds(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        return math.prod(output_shape) * self.weight.shape[1]

    @classmethod
    def state_shapes(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        n_in = positive_int(config.get("in_features"), "in_features", "Linear")
        n_out = positive_int(config.get("out_features"), "out_features", "Linear")
        return _weight_and_bias_shapes((n_out, n_in), config)

    def config(self) -> dict[str, Any]:
        out_features, in_features = self.weight.shape
        return {
            "in_features": in_features,
            "out_features": out_features,
            "bias": self.bias is not None,
        }


def _weight_and_bias_shapes(
    weight: tuple[int, ...], config: Mapping[str, Any]
) -> dict[str, tuple[int, ...]]:
    """Shapes of ``weight`` and, with ``config["bias"]`` (default True), the bias."""
    has_bias = flag(config.get("bias", True), "bias", "config")
    return {"weight": weight, **({"bias": (weight[0],)} if has_bias else {})}


def _default_parameters(
    shape: tuple[int, ...], bias: bool, rng: Any, backend: str | None, dtype: str
) -> tuple[Parameter, Parameter | None]:
    """PyTorch's default initialisation for Conv2d/Linear: U(+-1/sqrt(fan_in)) for both."""
    generator = init.make_rng(rng)
    backend = backend or get_backend()
    weight = init.kaiming_uniform(
        shape, a=math.sqrt(5), rng=generator, backend=backend, dtype=dtype
    )
    if not bias:
        return Parameter(weight), None
    bound = 1.0 / math.sqrt(init.fan_in_and_fan_out(shape)[0])
    values = init.uniform((shape[0],), -bound, bound, rng=generator, backend=backend, dtype=dtype)
    return Parameter(weight), Parameter(values)


class _Pool2d(Module):
    """A pooling layer around ``_op_forward(x, kernel_size, stride=, padding=)``; the
    subclass names the op."""

    _op_forward: ClassVar[Callable[..., Any]]
    _op_backward: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        check_pool_args(type(self).__name__, None, kernel_size, stride, padding)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Array) -> Array:
        out, self._saved = type(self)._op_forward(
            x, self.kernel_size, stride=self.stride, padding=self.padding
        )
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        return type(self)._op_backward(grad_out, self._take_saved())

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class MaxPool2d(_Pool2d):
    """Max pooling layer (see :func:`xpnet.functional.max_pool2d`).

    Parameters
    ----------
    kernel_size : int or (int, int)
        The window's size.
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, at most half the kernel size.
    """

    _op_forward = staticmethod(F.max_pool2d_forward)
    _op_backward = staticmethod(F.max_pool2d_backward)


class AvgPool2d(_Pool2d):
    """Average pooling layer, zero padding counted (see :func:`xpnet.functional.avg_pool2d`).

    Parameters
    ----------
    kernel_size : int or (int, int)
        The window's size.
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Padding on each side, at most half the kernel size.
    """

    _op_forward = staticmethod(F.avg_pool2d_forward)
    _op_backward = staticmethod(F.avg_pool2d_backward)


class AdaptiveAvgPool2d(Module):
    """Average pooling to an ``output_size`` output (``1``: global average pooling); the
    input's sides must be multiples of it (see :func:`xpnet.functional.adaptive_avg_pool2d`).

    Parameters
    ----------
    output_size : int or (int, int)
        The output's (out_h, out_w).
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = pair(output_size, "output_size", "AdaptiveAvgPool2d", minimum=1)

    def forward(self, x: Array) -> Array:
        out, self._saved = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        return F.avg_pool2d_backward(grad_out, self._take_saved())

    def config(self) -> dict[str, Any]:
        return {"output_size": self.output_size}


class Flatten(Module):
    """Reshape (N, ...) to (N, prod(...))."""

    def forward(self, x: Array) -> Array:
        xp = namespace_of("Flatten", x=x)
        self._saved = tuple(x.shape)
        return xp.reshape(x, (x.shape[0], -1))

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        xp = namespace_of("Flatten", grad_out=grad_out)
        return xp.reshape(grad_out, self._take_saved())


class Dropout(Module):
    """Zero each element with probability ``p`` while training, scaling the rest by 1/(1-p).

    The identity in eval mode. The mask is drawn on the input's device (seeded by ``seed``).

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1).
    seed : int, optional
        Seeds the masks (drawn on the device).
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1); got {p!r}")
        self.p = float(p)
        self._random = DeviceRandom(seed)

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0.0:
            self._saved = False  # the identity: nothing to mask on the way back
            return x
        xp = namespace_of("Dropout", x=x)
        self._saved = keep = self._random.uniform(tuple(x.shape), like=x) >= self.p
        return xp.where(keep, x / (1.0 - self.p), xp.zeros_like(x))

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        keep = self._take_saved()
        if keep is False:
            return grad_out
        xp = namespace_of("Dropout", grad_out=grad_out)
        return xp.where(keep, grad_out / (1.0 - self.p), xp.zeros_like(grad_out))

    def config(self) -> dict[str, Any]:
        return {"p": self.p}


def _folds_into_conv(conv: Conv2d, layer: Module | None) -> bool:
    """Whether ``layer`` is a batch norm of ``conv``'s output (4-D, its channel count) in
    eval mode that normalises by running statistics, and nothing more (not a subclass with
    a forward of its own). Any other pair runs as it is, with its own errors."""
    return (
        isinstance(layer, _BatchNorm)
        and 4 in layer.input_ranks
        and layer.fuses_relu()
        and not layer.training
        and layer.track_running_stats
        and tuple(layer.running_mean.shape) == (conv.weight.shape[0],)
    )


def _folded_conv(conv: Conv2d, norm: _BatchNorm, x: Array) -> Array:
    """``norm(conv(x))`` as one convolution: with ``s = gamma / sqrt(running_var + eps)``,
    weights ``W * s`` (per output channel) and bias ``(b - running_mean) * s + beta``.
    Neither layer keeps anything for ``backward``."""
    xp = namespace_of("Conv2d", x=x)
    weight = conv.weight.data
    scale = 1.0 / xp.sqrt(norm.running_var.data + norm.eps)
    shift = -norm.running_mean.data
    if conv.bias is not None:
        shift = shift + conv.bias.data
    affine = norm.weight is not None and norm.bias is not None
    if affine:
        scale = scale * norm.weight.data  # type: ignore[union-attr]
    bias = shift * scale
    if affine:
        bias = bias + norm.bias.data  # type: ignore[union-attr]
    folded = weight * xp.reshape(scale, (-1, 1, 1, 1))
    conv._saved = norm._saved = None
    return F.conv2d(x, folded, bias, stride=conv.stride, padding=conv.padding)


POOL_BEFORE_RELU = True
"""Whether :class:`Sequential` runs a ``ReLU`` followed by a ``MaxPool2d`` pooling first
(the same output and gradients; switchable to compare)."""


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    Parameter names follow PyTorch (``"0.weight"``, ``"0.bias"``, ``"3.weight"``, ...), so a
    ``torch.nn.Sequential`` of the same layers exchanges ``state_dict`` entries directly.

    Parameters
    ----------
    *layers : Module
        The layers, in the order the forward runs them.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: layer {index} must be an xpnet Module; got {type(layer).__name__}"
                )
        self.layers = list(layers)

    def children(self) -> list[Module]:
        return self.layers

    def forward(self, x: Array) -> Array:
        """Each layer's forward in turn, with two rewrites that give the same results:

        - a batch norm layer followed by a ``ReLU`` layer runs both as one op
          (:meth:`BatchNorm2d.forward_relu <xpnet.nn.BatchNorm2d.forward_relu>`: one pass
          over memory instead of two each way with the NumPy kernel);
        - a ``ReLU`` followed by a :class:`MaxPool2d` runs the pooling first: the largest
          of ReLU'd values is the ReLU of the largest value, so the ReLU then runs on the
          pooled output, a quarter of the size for 2x2 windows, and so does its backward
          (see :meth:`backward`: the gradient reaches the same input elements);
        - inside :func:`~xpnet.nn.inference_mode`, a :class:`Conv2d` followed by a batch
          norm layer in eval mode runs as one convolution, the batch norm folded into its
          weights and bias (:func:`_folded_conv`), as inference engines do (the same output
          to float32 rounding).

        Parameters
        ----------
        x : array
            The first layer's input.

        Returns
        -------
        array
            The last layer's output.
        """
        self._pooled_first: list[int] = []
        index = 0
        inference = in_inference_mode()
        while index < len(self.layers):
            layer = self.layers[index]
            following = self.layers[index + 1] if index + 1 < len(self.layers) else None
            if inference and type(layer) is Conv2d and _folds_into_conv(layer, following):
                x = _folded_conv(layer, following, x)  # type: ignore[arg-type]
                index += 2
            elif isinstance(layer, _BatchNorm) and layer.fuses_relu() and type(following) is ReLU:
                x = layer.forward_relu(x)
                following.applied_before()
                index += 2
            elif POOL_BEFORE_RELU and type(layer) is ReLU and type(following) is MaxPool2d:
                x = layer(following(x))
                self._pooled_first.append(index)
                index += 2
            else:
                x = layer(x)
                index += 1
        return x

    def counted_forward(self, x: Array) -> tuple[Array, int]:
        total = 0
        for layer in self.layers:
            x, count = layer.counted_forward(x)
            total += count
        return x, total

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        """Run every layer's backward in reverse; return d(loss)/d(input).

        With ``input_grad=False`` (a training step, whose input is data) the backward stops
        at the first layer with parameters, which is asked for its parameter gradients only
        (``input_grad=False``; for a conv layer that skips col2im, its costliest part), and
        ``None`` is returned.

        Parameters
        ----------
        grad_out : array
            d(loss)/d(output).
        input_grad : bool
            Whether d(loss)/d(input) is wanted.

        Returns
        -------
        array or None
            d(loss)/d(input), or ``None`` with ``input_grad=False``.
        """
        first = 0
        if not input_grad:
            with_params = [i for i, layer in enumerate(self.layers) if layer.parameters()]
            first = with_params[0] if with_params else len(self.layers)
        order = list(range(len(self.layers)))
        for index in getattr(self, "_pooled_first", []):  # the forward ran these two swapped
            order[index], order[index + 1] = index + 1, index
        for position in range(len(self.layers) - 1, first - 1, -1):
            index = order[position]
            if position == first and not input_grad:
                self.layers[index].backward(grad_out, input_grad=False)
                break
            grad_out = self.layers[index].backward(grad_out)
        return grad_out if input_grad else None

    def config(self) -> dict[str, Any]:
        return {"layers": [layer.spec() for layer in self.layers]}

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
