"""Datasets as NumPy arrays: MNIST (shipped with xpnet), scikit-learn's digits, splits."""

from .idx import IDXError, parse_idx, read_idx
from .mnist import MNIST_MEAN, MNIST_STD, load_digits, load_mnist, train_val_split

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "IDXError",
    "load_digits",
    "load_mnist",
    "parse_idx",
    "read_idx",
    "train_val_split",
]
