"""
Training MNIST: curves and a confusion matrix
=============================================

The default net, ``mnist_cnn`` (two 5x5 convolutions of 16 and 32 filters, each with a
ReLU and a 2x2 max-pool, then a dense layer), trained for two epochs with Adam and a
one-cycle schedule: what ``xpnet train`` does, written out with the library's functions.
5,000 training images are held out for validation; the test set is touched once, at the
end.
"""

# sphinx_gallery_thumbnail_number = 2
import matplotlib.pyplot as plt
import numpy as np

import xpnet
from xpnet import models, nn, optim
from xpnet.datasets import load_mnist, train_val_split
from xpnet.inference import evaluate, predict
from xpnet.plots import confusion_matrix
from xpnet.train import fit

xpnet.set_backend("numpy")
(x, y), (x_test, y_test) = load_mnist(normalize=True)
(x_train, y_train), (x_val, y_val) = train_val_split(x, y, val_fraction=5000 / len(x))

model = models.build("mnist_cnn", seed=0)
epochs, batch_size = 2, 128
steps = epochs * -(-len(x_train) // batch_size)
opt = optim.Adam(model.parameters(), lr=5e-3)
history = fit(
    model,
    nn.CrossEntropyLoss(),
    opt,
    (x_train, y_train),
    epochs=epochs,
    batch_size=batch_size,
    val=(x_val, y_val),
    scheduler=optim.OneCycleLR(opt, 5e-3, steps),
    progress=False,
)
print(evaluate(model, x_test, y_test))

# %%
# The curves: training figures are the mean over each epoch's batches, validation ones
# are measured after the epoch.
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
epochs_axis = np.arange(1, epochs + 1)
ax_loss.plot(epochs_axis, history.loss, "o-", label="train")
ax_loss.plot(epochs_axis, history.val_loss, "s--", label="validation")
ax_acc.plot(epochs_axis, history.accuracy, "o-", label="train")
ax_acc.plot(epochs_axis, history.val_accuracy, "s--", label="validation")
ax_loss.set(xlabel="epoch", title="loss", xticks=epochs_axis)
ax_acc.set(xlabel="epoch", title="accuracy", xticks=epochs_axis)
ax_acc.legend()
fig.tight_layout()

# %%
# The confusion matrix on the 10,000 test images: rows are the true digits.
matrix = confusion_matrix(y_test, predict(model, x_test).argmax(axis=1))
fig, ax = plt.subplots(figsize=(5, 4.5))
image = ax.imshow(np.log1p(matrix), cmap="Blues")
for (i, j), count in np.ndenumerate(matrix):
    if count:
        ax.text(
            j, i, count, ha="center", va="center", fontsize=7, color="white" if i == j else "black"
        )
ax.set(
    xlabel="predicted",
    ylabel="true",
    xticks=range(10),
    yticks=range(10),
    title="test set (log colour scale)",
)
plt.show()
