"""Layers shared by the CIFAR networks."""

from __future__ import annotations

import torch
from torch import nn


class Scale(nn.Module):
    """Multiply by a fixed constant (used to temper the logits of a freshly initialised head)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    """3×3 conv (no bias: BN follows) → BN → GELU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


def scaled(base: int, mult: float) -> int:
    """A channel count scaled by ``mult``, never below 4."""
    return max(4, int(round(base * mult)))
