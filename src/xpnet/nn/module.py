"""``Parameter`` and ``Module``: the state around the stateless maths of ``xpnet.functional``."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from array_api_compat import device

from .._backend import asarray, backend_of, to_numpy
from .._typing import Array

_INFERENCE = contextvars.ContextVar("xpnet_inference_mode", default=False)


@contextlib.contextmanager
def inference_mode() -> Iterator[None]:
    """Forward passes inside the block are for their outputs alone: no ``backward`` follows.

    :class:`Sequential` may then rewrite what it runs where the result is the same to
    float32 rounding: a convolution followed by a batch norm layer in eval mode runs as one
    convolution with the batch norm folded into its weights and bias. Layers it so skips
    keep nothing for ``backward``, which then raises. :func:`xpnet.train.predict`,
    :func:`~xpnet.train.probabilities` and :func:`~xpnet.train.evaluate` run in it.

    Yields
    ------
    None
        Inference mode ends with the block.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet import models, nn
    >>> model = models.build("mnist_resnet", backend="numpy").eval()
    >>> x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    >>> with nn.inference_mode():
    ...     folded = model(x)
    >>> bool(np.allclose(folded, model(x), atol=1e-5))
    True
    """
    token = _INFERENCE.set(True)
    try:
        yield
    finally:
        _INFERENCE.reset(token)


def in_inference_mode() -> bool:
    """Whether the calling code runs inside :func:`inference_mode`."""
    return _INFERENCE.get()


class Buffer:
    """State a layer keeps but never trains (BatchNorm's running statistics): saved in
    ``state_dict()`` and moved by ``to()``, never seen by an optimizer.

    Parameters
    ----------
    data : array
        The value, on the layer's backend.
    """

    def __init__(self, data: Array) -> None:
        self.data = data

    @property
    def shape(self) -> tuple[int, ...]:
        """The value's shape."""
        return tuple(self.data.shape)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.data.dtype}, "
            f"backend={backend_of(self.data)})"
        )


class Parameter(Buffer):
    """A trainable array and its gradient.

    Parameters
    ----------
    data : array
        The initial value, on the layer's backend.

    Attributes
    ----------
    data : array
        The value, on the layer's backend.
    grad : array or None
        d(loss)/d(data) from the last ``backward``; ``None`` before one (or after
        ``zero_grad``).
    """

    def __init__(self, data: Array) -> None:
        super().__init__(data)
        self.grad: Array | None = None


