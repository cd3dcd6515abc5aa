"""Layers (stateful holders of parameters) and losses, built on :mod:`xpnet.functional`."""

from .activations import ReLU, Sigmoid, Softmax, Tanh
from .layers import AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Sequential
from .losses import CrossEntropyLoss, MSELoss
from .module import Module, Parameter, from_spec

__all__ = [
    "AvgPool2d",
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
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "from_spec",
]
