"""The fast CIFAR net (airbench style) and its patch-whitening stem."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Scale, conv_bn, scaled


class ConvGroup(nn.Sequential):
    """conv → max-pool → BN → GELU → conv → BN → GELU: one resolution stage of the fast net."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
            *conv_bn(c_out, c_out),
        )


class FastNet(nn.Module):
    """A small, fast CIFAR net: optional 2×2 patch-whitening stem, then three conv groups of widths
    64 / 256 / 256 (× ``width``) with max-pooling, global max-pool and a bias-free linear head whose
    logits are scaled by ``logit_scale``."""

    WHITEN_CHANNELS = 24  # 12 whitened patch directions (3 × 2 × 2) and their negatives

    def __init__(self, classes: int, width: float = 1.0, whiten: bool = True,
                 logit_scale: float = 0.125):
        super().__init__()
        widths = [scaled(64, width), scaled(256, width), scaled(256, width)]
        if whiten:
            self.stem = nn.Sequential(nn.Conv2d(3, self.WHITEN_CHANNELS, 2, bias=True), nn.GELU())
            c = self.WHITEN_CHANNELS
        else:
            c = scaled(32, width)
            self.stem = nn.Sequential(*conv_bn(3, c))
        self.whiten = whiten
        pairs = zip([c, *widths[:-1]], widths, strict=True)
        self.groups = nn.Sequential(*[ConvGroup(a, b) for a, b in pairs])
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[-1], classes, bias=False),
            Scale(logit_scale),
        )

    @torch.no_grad()
    def init_whitening(self, filters: torch.Tensor) -> None:
        """Set the stem's 2×2 filters to ``filters`` (12 × 3 × 2 × 2, from :func:`whitening_filters`)
        and their negatives, and freeze them (the stem's bias stays trainable)."""
        if not self.whiten:
            return
        conv = self.stem[0]
        w = filters
        conv.weight.copy_(torch.cat([w, -w]).to(conv.weight))
        conv.weight.requires_grad_(False)
        conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.groups(self.stem(x)))


def whitening_filters(images: torch.Tensor, eps: float = 5e-4) -> torch.Tensor:
    """2×2 conv filters that whiten the 12-dimensional patches of ``images`` (ZCA-free: the
    eigenvectors of the patch covariance scaled by 1/√(λ + eps))."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1)                 # N, 3, 31, 31, 2, 2
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    patches = patches - patches.mean(0, keepdim=True)
    cov = patches.T @ patches / max(1, patches.shape[0] - 1)
    eigval, eigvec = torch.linalg.eigh(cov)
    filters = eigvec.T / torch.sqrt(eigval.clamp_min(0) + eps)[:, None]
    return filters.flip(0).reshape(12, 3, 2, 2).float()               # largest variance first