class Module:
    """Base class of every layer: ``forward``, ``backward`` and the parameter plumbing.

    Subclasses set ``self.<name> = Parameter(...)`` and list the names in ``param_names``
    (in the stable order weight, bias); containers override :meth:`children`. What
    ``forward`` keeps for ``backward`` goes in ``self._saved``.

    Every subclass is registered under :meth:`type_name`, the name a spec or checkpoint
    uses for it: the bare class name for xpnet's own layers (``"Conv2d"``), the module and
    qualified name for any other (``"mypackage.layers.Gate"``), so a user's layer never
    shadows a built-in one of the same name.
    """

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()
    registry: ClassVar[dict[str, type[Module]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_"):
            return
        name = cls.type_name()
        known = Module.registry.get(name)
        if known is not None and cls.__module__.startswith("xpnet.") and known is not cls:
            raise TypeError(f"Module: two xpnet layers are named {name!r}")
        Module.registry[name] = cls

    @classmethod
    def type_name(cls) -> str:
        """The name specs and checkpoints use for this class (see the class docstring)."""
        if cls.__module__.startswith("xpnet."):
            return cls.__name__
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def state_shapes(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]] | None:
        """The shapes of the parameters and buffers a layer built from ``config`` holds
        (its own, not its children's), computed without building it: ``{}`` for a layer
        without state; ``None`` where the class does not say (a layer of your own with
        state may override this too).

        Checkpoints are compared with these before anything is allocated. Raises
        ``ValueError`` or ``TypeError`` for a config the constructor would refuse.

        Parameters
        ----------
        config : mapping
            Constructor arguments, as :meth:`config` returns them.

        Returns
        -------
        dict or None
            Name -> shape of each parameter and buffer of this layer, or ``None``.
        """
        return {} if not cls.param_names and not cls.buffer_names else None

    def __init__(self) -> None:
        self.training = True
        self._saved: Any = None

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def forward(self, x: Array) -> Array:
        """Compute the layer's output and keep what :meth:`backward` needs.

        Parameters
        ----------
        x : array
            The layer's input.

        Returns
        -------
        array
            The layer's output, on the input's backend and device.
        """
        raise NotImplementedError

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        """Given d(loss)/d(output), store parameter gradients in ``.grad`` and return
        d(loss)/d(input).

        ``input_grad=False`` means the caller does not need d(loss)/d(input), which the
        layer may then skip (returning ``None``), as :meth:`Sequential.backward` asks of a
        network's first layer with parameters.

        Parameters
        ----------
        grad_out : array
            d(loss)/d(output), the last forward's output shape.
        input_grad : bool
            Whether d(loss)/d(input) is wanted.

        Returns
        -------
        array or None
            d(loss)/d(input); ``None`` when ``input_grad`` is false and the layer skipped it.
        """
        raise NotImplementedError

    def _take_saved(self) -> Any:
        """What the last ``forward`` saved; a clear error if there was none."""
        if self._saved is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward (or after a forward "
                "inside xpnet.nn.inference_mode, which keeps nothing for backward)"
            )
        return self._saved

    def children(self) -> list[Module]:
        """The layers directly inside this one (none for a plain layer).

        Returns
        -------
        list of Module
            In the order the container runs them.
        """
        return []

    def named_children(self) -> list[tuple[str, Module]]:
        """``(name, child)`` pairs: the index by default (``"0"``), as ``torch.nn.Sequential``.

        Returns
        -------
        list of (str, Module)
            The children under their names.
        """
        return [(str(index), child) for index, child in enumerate(self.children())]

    def _named(self, kind: str) -> Iterator[tuple[str, Any]]:
        """The attributes listed in ``kind`` (``"param_names"`` or ``"buffer_names"``) of
        this module, then of its children under their names' prefixes."""
        for name in getattr(self, kind):
            entry = getattr(self, name, None)
            if entry is not None:
                yield name, entry
        for prefix, child in self.named_children():
            for name, entry in child._named(kind):
                yield f"{prefix}.{name}", entry

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Yield ``(name, parameter)`` pairs in a stable order (per layer: weight, bias).

        Returns
        -------
        iterator of (str, Parameter)
            Names as in :meth:`state_dict`.
        """
        return self._named("param_names")

    def named_buffers(self) -> Iterator[tuple[str, Buffer]]:
        """Yield ``(name, buffer)`` pairs, named like the parameters.

        Returns
        -------
        iterator of (str, Buffer)
            Names as in :meth:`state_dict`.
        """
        return self._named("buffer_names")

    def parameters(self) -> list[Parameter]:
        """All trainable parameters, in the order of :meth:`named_parameters`.

        Returns
        -------
        list of Parameter
            What an optimizer takes.
        """
        return [param for _, param in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        """This module, then every layer inside it, depth first (as ``torch.nn.Module``'s).

        Yields
        ------
        Module
            This module first, then each layer inside it.
        """
        yield self
        for child in self.children():
            yield from child.modules()

    def zero_grad(self) -> None:
        """Forget every parameter gradient."""
        for param in self.parameters():
            param.grad = None

    def train(self, mode: bool = True) -> Module:
        """Switch training behaviour (e.g. Dropout) on or off, recursively; returns ``self``.

        Parameters
        ----------
        mode : bool
            ``True``: training behaviour; ``False``: evaluation.

        Returns
        -------
        Module
            ``self``.
        """
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``train(False)``.

        Returns
        -------
        Module
            ``self``.
        """
        return self.train(False)

    def to(self, backend: str, *, device: Any = None, dtype: str | None = None) -> Module:
        """Move every parameter and buffer to ``backend`` (and ``device``); gradients are
        dropped.

        ``dtype`` (``"float32"`` or ``"float64"``) also casts the parameters and the
        floating-point buffers (BatchNorm's running statistics; its step counter stays an
        integer): a float64 net computes in float64 throughout.

        Parameters
        ----------
        backend : str
            A name from :data:`xpnet.BACKENDS`.
        device : optional
            The target device, e.g. ``"cuda"`` for torch; default: the backend's default.
        dtype : {"float32", "float64"}, optional
            Cast the floating-point state too.

        Returns
        -------
        Module
            ``self``, moved.
        """
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"Module.to: dtype must be 'float32' or 'float64'; got {dtype!r}")
        for param in self.parameters():
            param.data = asarray(param.data, backend=backend, device=device, dtype=dtype)
            param.grad = None
        for _, buffer in self.named_buffers():
            floating = "float" in str(buffer.data.dtype)
            cast = dtype if floating else None
            buffer.data = asarray(buffer.data, backend=backend, device=device, dtype=cast)
        return self

    def _state_entries(self) -> dict[str, Parameter | Buffer]:
        return {**dict(self.named_parameters()), **dict(self.named_buffers())}

    def state_dict(self) -> dict[str, Any]:
        """Parameter and buffer values as NumPy arrays, keyed like PyTorch (``"0.weight"``,
        ``"1.running_mean"``).

        Returns
        -------
        dict of str to numpy.ndarray
            Copies, safe to keep while training goes on.
        """
        return {name: to_numpy(entry.data).copy() for name, entry in self._state_entries().items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy values (NumPy or any backend) into the parameters and buffers, on their
        current backend, device and dtype.

        Raises ``KeyError`` naming missing or unexpected keys and ``ValueError`` on a
        shape mismatch; nothing is changed unless every entry fits.

        Parameters
        ----------
        state : mapping of str to array
            One entry per parameter and buffer, as :meth:`state_dict` names them.
        """
        params = self._state_entries()
        check_state_fits({name: p.shape for name, p in params.items()}, state, "load_state_dict")
        for name, param in params.items():
            param.data = asarray(
                to_numpy(state[name]),
                backend=backend_of(param.data),
                dtype=param.data.dtype,
                device=device(param.data),
            )

    def multiply_adds(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int:
        """Multiply-adds of one forward for one sample of these shapes (0: none to count).

        Parameters
        ----------
        input_shape, output_shape : tuple of int
            One sample's shapes (no batch axis).

        Returns
        -------
        int
            The count.
        """
        return 0

    def counted_forward(self, x: Array) -> tuple[Array, int]:
        """``self(x)`` and its multiply-adds per sample; containers add up their layers'.

        Parameters
        ----------
        x : array
            The input batch.

        Returns
        -------
        out : array
            ``self(x)``.
        multiply_adds : int
            Per sample.
        """
        out = self(x)
        return out, self.multiply_adds(tuple(x.shape[1:]), tuple(out.shape[1:]))

    def summary(self, input_shape: tuple[int, ...]) -> str:
        """A table of each layer's output shape, parameter count and multiply-adds for one
        input of ``input_shape`` (without the batch axis), with the totals.

        Parameters
        ----------
        input_shape : tuple of int
            One sample's shape, e.g. ``(1, 28, 28)``.

        Returns
        -------
        str
            The table, one line per layer (at most 100 columns).

        Examples
        --------
        >>> from xpnet import models
        >>> table = models.build("seed_cnn", backend="numpy").summary((1, 28, 28))
        >>> start = table.splitlines()[1].index("output shape")
        >>> for line in table.splitlines()[3:-2]:  # output shape, parameters, multiply-adds
        ...     print(line[start:])  # doctest: +NORMALIZE_WHITESPACE
        (8, 24, 24) 208 115,200
        (8, 24, 24) 0 0
        (8, 12, 12) 0 0
        (1152,) 0 0
        (10,) 11,530 11,520
        >>> table.splitlines()[-1].split()
        ['total', '11,738', '126,720']
        """
        from .summary import format_summary, layer_rows

        return format_summary(layer_rows(self, tuple(input_shape)), tuple(input_shape))

    def config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (JSON-friendly).

        Returns
        -------
        dict
            Keyword arguments of the constructor.
        """
        return {}

    def spec(self) -> dict[str, Any]:
        """``{"type": type_name(), "config": ...}``: the architecture, without weights.

        Returns
        -------
        dict
            What :func:`from_spec` rebuilds the layer from.
        """
        return {"type": self.type_name(), "config": self.config()}

    def extra_repr(self) -> str:
        """What ``repr`` shows between the parentheses: the :meth:`config`.

        Returns
        -------
        str
            ``key=value`` pairs.
        """
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_state_fits(
    shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, Any], func: str | None = None
) -> None:
    """``state`` holds exactly the entries named in ``shapes``, each of that shape.

    Raises ``KeyError`` naming the missing and unexpected keys (the first ten of each, and
    how many more), else ``ValueError`` naming the first entry of another shape; both
    messages start with ``func:`` where ``func`` is given. Used by
    :meth:`Module.load_state_dict` and, before any model is built, by checkpoint loading.
    """
    prefix = f"{func}: " if func else ""
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise KeyError(
            f"{prefix}missing keys {_first_ten(missing)}, unexpected keys {_first_ten(unexpected)}"
        )
    for name, shape in shapes.items():
        if tuple(state[name].shape) != tuple(shape):
            raise ValueError(
                f"{prefix}{name} must have shape {tuple(shape)}; got {tuple(state[name].shape)}"
            )


def _first_ten(names: list[str]) -> str:
    return f"{names[:10]}" + (f" and {len(names) - 10} more" if len(names) > 10 else "")


def from_spec(spec: Mapping[str, Any], *, backend: str | None = None) -> Module:
    """Build a layer (or a whole :class:`Sequential`) from :meth:`Module.spec`.

    Parameters get PyTorch's default initialisation; load weights with
    :meth:`Module.load_state_dict`.

    Parameters
    ----------
    spec : mapping
        As :meth:`Module.spec` returns it (and a checkpoint stores it).
    backend : str, optional
        Where to create the parameters (default :func:`xpnet.get_backend`).

    Returns
    -------
    Module
        The layer, with fresh weights.
    """
    kind = spec.get("type")
    cls = Module.registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        builtin = sorted(name for name in Module.registry if "." not in name)
        raise ValueError(
            f"from_spec: unknown layer type {kind!r}: import the module that defines it "
            f"first (a layer of your own is named 'module.ClassName'); xpnet's layers: "
            f"{', '.join(builtin)}"
        )
    config = {key: _built(value, backend) for key, value in spec.get("config", {}).items()}
    if kind == "Sequential":
        return cls(*config["layers"])
    if "backend" in inspect.signature(cls).parameters:
        config["backend"] = backend
    for key in ("kernel_size", "stride", "padding"):
        if isinstance(config.get(key), list):
            config[key] = tuple(config[key])
    return cls(**config)


def _built(value: Any, backend: str | None) -> Any:
    """A config value with every nested spec (a layer inside a container) built."""
    if isinstance(value, Mapping) and "type" in value and "config" in value:
        return from_spec(value, backend=backend)
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [_built(v, backend) for v in value]
    return value
