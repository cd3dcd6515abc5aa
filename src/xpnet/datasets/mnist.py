"""MNIST (shipped inside the package) and scikit-learn's 8x8 digits, as NumPy arrays."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .idx import IDXError, read_idx

Split = tuple[np.ndarray, np.ndarray]

MNIST_FILES: dict[str, tuple[str, str]] = {
    # name: (file, md5 of the uncompressed IDX content)
    "train_images": ("train-images-idx3-ubyte.gz", "6bbc9ace898e44ae57da46a324031adb"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "a25bea736e30d166cdddb491f175f624"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "2646ac647ad5339dbf082846283269ea"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "27ae3e4e09519cfbb04c329615203637"),
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
"""The usual normalisation statistics of the MNIST training images (scaled to [0, 1])."""


def embedded_mnist_dir() -> Path:
    """Folder of the MNIST files shipped with xpnet."""
    return Path(str(resources.files("xpnet.datasets") / "data" / "mnist"))


def _normalise(images: np.ndarray, normalize: bool | tuple[float, float]) -> np.ndarray:
    """uint8 (N, 28, 28) images as float32 (N, 1, 28, 28) in [0, 1], or standardised.

    In place after the one conversion: each temporary of MNIST's 60,000 images is 188 MB,
    whose first touch costs the kernel's page faults (1.3 s of a CLI run's start here;
    0.6 s in place). The same float32 operations, so the same values to the bit."""
    if normalize is not False:
        mean, std = (MNIST_MEAN, MNIST_STD) if normalize is True else normalize
        if std <= 0:
            raise ValueError(f"load_mnist: normalize std must be > 0; got {std}")
    x = images.astype(np.float32)[:, None, :, :]
    x /= np.float32(255.0)
    if normalize is not False:
        x -= np.float32(mean)
        x /= np.float32(std)
    return x


def load_mnist(
    data_dir: str | Path | None = None,
    *,
    normalize: bool | tuple[float, float] = False,
    source: str = "idx",
    verify: bool = True,
) -> tuple[Split, Split]:
    """Load MNIST: ``(x_train, y_train), (x_test, y_test)``.

    Parameters
    ----------
    data_dir : path, optional
        Folder holding the four IDX ``.gz`` files; default: the copy shipped with xpnet.
    normalize : bool or (mean, std)
        ``False``: pixels in [0, 1]; ``True``: standardised with MNIST's mean 0.1307 and
        std 0.3081; a pair: your own statistics.
    source : {"idx", "openml"}
        ``"openml"`` downloads 'mnist_784' through scikit-learn's ``fetch_openml``
        (needs a network; the first 60,000 rows are the training set).
    verify : bool
        Check the md5 of each uncompressed file against the published value.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Images float32 of shape (N, 1, 28, 28), labels int64 of shape (N,).

    Examples
    --------
    >>> from xpnet.datasets import load_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()
    >>> x_train.shape, x_train.dtype, y_test.dtype
    ((60000, 1, 28, 28), dtype('float32'), dtype('int64'))
    """
    if source == "openml":
        return _load_openml(normalize)
    if source != "idx":
        raise ValueError(f"load_mnist: source must be 'idx' or 'openml'; got {source!r}")
    folder = embedded_mnist_dir() if data_dir is None else Path(data_dir)
    arrays = {}
    for key, (filename, md5) in MNIST_FILES.items():
        ndim = 3 if key.endswith("images") else 1
        arrays[key] = read_idx(folder / filename, expected_ndim=ndim, md5=md5 if verify else None)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise IDXError(
                f"{folder}: {split} images ({len(images)}) and labels ({len(labels)}) differ in count"
            )
        if images.shape[1:] != (28, 28):
            raise IDXError(f"{folder}: {split} images must be 28x28; got {images.shape[1:]}")
    return (
        (_normalise(arrays["train_images"], normalize), arrays["train_labels"].astype(np.int64)),
        (_normalise(arrays["test_images"], normalize), arrays["test_labels"].astype(np.int64)),
    )


def _load_openml(normalize: bool | tuple[float, float]) -> tuple[Split, Split]:
    from sklearn.datasets import fetch_openml

    x, y = fetch_openml("mnist_784", version=1, as_frame=False, return_X_y=True, parser="auto")
    images = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.int64)
    return (
        (_normalise(images[:60000], normalize), labels[:60000]),
        (_normalise(images[60000:], normalize), labels[60000:]),
    )


def load_digits(*, test_size: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """scikit-learn's bundled 8x8 digits (1,797 images), split stratified into train and test.

    Parameters
    ----------
    test_size : float
        The fraction held out for testing.
    seed : int
        Seeds the split.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Images float32 (N, 1, 8, 8) in [0, 1], labels int64.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = bunch.target.astype(np.int64)
    return train_val_split(x, y, val_fraction=test_size, seed=seed)


def train_val_split(
    x: Any, y: Any, *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[Split, Split]:
    """Stratified, seeded split into ``(x_train, y_train), (x_val, y_val)`` (scikit-learn).

    Parameters
    ----------
    x : array_like
        Images (N, ...).
    y : array_like
        Labels (N,); each class keeps its share in both parts.
    val_fraction : float
        The fraction held out, in (0, 1).
    seed : int
        Seeds the split.

    Returns
    -------
    (x_train, y_train), (x_val, y_val)
        NumPy arrays.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1); got {val_fraction}")
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=val_fraction, stratify=y, random_state=seed
    )
    return (x_train, y_train), (x_val, y_val)
