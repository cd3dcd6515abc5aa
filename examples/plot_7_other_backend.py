"""
The same model on another backend
=================================

A model trained on NumPy moves to any other backend with :meth:`xpnet.nn.Module.to`; the
layers run the same code there, with the namespace taken from the arrays they are given.
array-api-strict accepts nothing outside the standard, so a forward that runs on it is a
proof that the layers need nothing else. PyTorch tensors (and CuPy or JAX arrays where
installed) take the same path.
"""

import matplotlib.pyplot as plt
import numpy as np

import xpnet
from xpnet import models, nn, optim
from xpnet.datasets import load_mnist
from xpnet.train import fit

(x_train, y_train), (x_test, y_test) = load_mnist(normalize=True)
model = models.build("seed_cnn", seed=0, backend="numpy")
fit(
    model,
    nn.CrossEntropyLoss(),
    optim.Adam(model.parameters(), lr=1e-2),
    (x_train[:10000], y_train[:10000]),
    epochs=1,
    progress=False,
    log=None,
)
model.eval()
images = x_test[:500]
reference = xpnet.to_numpy(model(xpnet.asarray(images, backend="numpy")))

differences = {}
for backend in xpnet.available_backends():
    moved = model.to(backend)
    x = xpnet.asarray(images, backend=backend)
    logits = moved(x)
    print(
        f"{backend:>16}: input {type(x).__module__}.{type(x).__name__} -> output "
        f"{type(logits).__module__}.{type(logits).__name__}"
    )
    differences[backend] = np.abs(xpnet.to_numpy(logits) - reference).max()
for backend, diff in differences.items():
    print(f"{backend:>16}: largest difference from NumPy's logits {diff:.1e}")

# %%
# Differences are float32 rounding: the backends sum in different orders.
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(differences), [max(d, 1e-9) for d in differences.values()])
ax.set(yscale="log", ylabel="max |logit - NumPy's|", title="seed_cnn, 500 test images")
plt.show()
