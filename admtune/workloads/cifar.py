"""CIFAR-10 / CIFAR-100: a fast conv net trained with the whole dataset on the device.

Speed follows the fastest public recipes: the images live on the device as one uint8 tensor, the
augmentation (random translation by ``pad`` pixels with reflection, horizontal flips) is a single
gather per batch on the device, there are no DataLoader workers, and on CUDA the net runs under bf16
autocast in channels_last (``compile = true`` adds ``torch.compile``).

Data: ``data_dir`` holds the standard python-pickle release (``cifar-10-batches-py/`` or
``cifar-100-python/``; ``data_dir`` may also be that folder itself), or its official archive, which is
checked against the published MD5 and extracted. With ``download = true`` a missing archive is
fetched from https://www.cs.toronto.edu/~kriz/ first.

Splits: the last ``val_size`` (5,000) images of a fixed permutation (data seed 0, independent of the
run seed) of the training set are the validation set that tuning uses; the official test set gives
the test metric. The run seed fixes initialisation, data order and augmentation.

Metric: accuracy in percent (maximised); cross-entropy ``loss`` (without label smoothing) as well.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .base import Diverged, RunContext, RunResult
from .cifar_data import RELEASES, Release, find, load_arrays, locate
from .data import budget
from .device import autocast, init_seed, is_norm_or_bias, maybe_compile, param_groups, seeded
from .loop import report_metric, train
from .models import FastNet, ResNet18, whitening_filters
from .options import Opt, parse_options

# Per-channel mean and std of the CIFAR-10 training images (used for both releases).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
DATA_SEED = 0       # the fixed permutation that picks the validation images
EVAL_BATCH = 2000   # images per evaluation forward pass
WHITEN_IMAGES = 1000  # training images whose 2×2 patches define the whitening layer

OPTIONS = {
    "data_dir": Opt("data/cifar", "str", help="folder with the python-pickle release"),
    "download": Opt(False, "bool", help="download the official archive when missing"),
    "val_size": Opt(5000, "int", low=1, help="training images held out for validation"),
    "n_train": Opt(0, "int", low=0, help="use only this many training images (0: all)"),
    "arch": Opt("fast", "choice", choices=("fast", "resnet18")),
    "width": Opt(1.0, "float", low=0.01, high=16.0, help="channel width multiplier"),
    "whiten": Opt(True, "bool", help="fast net: 2×2 patch-whitening first layer"),
    "label_smoothing": Opt(0.2, "float", low=0.0, high=0.99),
    "pad": Opt(2, "int", low=0, high=8, help="random translation (pixels, reflection padding)"),
    "flip": Opt(True, "bool", help="random horizontal flips"),
    "tta": Opt(True, "bool", help="evaluate on the image and its mirror image"),
    "compile": Opt(False, "bool", help="torch.compile the network"),
}


# -- device data ----------------------------------------------------------------------------------
@dataclass
class DeviceData:
    """The splits on the device: uint8 images (training ones pre-padded by ``pad``) and labels."""

    source: str
    train_x: torch.Tensor   # N × 3 × (32 + 2 pad) × (32 + 2 pad), uint8
    train_y: torch.Tensor
    val_x: torch.Tensor     # N × 3 × 32 × 32, uint8
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    whiten_filters: torch.Tensor  # 12 × 3 × 2 × 2 patch-whitening filters (CPU, from fixed images)


_CACHE: dict[tuple, DeviceData] = {}


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflection padding of the last two dims by indexing (works for uint8)."""
    if pad == 0:
        return x
    n = x.shape[-1]
    idx = torch.arange(-pad, n + pad, device=x.device).abs()
    idx = torch.where(idx >= n, 2 * (n - 1) - idx, idx)
    return x[..., idx, :][..., idx]


