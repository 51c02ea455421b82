"""The CIFAR ResNet-18."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Scale, conv_bn, scaled


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = None
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.short is None else self.short(x)))


class ResNet18(nn.Module):
    """The CIFAR ResNet-18 (3×3 stem, no stem pooling), widths 64…512 × ``width``."""

    def __init__(self, classes: int, width: float = 1.0, logit_scale: float = 0.125):
        super().__init__()
        widths = [scaled(w, width) for w in (64, 128, 256, 512)]
        self.stem = nn.Sequential(*conv_bn(3, widths[0])[:2], nn.ReLU())
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c, w, stride), BasicBlock(w, w, 1)]
            c = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes, bias=False),
            Scale(logit_scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))
