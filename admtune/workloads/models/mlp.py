"""The ReLU MLP of the ``mlp`` workload."""

from __future__ import annotations

import math

import torch


def build_mlp(
    sizes: list[int], generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> torch.nn.Sequential:
    """Linear–ReLU layers of ``sizes`` (input, hidden…, output), initialised like PyTorch's default
    (uniform ±1/√fan_in for weights and biases) from ``generator``."""
    layers: list[torch.nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = torch.nn.Linear(fan_in, fan_out, dtype=dtype)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            lin.weight.uniform_(-bound, bound, generator=generator)
            lin.bias.uniform_(-bound, bound, generator=generator)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)
