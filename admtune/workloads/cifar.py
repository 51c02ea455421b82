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

import dataclasses
import hashlib
import math
import os
import pickle
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, SpecError
from .base import Diverged, RunContext, RunResult
from .nets import (
    FastNet,
    Option,
    ResNet18,
    autocast,
    check_options,
    init_seed,
    is_norm_or_bias,
    maybe_compile,
    param_groups,
    seeded,
    whitening_filters,
)

URL = "https://www.cs.toronto.edu/~kriz/"
HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class Release:
    """One CIFAR release: its archive, the folder it extracts to, and its file layout."""

    name: str
    classes: int
    archive: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes


CIFAR10 = Release(
    "CIFAR-10", 10, "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
    "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
    "batches.meta", b"labels",
)
CIFAR100 = Release(
    "CIFAR-100", 100, "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
    "cifar-100-python", ("train",), "test", "meta", b"fine_labels",
)
RELEASES = {10: CIFAR10, 100: CIFAR100}

# Per-channel mean and std of the CIFAR-10 training images (used for both releases).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
DATA_SEED = 0       # the fixed permutation that picks the validation images
EVAL_BATCH = 2000   # images per evaluation forward pass
WHITEN_IMAGES = 1000  # training images whose 2×2 patches define the whitening layer

OPTIONS = {
    "data_dir": Option("data/cifar", "str", help="folder with the python-pickle release"),
    "download": Option(False, "bool", help="download the official archive when missing"),
    "val_size": Option(5000, "int", low=1, help="training images held out for validation"),
    "n_train": Option(0, "int", low=0, help="use only this many training images (0: all)"),
    "arch": Option("fast", "choice", choices=("fast", "resnet18")),
    "width": Option(1.0, "float", low=0.01, high=16.0, help="channel width multiplier"),
    "whiten": Option(True, "bool", help="fast net: 2×2 patch-whitening first layer"),
    "label_smoothing": Option(0.2, "float", low=0.0, high=0.99),
    "pad": Option(2, "int", low=0, high=8, help="random translation (pixels, reflection padding)"),
    "flip": Option(True, "bool", help="random horizontal flips"),
    "tta": Option(True, "bool", help="evaluate on the image and its mirror image"),
    "compile": Option(False, "bool", help="torch.compile the network"),
}


# -- data files -----------------------------------------------------------------------------------
def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _how_to(rel: Release, root: Path) -> str:
    return (
        f"download {rel.archive} from {HOME} and extract it into {root} "
        f"(or put the archive there, or set workload.download = true on a machine that is online)"
    )


