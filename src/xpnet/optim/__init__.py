"""Optimizers and learning-rate schedules; their state lives on the parameters' backend."""

from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "OneCycleLR",
    "Optimizer",
    "StepLR",
]
