"""The whole training step as ONE compiled program: ``fit(..., compile=True)`` on JAX.

xpnet's layers keep their state on objects (``Parameter.data``, BatchNorm's running
statistics, what ``forward`` saves for ``backward``, the optimizer's moments), while
``jax.jit`` compiles pure functions of arrays. :class:`CompiledStep` bridges the two
without a second implementation of anything: the function it hands to ``jax.jit`` puts
the traced arrays into those objects, runs the very same eager code (``model(x)``, the
loss's gradient, ``model.backward``, :meth:`Optimizer.update_each`), and takes the new
arrays back out. JAX traces it once per batch shape (the last, shorter batch of an
epoch is a second trace) and XLA compiles forward, backward and update into one program.

What crosses the boundary each step:

- in: the parameters, the buffers, the optimizer's state (started from
  :meth:`Optimizer.initial_state`, so the first step traces like the others), the
  dropout layers' ``jax.random`` keys, the step's scalars (:meth:`Optimizer.step_scalars`:
  learning rate, bias corrections; traced, so a schedule needs no new trace) and the batch;
- out: all of those, updated, and the logits (plus the loss value for a loss without
  ``gradient``). The value checks that need the host (labels in range, a finite loss) are
  where ``fit`` already does them: once before training, and at each read-back.

Nothing traced stays behind: after each call the objects hold concrete arrays again, and
the layers' saved activations and the gradients are cleared (the step used them inside).
"""

from __future__ import annotations

from typing import Any

from ._backend import DeviceRandom, backend_of
from ._typing import Array
from .nn import Module, Parameter

COMPILERS = {"jax": "jax.jit"}
"""The backends whose whole step can be compiled, and by what."""


class CompileUnsupported(ValueError):
    """``compile=True`` where the model's backend has no compiler xpnet can use."""


def check_compilable(model: Module, *, distributed: Any = None) -> None:
    """Raise :class:`CompileUnsupported` (one line) unless ``model``'s step can be compiled.

    Parameters
    ----------
    model : Module
        The net ``fit`` would train.
    distributed : Communicator, optional
        A data-parallel run (not compiled).
    """
    params = model.parameters()
    backend = backend_of(params[0].data) if params else "?"
    if backend not in COMPILERS:
        known = ", ".join(f"{name} ({how})" for name, how in COMPILERS.items())
        raise CompileUnsupported(
            f"compile=True needs a backend with a compiler: {known}; the model is on {backend}"
        )
    if distributed is not None:
        raise CompileUnsupported("compile=True does not run data-parallel yet: drop one")


def _random_sources(model: Module) -> list[DeviceRandom]:
    """The random generators of the model's layers (Dropout's), in layer order."""
    found = (getattr(m, "_random", None) for m in model.modules())
    return [source for source in found if isinstance(source, DeviceRandom)]


class CompiledStep:
    """One training step of ``model`` under ``loss`` and ``optimizer``, compiled by
    ``jax.jit`` (see the module docstring); call it with a batch.

    Parameters
    ----------
    model : Module
        On the ``jax`` backend, in training mode.
    loss : CrossEntropyLoss or another loss
        With ``gradient`` and ``per_sample`` (as ``fit`` uses them: the step computes the
        gradient only) or a forward and ``backward``. Its label range check must be off
        (``check_range=False``, as ``fit`` sets it): it reads values back to the host.
    optimizer : Optimizer
        Over ``model.parameters()``; its ``step_count`` advances by one a call.
    """

    def __init__(self, model: Module, loss: Any, optimizer: Any) -> None:
        import jax

        check_compilable(model)
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.params: list[Parameter] = model.parameters()
        self.buffers = [buffer for _, buffer in model.named_buffers()]
        self.randoms = _random_sources(model)
        self.lazy_loss = hasattr(loss, "gradient") and hasattr(loss, "per_sample")  # as fit's
        self.traces = 0
        """How many times JAX traced the step (once per batch shape, if all is well)."""
        # the state the step reads and writes is donated: XLA may update it in place
        self._program = jax.jit(self._pure, donate_argnums=(0,))

    def __call__(self, xb: Array, targets: Array) -> tuple[Array, Array | None]:
        """Run one step on images ``xb`` and ``targets``; return the logits and the batch
        loss (``None`` where the loss has a ``gradient``: computed later, from the logits)."""
        self.optimizer.step_count += 1
        scalars = self.optimizer.step_scalars()
        state = self._gather()
        try:
            new_state, logits, batch_loss = self._program(state, scalars, xb, targets)
        except BaseException:
            self._scatter(state)  # the arrays from before the step, not tracers
            self.optimizer.step_count -= 1
            raise
        finally:
            self._forget_traced()
        self._scatter(new_state)
        return logits, batch_loss

    def _gather(self) -> dict[str, Any]:
        """The step's state, as a pytree of concrete arrays: the optimizer's entries
        started from :meth:`Optimizer.initial_state` where a parameter has none yet, and
        each dropout key seeded on first use."""
        opt = self.optimizer
        for param, entry in zip(opt.params, opt.state):
            if not entry:
                entry.update(opt.initial_state(param))
        for source in self.randoms:
            source.seeded_jax_key()
        return self._state()

    def _state(self) -> dict[str, Any]:
        """What the objects hold now, in the order :meth:`_scatter` puts it back."""
        return {
            "params": [p.data for p in self.params],
            "buffers": [b.data for b in self.buffers],
            "optimizer": [dict(entry) for entry in self.optimizer.state],
            "random": [source.jax_key for source in self.randoms],
        }

    def _scatter(self, state: dict[str, Any]) -> None:
        """Put ``state`` (as :meth:`_gather` orders it) back into the objects."""
        for param, value in zip(self.params, state["params"]):
            param.data = value
        for buffer, value in zip(self.buffers, state["buffers"]):
            buffer.data = value
        for entry, values in zip(self.optimizer.state, state["optimizer"]):
            entry.clear()  # the same dicts: checkpoints read them
            entry.update(values)
        for source, key in zip(self.randoms, state["random"]):
            source.jax_key = key

    def _forget_traced(self) -> None:
        """Drop what the traced step left on the objects: saved activations, gradients."""
        for module in self.model.modules():
            module._saved = None
        if hasattr(self.loss, "_saved"):
            self.loss._saved = None
        for param in self.params:
            param.grad = None

    def _pure(
        self, state: dict[str, Any], scalars: dict[str, Any], xb: Array, targets: Array
    ) -> tuple[dict[str, Any], Array, Array | None]:
        """The step as a function of arrays: what ``jax.jit`` traces."""
        self.traces += 1
        self._scatter(state)
        logits = self.model(xb)
        if self.lazy_loss:
            batch_loss, grad = None, self.loss.gradient(logits, targets)
        else:
            batch_loss = self.loss(logits, targets)
            grad = self.loss.backward()
        self.model.backward(grad, input_grad=False)  # the input is data
        self.optimizer.update_each(scalars)
        return self._state(), logits, batch_loss


__all__ = ["CompileUnsupported", "CompiledStep", "check_compilable"]