def _extract(rel: Release, archive: Path, root: Path) -> None:
    digest = md5sum(archive)
    if digest != rel.md5:
        raise DataError(
            f"{archive} is corrupt: its MD5 is {digest}, not the published {rel.md5}; delete it "
            f"and {_how_to(rel, root)}"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith(("/", "\\")) or ".." in Path(m.name).parts:
                    raise DataError(f"{archive} contains an unsafe path {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(root, filter="data")
            else:  # pragma: no cover (Python < 3.10.12)
                tar.extractall(root)  # noqa: S202 (paths checked above)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot extract {archive} ({exc}); delete it and {_how_to(rel, root)}") from exc


def _download(rel: Release, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    dest = root / rel.archive
    tmp = root / (rel.archive + ".part")
    try:
        with urllib.request.urlopen(URL + rel.archive, timeout=60) as resp, open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"could not download {URL + rel.archive} ({exc}); {_how_to(rel, root)}"
        ) from exc
    os.replace(tmp, dest)
    return dest


def locate(rel: Release, data_dir: str | os.PathLike, download: bool = False) -> Path:
    """The folder holding ``rel``'s pickle files, extracting or downloading the archive if needed."""
    root = Path(data_dir).expanduser()
    for folder in (root / rel.folder, root):
        if (folder / rel.test_file).is_file():
            return folder
    archive = root / rel.archive
    if not archive.is_file() and download:
        archive = _download(rel, root)
    if archive.is_file():
        _extract(rel, archive, root)
        if (root / rel.folder / rel.test_file).is_file():
            return root / rel.folder
        raise DataError(f"{archive} did not contain {rel.folder}/; delete it and {_how_to(rel, root)}")
    raise DataError(
        f"{rel.name} not found: looked for {root / rel.folder}/ and {archive}; {_how_to(rel, root)}"
    )


class _DataUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches (dicts of bytes, lists and NumPy arrays) and nothing else: a
    pickle naming any other global (code to run) is refused rather than executed."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_batch(rel: Release, path: Path) -> tuple[np.ndarray, np.ndarray]:
    def corrupt(why: str) -> DataError:
        return DataError(
            f"{path} is corrupt or not a {rel.name} python-pickle batch ({why}); replace it: "
            f"{_how_to(rel, path.parent.parent)}"
        )

    if not path.is_file():
        raise corrupt("file missing")
    try:
        with open(path, "rb") as f:
            d = _DataUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # noqa: BLE001 (any unpickling failure means a bad file)
        raise corrupt(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(d, dict) or b"data" not in d or rel.label_key not in d:
        raise corrupt(f"no b'data' and {rel.label_key!r} entries")
    x = np.asarray(d[b"data"])
    y = np.asarray(d[rel.label_key])
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise corrupt(f"b'data' is {x.dtype} {x.shape}, expected uint8 N×3072")
    if y.ndim != 1 or len(y) != len(x):
        raise corrupt(f"{len(y)} labels for {len(x)} images")
    if len(y) and (y.min() < 0 or y.max() >= rel.classes):
        raise corrupt(f"labels outside 0…{rel.classes - 1}")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def load_arrays(rel: Release, folder: Path) -> dict[str, np.ndarray]:
    """Train and test images (uint8 N×3×32×32) and labels (int64) from the pickle folder."""
    parts = [_read_batch(rel, folder / name) for name in rel.train_files]
    test_x, test_y = _read_batch(rel, folder / rel.test_file)
    return {
        "train_x": np.concatenate([p[0] for p in parts]),
        "train_y": np.concatenate([p[1] for p in parts]),
        "test_x": test_x,
        "test_y": test_y,
    }


def write_fake_cifar(
    dir: str | os.PathLike, n_train: int = 500, n_test: int = 200, classes: int = 10,
    seed: int = 0,
) -> Path:
    """Write a small synthetic dataset in the real python-pickle layout under ``dir``; returns
    ``dir`` (pass it as ``workload.data_dir``). Each class has its own colour and stripe pattern plus
    noise, so a net learns it in an epoch or two."""
    if classes not in RELEASES:
        raise ValueError("classes must be 10 or 100")
    rel = RELEASES[classes]
    rng = np.random.default_rng(seed)
    protos = rng.uniform(30, 225, size=(classes, 3, 1, 1))   # a colour per class
    freq = 1 + np.arange(classes) % 7                        # a stripe frequency per class
    vertical = (np.arange(classes) // 7) % 2 == 0            # and an orientation
    grid = np.arange(32)

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        y = rng.integers(0, classes, size=n)
        x = np.empty((n, 3072), dtype=np.uint8)
        for a in range(0, n, 5000):  # in chunks: a full-size fake set stays light on memory
            yc = y[a:a + 5000]
            wave = 50 * np.sin(2 * np.pi * freq[yc, None] * grid[None, :] / 32)   # len(yc) × 32
            stripes = np.where(vertical[yc, None, None], wave[:, None, :], wave[:, :, None])
            img = protos[yc] + stripes[:, None] + rng.normal(0, 20, (len(yc), 3, 32, 32))
            x[a:a + 5000] = np.clip(img, 0, 255).astype(np.uint8).reshape(len(yc), 3072)
        return x, [int(v) for v in y]

    folder = Path(dir) / rel.folder
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    def batch(label: str, n: int) -> dict:
        x, y = make(n)
        d = {b"batch_label": label.encode(), b"data": x,
             b"filenames": [f"fake_{i:06d}.png".encode() for i in range(n)]}
        if classes == 10:
            d[b"labels"] = y
        else:
            d[b"fine_labels"] = y
            d[b"coarse_labels"] = [v // 5 for v in y]
        return d

    if classes == 10:
        sizes = [len(a) for a in np.array_split(np.arange(n_train), len(rel.train_files))]
        for i, (name, n) in enumerate(zip(rel.train_files, sizes, strict=True)):
            dump(name, batch(f"training batch {i + 1} of 5", n))
        dump(rel.test_file, batch("testing batch 1 of 1", n_test))
        dump(rel.meta_file, {b"label_names": [f"class{i}".encode() for i in range(10)],
                             b"num_cases_per_batch": max(sizes), b"num_vis": 3072})
    else:
        dump("train", batch("training batch 1 of 1", n_train))
        dump("test", batch("testing batch 1 of 1", n_test))
        dump("meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                      b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return Path(dir)


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
        self.options = check_options(self.name, options, OPTIONS)

    def run(self, ctx: RunContext) -> RunResult:
        opts, device = self.options, torch.device(ctx.device)
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = True
        data = device_data(self.release, opts, device)
        n_train = int(data.train_y.shape[0])
        batch = int(ctx.train.batch_size)
        if batch < 1:
            raise SpecError("train.batch_size must be ≥ 1 for the cifar workload")
        batch = min(batch, n_train)
        train_cfg = ctx.train if batch == ctx.train.batch_size else \
            dataclasses.replace(ctx.train, batch_size=batch)
        total = int(train_cfg.total_steps(n_train))
        per_epoch = math.ceil(n_train / batch)
        report_on = getattr(ctx, "metric", None)
        report_on = report_on if report_on in self.metrics else "accuracy"

        with seeded(init_seed(ctx)):
            net = build_net(opts, self.release.classes)
        if isinstance(net, FastNet):
            net.init_whitening(data.whiten_filters)
        memory = torch.channels_last if cuda else torch.contiguous_format
        net = net.to(device=device, memory_format=memory)
        fwd = maybe_compile(net, opts["compile"])
        opt = ctx.make_optimizer(param_groups(net, is_norm_or_bias(net)))
        sched = ctx.make_scheduler(opt, total)
        stream = BatchStream(data, batch, opts["pad"], opts["flip"], ctx.generator(device))
        smoothing = opts["label_smoothing"]

        def validate(step: int) -> dict[str, float]:
            net.eval()
            res = evaluate(fwd, data.val_x, data.val_y, device, opts["tta"])
            net.train()
            if not math.isfinite(res["loss"]):
                raise Diverged(f"validation loss is {res['loss']} at step {step}")
            return res

        start = time.perf_counter()
        net.train()
        val = None
        loss = torch.zeros(())
        for step in range(1, total + 1):
            x, y = stream.next()
            with autocast(device):
                logits = fwd(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.log_step(step, loss.detach(), opt)
            sched.step()
            if step % per_epoch == 0 or step == total:
                last = float(loss.detach())
                if not math.isfinite(last):
                    raise Diverged(f"training loss is {last} at step {step}")
                val = validate(step)
                ctx.report(step, val[report_on])
        train_s = time.perf_counter() - start
        net.eval()
        test = evaluate(fwd, data.test_x, data.test_y, device, opts["tta"])
        return RunResult(
            validation=val, test=test, steps=total,
            extra={
                "n_train": n_train, "n_val": int(data.val_y.shape[0]),
                "n_test": int(data.test_y.shape[0]), "epochs": total * batch / n_train,
                "train_s": train_s, "images_per_s": total * batch / max(train_s, 1e-9),
                "data": data.source, "final_train_loss": float(loss.detach()),
            },
        )


def cifar10(options: dict[str, Any] | None = None) -> Cifar:
    """Factory of the ``cifar`` / ``cifar10`` workload."""
    return Cifar(options, 10)


def cifar100(options: dict[str, Any] | None = None) -> Cifar:
    """Factory of the ``cifar100`` workload."""
    return Cifar(options, 100)
