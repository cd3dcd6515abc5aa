"""
A CNN from scratch with ``xpnet.functional``
============================================

The network the project started from: one convolution of 8 filters of 5x5, a sigmoid, a
2x2 max-pool, an affine layer and a softmax, written here with nothing but the functions
of :mod:`xpnet.functional`, forward and backward by hand, and trained with plain SGD on
a few thousand MNIST images. No ``nn`` module, no optimizer object: every array the
training step touches is in this file.
"""

# %%
# The data and the parameters
# ---------------------------
# MNIST ships inside the package. The parameters are plain arrays of the backend's type,
# initialised from seeded NumPy generators (:mod:`xpnet.init`).
import matplotlib.pyplot as plt
import numpy as np
from array_api_compat import array_namespace

import xpnet
from xpnet import functional as F
from xpnet import init
from xpnet.datasets import load_mnist

xpnet.set_backend("numpy")  # try "array_api_strict" or "torch": nothing below changes
(x_train, y_train), (x_test, y_test) = load_mnist(normalize=True)
x_train, y_train = x_train[:6000], y_train[:6000]

conv_w = init.kaiming_uniform((8, 1, 5, 5), rng=0)
conv_b = init.zeros((8,))
dense_w = init.xavier_uniform((10, 8 * 12 * 12), rng=1)
dense_b = init.zeros((10,))
params = [conv_w, conv_b, dense_w, dense_b]


# %%
# One training step, forward and backward
# ---------------------------------------
# Each ``*_forward`` returns its output and what its backward needs; each ``*_backward``
# takes the gradient of the loss with respect to that output. The chain rule is the order
# of the calls, reversed.
def step(images, labels, lr=0.5):
    global params
    conv_w, conv_b, dense_w, dense_b = params
    a, conv_saved = F.conv2d_forward(images, conv_w, conv_b)  # (N, 8, 24, 24)
    s, s_out = F.sigmoid_forward(a)
    p, pool_saved = F.max_pool2d_forward(s, 2)  # (N, 8, 12, 12)
    flat = array_namespace(p).reshape(p, (p.shape[0], -1))
    logits, dense_saved = F.linear_forward(flat, dense_w, dense_b)
    loss, ce_saved = F.cross_entropy_forward(logits, labels)  # softmax + log-loss

    g = F.cross_entropy_backward(1.0, ce_saved)
    g, g_dense_w, g_dense_b = F.linear_backward(g, dense_saved)
    g = array_namespace(g).reshape(g, p.shape)
    g = F.max_pool2d_backward(g, pool_saved)
    g = F.sigmoid_backward(g, s_out)
    _, g_conv_w, g_conv_b = F.conv2d_backward(g, conv_saved, input_grad=False)
    grads = [g_conv_w, g_conv_b, g_dense_w, g_dense_b]
    params = [w - lr * gw for w, gw in zip(params, grads)]
    return float(loss)


rng = np.random.default_rng(0)
losses = []
for _epoch in range(2):
    order = rng.permutation(len(x_train))
    for start in range(0, len(order), 64):
        batch = order[start : start + 64]
        losses.append(step(xpnet.asarray(x_train[batch]), xpnet.asarray(y_train[batch])))
print(f"loss: first step {losses[0]:.3f}, last 20 steps {np.mean(losses[-20:]):.3f}")


# %%
# Accuracy on the test images
# ---------------------------
def forward(images):
    conv_w, conv_b, dense_w, dense_b = params
    maps = F.sigmoid(F.conv2d(images, conv_w, conv_b))
    pooled = F.max_pool2d(maps, 2)
    flat = array_namespace(pooled).reshape(pooled, (pooled.shape[0], -1))
    return maps, F.softmax(F.linear(flat, dense_w, dense_b))


_, probs = forward(xpnet.asarray(x_test[:2000]))
accuracy = np.mean(xpnet.to_numpy(probs).argmax(axis=1) == y_test[:2000])
print(f"test accuracy on 2,000 images after 2 epochs of 6,000: {accuracy:.3f}")

# %%
# What the eight filters see
# --------------------------
# The sigmoid's output for one test digit: each map is one filter slid over the image.
maps, _ = forward(xpnet.asarray(x_test[:1]))
maps = xpnet.to_numpy(maps)[0]
fig, axes = plt.subplots(2, 5, figsize=(9, 4))
axes[0, 0].imshow(x_test[0, 0], cmap="gray")
axes[0, 0].set_title(f"input (a {y_test[0]})")
axes[1, 0].plot(np.convolve(losses, np.ones(20) / 20, mode="valid"))
axes[1, 0].set_title("loss (20-step mean)")
for i, ax in enumerate([*axes[0, 1:], *axes[1, 1:]]):
    ax.imshow(maps[i], cmap="viridis")
    ax.set_title(f"filter {i}")
for ax in axes.flat:
    if ax is not axes[1, 0]:
        ax.axis("off")
fig.tight_layout()
plt.show()
