"""Networks and shared helpers of the accelerator workloads (``cifar``, ``lm``).

- option checking for a ``[workload]`` table (:class:`Option`, :func:`check_options`): an unknown key
  or a bad value is one :class:`~admtune.errors.SpecError` sentence naming the key;
- device helpers: bf16 autocast and channels_last only on CUDA, seeded initialisation that leaves
  the global RNG alone;
- the CIFAR networks (:class:`FastNet`, an airbench-style conv net, and :class:`ResNet18`) and the
  byte-level decoder (:class:`GPT`).

Nothing here imports torchvision.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .options import Opt, parse_options

# -- options: one implementation for every workload ------------------------------------------
Option = Opt
check_options = parse_options


# -- device helpers -----------------------------------------------------------------------------
def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; nothing elsewhere (CPU runs stay in float32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def init_seed(ctx: Any) -> int:
    """A seed for parameter initialisation, drawn from the run's (CPU) generator."""
    return int(torch.randint(0, 2**62, (1,), generator=ctx.generator("cpu")).item())


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded, restoring the global RNG state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def param_groups(model: nn.Module, no_decay: Callable[[str, nn.Parameter], bool]) -> list[dict]:
    """Two optimizer groups: weight-decayed and not (``no_decay(name, p)``); frozen params left out.

    Only ``params`` and, for the second group, ``weight_decay = 0`` are set: the engine fills in the
    arm's lr and weight decay."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if no_decay(name, p) else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay})
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def maybe_compile(module: nn.Module, enabled: bool) -> Callable[..., Any]:
    """``torch.compile(module)`` when asked for, else the module itself."""
    if not enabled:
        return module
    return torch.compile(module)


def device_name(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


# -- CIFAR networks -----------------------------------------------------------------------------
class Scale(nn.Module):
    """Multiply by a fixed constant (used to temper the logits of a freshly initialised head)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]


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


def _width(base: int, mult: float) -> int:
    return max(4, int(round(base * mult)))


class FastNet(nn.Module):
    """A small, fast CIFAR net: optional 2×2 patch-whitening stem, then three conv groups of widths
    64 / 256 / 256 (× ``width``) with max-pooling, global max-pool and a bias-free linear head whose
    logits are scaled by ``logit_scale``."""

    WHITEN_CHANNELS = 24  # 12 whitened patch directions (3 × 2 × 2) and their negatives

    def __init__(self, classes: int, width: float = 1.0, whiten: bool = True,
                 logit_scale: float = 0.125):
        super().__init__()
        widths = [_width(64, width), _width(256, width), _width(256, width)]
        if whiten:
            self.stem = nn.Sequential(nn.Conv2d(3, self.WHITEN_CHANNELS, 2, bias=True), nn.GELU())
            c = self.WHITEN_CHANNELS
        else:
            c = _width(32, width)
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
        widths = [_width(w, width) for w in (64, 128, 256, 512)]
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


def is_norm_or_bias(model: nn.Module) -> Callable[[str, nn.Parameter], bool]:
    """``no_decay`` predicate: BatchNorm/LayerNorm parameters and every bias."""
    norm_params = {
        id(p) for m in model.modules()
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm))
        for p in m.parameters(recurse=False)
    }
    return lambda name, p: id(p) in norm_params or name.endswith(".bias") or p.ndim < 2


# -- byte-level GPT -----------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # flash kernel on CUDA bf16
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_head)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model, bias=False)
        self.out = nn.Linear(4 * d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """A pre-LayerNorm decoder over bytes (vocabulary 256) with learned positions and a tied head."""

    VOCAB = 256

    def __init__(self, n_layer: int, n_head: int, d_model: int, context: int):
        super().__init__()
        self.context = context
        self.wte = nn.Embedding(self.VOCAB, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([Block(d_model, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections
            if name.endswith("attn.proj.weight") or name.endswith(".out.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B × T × 256), or with ``targets`` the mean cross-entropy in nats (float32)."""
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().reshape(-1, self.VOCAB), targets.reshape(-1))
