"""
Writing your own layer
======================

A layer is a :class:`xpnet.nn.Module` with a ``forward`` that keeps what its ``backward``
needs, and a ``backward`` that turns d(loss)/d(output) into the parameters' ``.grad`` and
d(loss)/d(input). Written against the array API (the namespace taken from the input with
``array_namespace``), it runs on every backend. Here: a *learnable-slope SiLU*,
``y = x * sigmoid(beta * x)`` with one ``beta`` per channel, checked against central
finite differences in float64 and, where PyTorch is installed, against its autograd.
"""

import numpy as np
from array_api_compat import array_namespace

import xpnet
from xpnet import nn
from xpnet.nn import Parameter


class SiLU2d(nn.Module):
    """``x * sigmoid(beta * x)``, with a learnable ``beta`` per channel of (N, C, H, W) input."""

    param_names = ("beta",)

    def __init__(self, channels, *, backend=None, dtype="float32"):
        super().__init__()
        self.beta = Parameter(xpnet.asarray(np.ones(channels), backend=backend, dtype=dtype))

    def forward(self, x):
        xp = array_namespace(x)
        beta = xp.reshape(self.beta.data, (1, -1, 1, 1))
        s = 1.0 / (1.0 + xp.exp(-beta * x))
        self._saved = (x, s, beta)
        return x * s

    def backward(self, grad_out, *, input_grad=True):
        xp = array_namespace(grad_out)
        x, s, beta = self._take_saved()
        ds = s * (1.0 - s)  # d sigmoid(z) / dz
        # d y / d beta = x * ds * x, summed over every position of each channel
        self.beta.grad = xp.sum(grad_out * x * x * ds, axis=(0, 2, 3))
        if not input_grad:
            return None
        return grad_out * (s + x * ds * beta)  # d y / d x

    def config(self):
        return {"channels": self.beta.shape[0]}


# %%
# Finite differences
# ------------------
# In float64, a central difference with step 1e-6 agrees with an exact gradient to about
# 1e-8 relative. The loss is ``sum(y * g)`` for a random ``g``, so its gradient with
# respect to ``y`` is ``g``.
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 4, 5))
g = rng.standard_normal(x.shape)
layer = SiLU2d(3, backend="numpy", dtype="float64")
layer.beta.data = rng.uniform(0.5, 2.0, 3)
layer(x)
grad_x = layer.backward(g)
grad_beta = layer.beta.grad


def loss(x_value, beta_value):
    probe = SiLU2d(3, backend="numpy", dtype="float64")
    probe.beta.data = beta_value
    return float(np.sum(probe(x_value) * g))


eps = 1e-6
numeric_x = np.zeros_like(x)
for index in np.ndindex(x.shape):
    step = np.zeros_like(x)
    step[index] = eps
    numeric_x[index] = (loss(x + step, layer.beta.data) - loss(x - step, layer.beta.data)) / (
        2 * eps
    )
numeric_beta = np.array(
    [
        (
            loss(x, layer.beta.data + eps * np.eye(3)[c])
            - loss(x, layer.beta.data - eps * np.eye(3)[c])
        )
        / (2 * eps)
        for c in range(3)
    ]
)
print(
    f"d/dx:    largest relative error {np.abs(grad_x - numeric_x).max() / np.abs(numeric_x).max():.1e}"
)
print(
    f"d/dbeta: largest relative error {np.abs(grad_beta - numeric_beta).max() / np.abs(numeric_beta).max():.1e}"
)

# %%
# PyTorch's autograd, in float32
# ------------------------------
# The same layer runs on torch tensors as they are; autograd differentiates the same formula
# written in torch, so the two agree to float32 rounding.
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed here: the autograd comparison is skipped")
if torch is not None:
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    bt = torch.tensor(layer.beta.data, dtype=torch.float32, requires_grad=True)
    (
        xt * torch.sigmoid(bt.view(1, -1, 1, 1) * xt) * torch.tensor(g, dtype=torch.float32)
    ).sum().backward()
    ours = SiLU2d(3, backend="torch")
    ours.beta.data = torch.tensor(layer.beta.data, dtype=torch.float32)
    ours(torch.tensor(x, dtype=torch.float32))
    ours_grad_x = ours.backward(torch.tensor(g, dtype=torch.float32))
    print("d/dx    vs autograd:", float((ours_grad_x - xt.grad).abs().max()))
    print("d/dbeta vs autograd:", float((ours.beta.grad - bt.grad).abs().max()))

# %%
# In a network
# ------------
# It drops into :class:`xpnet.nn.Sequential` like any built-in layer, and trains.
model = nn.Sequential(
    nn.Conv2d(1, 4, 3, rng=0), SiLU2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2, rng=1)
)
images = xpnet.asarray(rng.standard_normal((8, 1, 8, 8)), dtype="float32")
logits = model(images)
model.backward(xpnet.asarray(np.ones((8, 2)), dtype="float32"))
print("beta's gradient inside the net:", xpnet.to_numpy(model[1].beta.grad))
