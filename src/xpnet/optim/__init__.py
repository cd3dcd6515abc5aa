"""Optimizers and learning-rate schedules; their state lives on the parameters' backend."""

from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .optimizer import Optimizer
from .recipe import DEFAULT_LR, make_optimizer
from .sgd import SGD

__all__ = [
    "DEFAULT_LR",
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "OneCycleLR",
    "Optimizer",
    "StepLR",
    "make_optimizer",
]
