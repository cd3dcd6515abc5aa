"""Layers with parameters or shape changes: Conv2d, Linear, pooling, Flatten, Dropout, Sequential."""

from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from .. import init
from .._backend import DeviceRandom, get_backend
from .._validation import namespace_of, pair
from .module import Module, Parameter, accepts_input_grad

Array = Any


class Conv2d(Module):
    """2-D convolution layer; weight (C_out, C_in, kH, kW) as in PyTorch.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, padding : int or (int, int)
    bias : bool
    rng : int or numpy.random.Generator, optional
        Seed for the initial weights (PyTorch's default scheme: uniform in
        +-1/sqrt(fan_in) for weight and bias).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    param_names = ("weight", "bias")

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
        kh, kw = pair(kernel_size, "kernel_size", "Conv2d", minimum=1)
        self.stride = pair(stride, "stride", "Conv2d", minimum=1)
        self.padding = pair(padding, "padding", "Conv2d", minimum=0)
        shape = (out_channels, in_channels, kh, kw)
        self.weight, self.bias = _default_parameters(shape, bias, rng, backend, dtype)
        self._ctx: F.Conv2dSaved | None = None

    def forward(self, x: Array) -> Array:
        bias = None if self.bias is None else self.bias.data
        out, self._ctx = F.conv2d_forward(
            x, self.weight.data, bias, stride=self.stride, padding=self.padding
        )
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        grad_x, self.weight.grad, grad_bias = F.conv2d_backward(
            grad_out, self._saved("_ctx"), input_grad=input_grad
        )
        if self.bias is not None:
            self.bias.grad = grad_bias
        return grad_x

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


class Linear(Module):
    """Fully connected layer ``x @ weight.T + bias``; weight (out, in) as in PyTorch.

    Parameters as :class:`Conv2d` (``rng``, ``backend``, ``dtype``).
    """

    param_names = ("weight", "bias")

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
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Linear: {name} must be a positive int; got {value!r}")
        shape = (out_features, in_features)
        self.weight, self.bias = _default_parameters(shape, bias, rng, backend, dtype)
        self._ctx: F.LinearSaved | None = None

    def forward(self, x: Array) -> Array:
        bias = None if self.bias is None else self.bias.data
        out, self._ctx = F.linear_forward(x, self.weight.data, bias)
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        grad_x, self.weight.grad, grad_bias = F.linear_backward(
            grad_out, self._saved("_ctx"), input_grad=input_grad
        )
        if self.bias is not None:
            self.bias.grad = grad_bias
        return grad_x

    def config(self) -> dict[str, Any]:
        out_features, in_features = self.weight.shape
        return {
            "in_features": in_features,
            "out_features": out_features,
            "bias": self.bias is not None,
        }


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
    _forward = staticmethod(F.max_pool2d_forward)
    _backward = staticmethod(F.max_pool2d_backward)

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self._ctx: F.Pool2dSaved | None = None

    def forward(self, x: Array) -> Array:
        out, self._ctx = self._forward(
            x, self.kernel_size, stride=self.stride, padding=self.padding
        )
        return out

    def backward(self, grad_out: Array) -> Array:
        return self._backward(grad_out, self._saved("_ctx"))

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class MaxPool2d(_Pool2d):
    """Max pooling layer (see :func:`xpnet.functional.max_pool2d`)."""


class AvgPool2d(_Pool2d):
    """Average pooling layer, zero padding counted (see :func:`xpnet.functional.avg_pool2d`)."""

    _forward = staticmethod(F.avg_pool2d_forward)
    _backward = staticmethod(F.avg_pool2d_backward)


class Flatten(Module):
    """Reshape (N, ...) to (N, prod(...))."""

    def forward(self, x: Array) -> Array:
        self._shape = tuple(x.shape)
        xp = namespace_of("Flatten", x=x)
        return xp.reshape(x, (x.shape[0], -1))

    def backward(self, grad_out: Array) -> Array:
        xp = namespace_of("Flatten", grad_out=grad_out)
        return xp.reshape(grad_out, self._saved("_shape"))


class Dropout(Module):
    """Zero each element with probability ``p`` while training, scaling the rest by 1/(1-p).

    The identity in eval mode. The mask is drawn on the input's device (seeded by ``seed``).
    """

    def __init__(self, p: float = 0.5, *, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1); got {p!r}")
        self.p = float(p)
        self._random = DeviceRandom(seed)
        self._keep: Array | None = None

    def forward(self, x: Array) -> Array:
        if not self.training or self.p == 0.0:
            self._keep = None
            return x
        xp = namespace_of("Dropout", x=x)
        self._keep = self._random.uniform(tuple(x.shape), like=x) >= self.p
        return xp.where(self._keep, x / (1.0 - self.p), xp.zeros_like(x))

    def backward(self, grad_out: Array) -> Array:
        if self._keep is None:
            return grad_out
        xp = namespace_of("Dropout", grad_out=grad_out)
        return xp.where(self._keep, grad_out / (1.0 - self.p), xp.zeros_like(grad_out))

    def config(self) -> dict[str, Any]:
        return {"p": self.p}


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    Parameter names follow PyTorch (``"0.weight"``, ``"0.bias"``, ``"3.weight"``, ...), so a
    ``torch.nn.Sequential`` of the same layers exchanges ``state_dict`` entries directly.
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
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        """Run every layer's backward in reverse; return d(loss)/d(input).

        With ``input_grad=False`` (a training step, whose input is data) the backward stops
        at the first layer with parameters, which computes only its parameter gradients
        (for a conv layer that skips col2im, its costliest part), and ``None`` is returned.
        """
        first = 0
        if not input_grad:
            with_params = [i for i, layer in enumerate(self.layers) if layer.parameters()]
            first = with_params[0] if with_params else len(self.layers)
        for index in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[index]
            if index == first and not input_grad:
                if accepts_input_grad(layer):
                    return layer.backward(grad_out, input_grad=False)
                layer.backward(grad_out)
                return None
            grad_out = layer.backward(grad_out)
        return None if not input_grad else grad_out

    def config(self) -> dict[str, Any]:
        return {"layers": [layer.spec() for layer in self.layers]}

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({inner}\n)"
