"""Training curves and a confusion matrix as PNG files (needs the optional matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .train import History


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts ``[true, predicted]`` as an (n_classes, n_classes) int64 matrix.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        Integer labels (N,).
    n_classes : int
        The matrix's side.

    Returns
    -------
    numpy.ndarray
        ``[i, j]``: how many samples of class ``i`` were predicted as ``j``.
    """
    pairs = np.asarray(y_true, np.int64) * n_classes + np.asarray(y_pred, np.int64)
    return np.bincount(pairs, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: History, path: str | Path) -> Path:
    """Loss and accuracy per epoch (train, and validation where present).

    Parameters
    ----------
    history : History
        What :func:`xpnet.train.fit` returned.
    path : str or Path
        The PNG to write.

    Returns
    -------
    Path
        ``path``.
    """
    plt = _pyplot()
    epochs = np.arange(1, len(history.loss) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, history.loss, "o-", label="train")
    ax_acc.plot(epochs, history.accuracy, "o-", label="train")
    if history.val_accuracy:
        ax_loss.plot(epochs, history.val_loss, "s--", label="validation")
        ax_acc.plot(epochs, history.val_accuracy, "s--", label="validation")
    for ax, title in ((ax_loss, "cross-entropy loss"), (ax_acc, "accuracy")):
        ax.set(xlabel="epoch", title=title, xticks=epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_confusion(matrix: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The confusion matrix as a labelled heat map.

    Parameters
    ----------
    matrix : numpy.ndarray
        What :func:`confusion_matrix` returned.
    path : str or Path
        The PNG to write.
    title : str
        The figure's title.

    Returns
    -------
    Path
        ``path``.
    """
    plt = _pyplot()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(n):
        for j in range(n):
            color = "white" if i == j else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n), title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["confusion_matrix", "plot_confusion", "plot_curves"]
