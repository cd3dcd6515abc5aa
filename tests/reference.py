"""Independent references: the textbook sliding-window loops in NumPy float64.

Nothing here shares code with xpnet; every output element is computed by its own loop.
"""

from __future__ import annotations

import numpy as np


def _pad(x: np.ndarray, ph: int, pw: int, value: float) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0)):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = _pad(x, ph, pw, 0.0)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, co, oh, ow))
    for i in range(n):
        for o in range(co):
            for r in range(oh):
                for s in range(ow):
                    window = xp[i, :, r * sh : r * sh + kh, s * sw : s * sw + kw]
                    out[i, o, r, s] = np.sum(window * w[o]) + (0.0 if b is None else b[o])
    return out


def pool2d(x, kernel, stride, padding, reduce):
    x = np.asarray(x, np.float64)
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    fill = -np.inf if reduce is np.max else 0.0
    xp = _pad(x, ph, pw, fill)
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(n):
        for ch in range(c):
            for r in range(oh):
                for s in range(ow):
                    out[i, ch, r, s] = reduce(xp[i, ch, r * sh : r * sh + kh, s * sw : s * sw + kw])
    return out


def linear(x, w, b=None):
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out = np.zeros((x.shape[0], w.shape[0]))
    for i in range(x.shape[0]):
        for o in range(w.shape[0]):
            out[i, o] = sum(x[i, k] * w[o, k] for k in range(w.shape[1])) + (
                0.0 if b is None else b[o]
            )
    return out


def softmax(x, axis=-1):
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        e = np.array([np.exp(v - row.max()) for v in row])
        out[idx] = e / e.sum()
    return np.moveaxis(out, -1, axis)


def log_softmax(x, axis=-1):
    return np.log(softmax(x, axis))


def cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    losses = []
    for row, label in zip(logits, labels):
        top = row.max()
        log_sum = top + np.log(sum(np.exp(v - top) for v in row))
        losses.append(log_sum - row[int(label)])
    return np.mean(losses)


def sigmoid(x):
    return np.vectorize(
        lambda v: 1.0 / (1.0 + np.exp(-v)) if v >= 0 else np.exp(v) / (1.0 + np.exp(v))
    )(np.asarray(x, np.float64))


def batch_norm(x, weight, bias, mean=None, var=None, eps=1e-5):
    """Per-channel normalisation by loops over the channels: the batch's mean and biased
    variance when ``mean``/``var`` are None, else those given."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        values = x[:, c]
        m = values.mean() if mean is None else mean[c]
        v = ((values - values.mean()) ** 2).mean() if var is None else var[c]
        out[:, c] = (values - m) / np.sqrt(v + eps) * weight[c] + bias[c]
    return out
