"""A GPT-style decoder on bytes (no tokenizer), trained on a text corpus held on the device.

Corpus: by default the running Python's standard-library sources (``sysconfig.get_paths()["stdlib"]``,
every ``*.py`` below it outside ``site-packages``, sorted by relative path and concatenated), capped at
``max_bytes``; every machine has it, though its content depends on the Python version (the corpus's
size and SHA-256 are recorded with each run). ``data_path`` names a user's text file instead.

Split: the corpus is cut into contiguous blocks (64 KiB, smaller for a small corpus); of every 20
consecutive blocks the 19th goes to validation and the 20th to test, the rest to training. The split
depends only on the corpus, never on the run seed.

Training: each step draws ``train.batch_size`` windows of ``context + 1`` bytes at random offsets of
the training split (from the run's generator, on the device); ``micro_batch_tokens`` splits a step
into micro-batches (gradient accumulation) when the batch does not fit. ``train.epochs`` counts
passes of ``len(train) / context`` windows; ``train.steps`` is the usual way to set the budget.

Metric: ``loss``, the mean cross-entropy in nats per byte on fixed windows of the validation split
(tuning) and the test split (evaluation), minimised; ``bpb`` (bits per byte) = loss / ln 2. On CUDA the
model runs under bf16 autocast with ``F.scaled_dot_product_attention`` (flash attention);
``compile = true`` adds ``torch.compile``.
"""

from __future__ import annotations

import hashlib
import math
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError, SpecError
from .base import RunContext, RunResult
from .device import autocast, init_seed, is_norm_or_bias, maybe_compile, param_groups, seeded
from .loop import report_metric, train
from .models import GPT
from .options import Opt, parse_options

BLOCK_BYTES = 65536   # split block size (smaller when the corpus is small)
CYCLE = 20            # of every CYCLE blocks: CYCLE - 2 train, 1 validation, 1 test
MIN_BLOCKS = 2 * CYCLE

OPTIONS = {
    "data_path": Opt("", "str", help="a text file; empty: the Python standard library's sources"),
    "max_bytes": Opt(24_000_000, "int", low=1000, help="cap on the corpus size in bytes"),
    "n_layer": Opt(6, "int", low=1, high=128),
    "n_head": Opt(6, "int", low=1, high=128),
    "d_model": Opt(384, "int", low=8, high=16384),
    "context": Opt(256, "int", low=2, high=65536, help="sequence length in bytes"),
    "micro_batch_tokens": Opt(
        0, "int", low=0, help="tokens per forward/backward pass (0: the whole batch at once)"
    ),
    "eval_batches": Opt(20, "int", low=1, help="validation/test windows = this × batch_size"),
    "eval_every": Opt(0, "int", low=0, help="steps between validation reports (0: 10 per run)"),
    "compile": Opt(False, "bool", help="torch.compile the model"),
}


