"""The networks of the bundled workloads, one module per model."""

from __future__ import annotations

from .fastnet import FastNet, whitening_filters
from .gpt import GPT
from .mlp import build_mlp
from .resnet import ResNet18

__all__ = ["GPT", "FastNet", "ResNet18", "build_mlp", "whitening_filters"]
