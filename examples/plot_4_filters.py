"""
The first layer's filters
=========================

Before training, ``mnist_cnn``'s sixteen 5x5 filters are noise from a Kaiming initialiser;
one epoch over 20,000 images turns them into detectors of strokes and edges at
different angles. Layers keep PyTorch's parameter layout, so the weight of the first
convolution is ``(16, 1, 5, 5)``, ``state_dict()["0.weight"]``.
"""

import matplotlib.pyplot as plt

import xpnet
from xpnet import models, nn, optim
from xpnet.datasets import load_mnist
from xpnet.train import fit

(x_train, y_train), _ = load_mnist(normalize=True)
model = models.build("mnist_cnn", seed=0, backend="numpy")
before = xpnet.to_numpy(model.state_dict()["0.weight"])
opt = optim.Adam(model.parameters(), lr=3e-3)
fit(
    model,
    nn.CrossEntropyLoss(),
    opt,
    (x_train[:20000], y_train[:20000]),
    epochs=1,
    progress=False,
    log=None,
)
after = xpnet.to_numpy(model.state_dict()["0.weight"])

fig, axes = plt.subplots(2, 16, figsize=(12, 1.9))
for row, (weights, label) in enumerate([(before, "initial"), (after, "after 1 epoch")]):
    for i, ax in enumerate(axes[row]):
        ax.imshow(weights[i, 0], cmap="RdBu_r")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center")
fig.suptitle("conv 1 → 16, 5x5: red positive, blue negative weights")
plt.show()