# -- corpus ---------------------------------------------------------------------------------------
def stdlib_files() -> list[Path]:
    """The standard library's ``*.py`` files, sorted by their path relative to the stdlib root."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for p in root.rglob("*.py"):
        rel = p.relative_to(root)
        if {"site-packages", "dist-packages"} & set(rel.parts) or not p.is_file():
            continue
        files.append((rel.as_posix(), p))
    return [p for _, p in sorted(files)]


def read_corpus(data_path: str, max_bytes: int) -> tuple[bytes, str]:
    """(the corpus bytes, a description of where they came from)."""
    if data_path:
        path = Path(data_path).expanduser()
        if not path.is_file():
            raise DataError(
                f"workload.data_path {path} is not a file; point it at a text file, or leave it "
                f"unset to train on the Python standard library's sources"
            )
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes)
        except OSError as exc:
            raise DataError(f"cannot read workload.data_path {path} ({exc})") from exc
        return data, str(path.resolve())
    root = sysconfig.get_paths()["stdlib"]
    chunks, size = [], 0
    for p in stdlib_files():
        try:
            text = p.read_bytes()
        except OSError:
            continue
        chunks.append(text + b"\n")
        size += len(text) + 1
        if size >= max_bytes:
            break
    if not chunks:
        raise DataError(
            f"no *.py files under the standard library {root}; set workload.data_path to a text file"
        )
    return b"".join(chunks)[:max_bytes], f"stdlib {root}"


def split_corpus(data: bytes, context: int) -> tuple[bytes, bytes, bytes, int]:
    """(train, validation, test, block size): contiguous blocks dealt out 18 : 1 : 1."""
    block = min(BLOCK_BYTES, len(data) // MIN_BLOCKS)
    if block < context + 1:
        raise DataError(
            f"the corpus has {len(data)} bytes, too few for context {context}: it needs at least "
            f"{MIN_BLOCKS * (context + 1)} (raise workload.max_bytes or lower workload.context)"
        )
    parts: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    for i in range(0, len(data) // block):
        k = i % CYCLE
        which = 1 if k == CYCLE - 2 else 2 if k == CYCLE - 1 else 0
        parts[which].append(data[i * block:(i + 1) * block])
    train, val, test = (b"".join(p) for p in parts)
    return train, val, test, block


@dataclass
class Corpus:
    source: str
    sha256: str
    n_bytes: int
    block: int
    train: torch.Tensor  # uint8 on the device
    val: torch.Tensor
    test: torch.Tensor


_CACHE: dict[tuple, Corpus] = {}


def device_corpus(opts: dict[str, Any], device: torch.device) -> Corpus:
    key = (opts["data_path"], opts["max_bytes"], opts["context"], str(device))
    if key in _CACHE:
        return _CACHE[key]
    data, source = read_corpus(opts["data_path"], opts["max_bytes"])
    train, val, test, block = split_corpus(data, opts["context"])

    def tensor(b: bytes) -> torch.Tensor:
        return torch.frombuffer(bytearray(b), dtype=torch.uint8).to(device)

    corpus = Corpus(
        source=source, sha256=hashlib.sha256(data).hexdigest(), n_bytes=len(data), block=block,
        train=tensor(train), val=tensor(val), test=tensor(test),
    )
    _CACHE.clear()
    _CACHE[key] = corpus
    return corpus


def eval_windows(n_bytes: int, context: int, max_windows: int) -> torch.Tensor:
    """Start offsets of non-overlapping windows of ``context + 1`` bytes (targets never repeat),
    at most ``max_windows`` of them spread evenly over the split."""
    starts = torch.arange(0, n_bytes - context, context)
    if len(starts) > max_windows:
        pick = torch.linspace(0, len(starts) - 1, max_windows).round().long()
        starts = starts[pick]
    return starts


def gather_windows(split: torch.Tensor, starts: torch.Tensor, context: int) -> torch.Tensor:
    """``len(starts)`` × (context + 1) bytes as int64 token ids."""
    offsets = torch.arange(context + 1, device=split.device)
    return split[starts[:, None] + offsets].long()


@torch.no_grad()
def evaluate(model: Any, split: torch.Tensor, starts: torch.Tensor, context: int,
             micro: int, device: torch.device) -> dict[str, float]:
    """Mean cross-entropy (nats per byte) and bits per byte over the windows at ``starts``."""
    total = torch.zeros((), device=split.device, dtype=torch.float64)
    for a in range(0, len(starts), micro):
        chunk = gather_windows(split, starts[a:a + micro], context)
        with autocast(device):
            loss = model(chunk[:, :-1], chunk[:, 1:])
        total += loss.double() * chunk.shape[0]
    loss = float(total) / max(1, len(starts))
    return {"loss": loss, "bpb": loss / math.log(2)}


class ByteLM:
    """The ``lm`` workload (see the module docstring)."""

    metrics = {"loss": "minimize", "bpb": "minimize"}

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = parse_options("lm", options, OPTIONS)
        if self.options["d_model"] % self.options["n_head"]:
            raise SpecError(
                f"workload.d_model = {self.options['d_model']} must be a multiple of "
                f"workload.n_head = {self.options['n_head']}"
            )

    def check(self, device: torch.device) -> None:
        """A user's text file is there: refused before a study is created."""
        path = self.options["data_path"]
        if path and not Path(path).expanduser().is_file():
            raise DataError(f"workload.data_path {path} is not a file; point it at a text file, "
                            "or leave it unset to train on the Python standard library's sources")

    def run(self, ctx: RunContext) -> RunResult:
        opts, device = self.options, torch.device(ctx.device)
        context = opts["context"]
        corpus = device_corpus(opts, device)
        batch = int(ctx.train.batch_size)
        if batch < 1:
            raise SpecError("train.batch_size (sequences per step) must be ≥ 1 for the lm workload")
        micro = batch if not opts["micro_batch_tokens"] else \
            max(1, min(batch, opts["micro_batch_tokens"] // context))
        n_seq = max(1, len(corpus.train) // context)  # windows per "epoch"
        total = int(ctx.train.total_steps(n_seq))
        every = opts["eval_every"] or max(1, math.ceil(total / 10))

        with seeded(init_seed(ctx)):
            model = GPT(opts["n_layer"], opts["n_head"], opts["d_model"], context)
        model = model.to(device)
        fwd = maybe_compile(model, opts["compile"])
        g = ctx.generator(device)
        high = len(corpus.train) - context  # window starts in [0, high)
        max_windows = opts["eval_batches"] * batch
        val_starts = eval_windows(len(corpus.val), context, max_windows).to(device)
        test_starts = eval_windows(len(corpus.test), context, max_windows).to(device)

        def step(t: int) -> torch.Tensor:
            starts = torch.randint(0, high, (batch,), generator=g, device=device)
            chunk = gather_windows(corpus.train, starts, context)
            step_loss = torch.zeros((), device=device)
            for a in range(0, batch, micro):
                part = chunk[a:a + micro]
                with autocast(device):
                    loss = fwd(part[:, :-1], part[:, 1:])
                loss = loss * (part.shape[0] / batch)
                loss.backward()
                step_loss += loss.detach()
            return step_loss

        def validate() -> dict[str, float]:
            model.eval()
            res = evaluate(fwd, corpus.val, val_starts, context, micro, device)
            model.train()
            return res

        start = time.perf_counter()
        model.train()
        val, _ = train(ctx, param_groups(model, is_norm_or_bias(model)), total, step, validate,
                       report_metric(ctx, self.metrics, "loss"), range(every, total + 1, every))
        train_s = time.perf_counter() - start
        model.eval()
        test = evaluate(fwd, corpus.test, test_starts, context, micro, device)
        tokens = total * batch * context
        return RunResult(
            validation=val, test=test, steps=total,
            extra={
                "corpus": corpus.source, "corpus_bytes": corpus.n_bytes,
                "corpus_sha256": corpus.sha256, "split_block": corpus.block,
                "train_bytes": len(corpus.train), "val_windows": len(val_starts),
                "test_windows": len(test_starts), "params": sum(p.numel() for p in model.parameters()),
                "tokens": tokens, "train_s": train_s, "tokens_per_s": tokens / max(train_s, 1e-9),
            },
        )


def lm(options: dict[str, Any] | None = None) -> ByteLM:
    """Factory of the ``lm`` workload."""
    return ByteLM(options)


__all__ = ["ByteLM", "lm", "read_corpus", "split_corpus", "stdlib_files"]
