"""Layers (stateful holders of parameters) and losses, built on :mod:`xpnet.functional`."""

from .activations import ReLU, Sigmoid, Softmax, Tanh
from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    Sequential,
)
from .losses import CrossEntropyLoss, MSELoss
from .module import Buffer, Module, Parameter, from_spec, inference_mode
from .normalization import BatchNorm1d, BatchNorm2d
from .residual import Residual

__all__ = [
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Buffer",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "from_spec",
    "inference_mode",
]