_STATS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def normalise(x: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W (any memory layout) → float, standardised per channel."""
    key = str(x.device)
    if key not in _STATS:  # made once per device: no host-to-device copy per batch
        _STATS[key] = (torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1) * 255,
                       torch.tensor(STD, device=x.device).view(1, 3, 1, 1) * 255)
    mean, std = _STATS[key]
    return (x.float() - mean) / std


def device_data(rel: Release, opts: dict[str, Any], device: torch.device) -> DeviceData:
    folder = locate(rel, opts["data_dir"], opts["download"]).resolve()
    key = (str(folder), rel.classes, opts["val_size"], opts["n_train"], opts["pad"], str(device))
    if key in _CACHE:
        return _CACHE[key]
    arrays = load_arrays(rel, folder)
    n = len(arrays["train_y"])
    val_size = opts["val_size"]
    if val_size >= n:
        raise SpecError(
            f"workload.val_size = {val_size} leaves no training images ({folder} has {n})"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(DATA_SEED))
    val_idx, train_idx = perm[n - val_size:], perm[: n - val_size]
    if opts["n_train"]:
        train_idx = train_idx[: opts["n_train"]]
    tx = torch.from_numpy(arrays["train_x"])
    ty = torch.from_numpy(arrays["train_y"])
    train_x = tx[train_idx].to(device)
    data = DeviceData(
        source=str(folder),
        train_x=reflect_pad(train_x, opts["pad"]).contiguous(),
        train_y=ty[train_idx].to(device),
        val_x=tx[val_idx].to(device),
        val_y=ty[val_idx].to(device),
        test_x=torch.from_numpy(arrays["test_x"]).to(device),
        test_y=torch.from_numpy(arrays["test_y"]).to(device),
        whiten_filters=whitening_filters(normalise(train_x[:WHITEN_IMAGES])).cpu(),
    )
    _CACHE.clear()  # keep one dataset on the device at a time
    _CACHE[key] = data
    return data


# -- augmentation ---------------------------------------------------------------------------------
class BatchStream:
    """Fixed-size batches from consecutive random permutations of the training set, with each
    image's translation and flip drawn once per pass; all on the device, from the run's generator.

    A batch may straddle two passes, so every batch has ``batch_size`` images (one compiled shape)."""

    def __init__(self, data: DeviceData, batch_size: int, pad: int, flip: bool,
                 generator: torch.Generator):
        self.data, self.b, self.pad, self.flip, self.g = data, batch_size, pad, flip, generator
        self.n = int(data.train_y.shape[0])
        self.dev = data.train_y.device
        self.ar = torch.arange(32, device=self.dev)
        # channels_last on CUDA (tensor cores); plain NCHW on the CPU, where it is much faster
        self.memory = torch.channels_last if self.dev.type == "cuda" else torch.contiguous_format
        self._order = self._shift = self._mirror = None
        self._pos = 0

    def _new_pass(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        order = torch.randperm(self.n, generator=self.g, device=self.dev)
        shift = torch.randint(0, 2 * self.pad + 1, (self.n, 2), generator=self.g, device=self.dev)
        mirror = torch.rand(self.n, generator=self.g, device=self.dev) < 0.5
        return order, shift, mirror if self.flip else torch.zeros_like(mirror)

    def _take(self, k: int) -> tuple[torch.Tensor, ...]:
        if self._order is None or self._pos >= self.n:
            self._order, self._shift, self._mirror = self._new_pass()
            self._pos = 0
        a, b = self._pos, min(self.n, self._pos + k)
        self._pos = b
        return self._order[a:b], self._shift[a:b], self._mirror[a:b]

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images as normalised float N×3×32×32 in channels_last layout, labels)."""
        parts = [self._take(self.b)]
        while sum(len(p[0]) for p in parts) < self.b:
            parts.append(self._take(self.b - sum(len(p[0]) for p in parts)))
        idx, shift, mirror = (torch.cat(z) if len(parts) > 1 else z[0] for z in zip(*parts, strict=True))
        # One gather does crop and flip: rows/cols of the padded image for every output pixel.
        rows = shift[:, 0, None] + self.ar                                   # B × 32
        cols = shift[:, 1, None] + torch.where(mirror[:, None], 31 - self.ar, self.ar)
        x = self.data.train_x[idx[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # B×32×32×3
        x = normalise(x.permute(0, 3, 1, 2))  # channels_last strides already
        return x.contiguous(memory_format=self.memory), self.data.train_y[idx]


# -- the workload ---------------------------------------------------------------------------------
def build_net(opts: dict[str, Any], classes: int) -> torch.nn.Module:
    if opts["arch"] == "resnet18":
        return ResNet18(classes, width=opts["width"])
    return FastNet(classes, width=opts["width"], whiten=opts["whiten"])


@torch.no_grad()
def evaluate(net: Any, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             tta: bool) -> dict[str, float]:
    """Accuracy (percent) and cross-entropy on uint8 images ``x``; with ``tta`` the logits of the
    image and of its mirror image are averaged."""
    correct = torch.zeros((), device=x.device)
    loss = torch.zeros((), device=x.device, dtype=torch.float64)
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    for a in range(0, len(y), EVAL_BATCH):
        xb = normalise(x[a:a + EVAL_BATCH]).contiguous(memory_format=memory)
        yb = y[a:a + EVAL_BATCH]
        with autocast(device):
            logits = net(xb).float()
            if tta:
                logits = 0.5 * (logits + net(xb.flip(-1)).float())
        loss += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    n = max(1, len(y))
    return {"accuracy": float(correct) * 100.0 / n, "loss": float(loss) / n}


class Cifar:
    """The CIFAR workload (see the module docstring)."""

    metrics = {"accuracy": "maximize", "loss": "minimize"}

    def __init__(self, options: dict[str, Any] | None, classes: int):
        self.release = RELEASES[classes]
        self.name = "cifar10" if classes == 10 else "cifar100"
        self.options = parse_options(self.name, options, OPTIONS)

    def check(self, device: torch.device) -> None:
        """The data is there (or may be downloaded): refused before a study is created."""
        if not self.options["download"]:
            find(self.release, self.options["data_dir"])

    def run(self, ctx: RunContext) -> RunResult:
        opts, device = self.options, torch.device(ctx.device)
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        data = device_data(self.release, opts, device)
        n_train = int(data.train_y.shape[0])
        if int(ctx.train.batch_size) < 1:
            raise SpecError("train.batch_size must be ≥ 1 for the cifar workload")
        batch, total = budget(ctx, n_train)
        per_epoch = math.ceil(n_train / batch)

        with seeded(init_seed(ctx)):
            net = build_net(opts, self.release.classes)
        if isinstance(net, FastNet):
            net.init_whitening(data.whiten_filters)
        memory = torch.channels_last if cuda else torch.contiguous_format
        net = net.to(device=device, memory_format=memory)
        fwd = maybe_compile(net, opts["compile"])
        stream = BatchStream(data, batch, opts["pad"], opts["flip"], ctx.generator(device))
        smoothing = opts["label_smoothing"]

        def step(t: int) -> torch.Tensor:
            x, y = stream.next()
            with autocast(device):
                logits = fwd(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
            loss.backward()
            return loss

        def validate() -> dict[str, float]:
            net.eval()
            res = evaluate(fwd, data.val_x, data.val_y, device, opts["tta"])
            net.train()
            # a non-finite loss means the net diverged, even while its accuracy is what is reported
            if not math.isfinite(res["loss"]):
                raise Diverged(f"validation loss is {res['loss']}")
            return res

        start = time.perf_counter()
        net.train()
        val, loss = train(ctx, param_groups(net, is_norm_or_bias(net)), total, step, validate,
                          report_metric(ctx, self.metrics, "accuracy"),
                          range(per_epoch, total + 1, per_epoch))
        train_s = time.perf_counter() - start
        net.eval()
        test = evaluate(fwd, data.test_x, data.test_y, device, opts["tta"])
        return RunResult(
            validation=val, test=test, steps=total,
            extra={
                "n_train": n_train, "n_val": int(data.val_y.shape[0]),
                "n_test": int(data.test_y.shape[0]), "epochs": total * batch / n_train,
                "train_s": train_s, "images_per_s": total * batch / max(train_s, 1e-9),
                "data": data.source, "final_train_loss": float(loss),
            },
        )


def cifar10(options: dict[str, Any] | None = None) -> Cifar:
    """Factory of the ``cifar`` / ``cifar10`` workload."""
    return Cifar(options, 10)


def cifar100(options: dict[str, Any] | None = None) -> Cifar:
    """Factory of the ``cifar100`` workload."""
    return Cifar(options, 100)
