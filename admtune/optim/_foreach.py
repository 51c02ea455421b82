r"""Multi-tensor plumbing of the AdM optimizers' ``foreach`` paths: pieces, buckets, reductions,
workspaces and the chunk constants. Nothing here knows the two-plane math.

Execution model of a multi-tensor step (both optimizers). Two passes over the parameters that
have a gradient:

1. *reduce*: per tensor, the few sums β needs (fp32 accumulation, fp64 for fp64 parameters);
2. β from those sums (:mod:`admtune.optim.twoplane`, vectorised over the tensors of a group, on
   the parameters' device: no host synchronisation), then *apply*: update the state and the
   parameters with per-tensor coefficients held as 0-d device tensors.

Both passes run on *pieces* (flat views of at most ``chunk`` elements) grouped in *buckets*:

* CPU: tensors are cut into cache-sized chunks (:data:`CPU_CHUNK` elements for AdM-AdamW,
  whose transient temporaries then stay in cache and are never whole-model sized;
  :data:`SGD_CPU_CHUNK` for AdM-SGD, which has none); each chunk and each tensor of at least
  :data:`CPU_SMALL` elements is a bucket of its own whose sums are BLAS dot products (the fastest
  reduction there: parallel, no temporary), and the small tensors share multi-tensor buckets
  reduced by ``torch._foreach_powsum``. The apply pass walks the buckets backwards, starting with
  the ones the reduce pass left in cache.
* Accelerators: buckets of up to :data:`DEVICE_BUCKET` elements processed with
  ``torch._foreach_*`` kernels (multi-tensor reductions of sums of squares, signed sums by
  polarisation), which bounds the temporaries while keeping kernel launches few.

The single-tensor paths (``foreach=False``) use none of this: they are the whole-tensor
reference forms, one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import twoplane

#: Elements per piece on CPU and per multi-tensor bucket of small tensors: AdM-AdamW
#: (L2-sized transient temporaries) and AdM-SGD (no temporaries: fewer, larger ops).
CPU_CHUNK = 1 << 18
SGD_CPU_CHUNK = 1 << 20
#: CPU: tensors with at least this many elements get a bucket of their own (their reductions
#: are BLAS dots); smaller ones share multi-tensor buckets (overhead-bound).
CPU_SMALL = 1 << 14
#: Elements per piece / bucket on accelerators.
DEVICE_BUCKET = 1 << 25

#: ``(indices into the params given, β)``: β a vector over those indices (``tensor``
#: granularity) or the group's 0-d β (``global``); what the functional optimizers return.
BetaCols = list[tuple[list[int], Tensor]]

#: Reduction styles a test may force (``_reduce_mode``): BLAS dots or sums of squares.
REDUCE_MODES = (None, "dot", "sumsq")
#: Execution strategies a test may force (``_strategy``); None = by device.
STRATEGIES = (None, "cpu", "accelerator")


@dataclass(frozen=True)
class Knobs:
    """The private test hooks of one step, passed explicitly (never stored on the optimizer).

    ``force_beta``: a float forces β at every step (oracle 3); ``reduce_mode``: force the
    reduction style; ``strategy``: run the accelerator strategy on the CPU (or the reverse)."""

    force_beta: float | None = None
    reduce_mode: str | None = None
    strategy: str | None = None

    def accelerator(self, device: torch.device) -> bool:
        """Whether ``device`` gets the accelerator strategy (large ordered buckets,
        multi-tensor reductions, one-coefficient fast paths) rather than the CPU one."""
        if self.strategy is not None:
            return self.strategy == "accelerator"
        return device.type != "cpu"

    def dot_mode(self, device: torch.device, dtype: torch.dtype, n_pieces: int) -> bool:
        """Reduction style of a bucket: BLAS dot products (CPU, fp32/fp64, a bucket of one
        piece: the fastest reduction there) or multi-tensor sums of squares (accelerators, low
        precision, buckets of small tensors: one kernel, fp32 accumulation via ``dtype=``)."""
        if self.reduce_mode is not None:
            return self.reduce_mode == "dot"
        return (not self.accelerator(device) and dtype in (torch.float32, torch.float64)
                and n_pieces == 1)


DEFAULT_KNOBS = Knobs()


def flatten(ops: list[Tensor]) -> list[Tensor] | None:
    """1-D views of same-shape tensors in memory order, or None if they are not all dense with
    one common layout (then the tensor is processed whole)."""
    if all(t.is_contiguous() for t in ops):
        return [t.view(-1) for t in ops]
    ref = ops[0]
    if any(t.stride() != ref.stride() for t in ops):
        return None
    perm = sorted(range(ref.dim()), key=lambda i: -ref.stride(i))
    if not ref.permute(perm).is_contiguous():
        return None
    return [t.permute(perm).reshape(-1) for t in ops]


class Pieces:
    """The tensors of one (device, dtype) part of a param group, cut into pieces and buckets.

    ``operands`` holds k lists of n same-shape tensors (parameter, gradient, state buffers).
    ``buckets`` is a list of ``(owners, views)``: ``owners[j]`` is the tensor index of piece j and
    ``views`` holds k lists of piece views. Tensors above ``chunk`` elements are cut into flat
    chunks, one bucket each; on the CPU strategy tensors of at least :data:`CPU_SMALL` elements
    get a bucket of their own and the others share buckets of up to ``chunk`` elements; on the
    accelerator strategy pieces stay in tensor order (which :meth:`per_tensor` relies on there)
    in buckets of up to ``chunk`` elements. On the CPU every bucket of a single piece holds a
    flat (1-D, dense) view when the layout allows one, so that kernels can use a workspace.
    """

    def __init__(self, operands: list[list[Tensor]], chunk: int, accelerator: bool):
        self.n = len(operands[0])
        self.ordered = accelerator
        small = None if accelerator else CPU_SMALL
        self.buckets: list[tuple[list[int], list[list[Tensor]]]] = []
        k = len(operands)
        group: tuple[list[int], list[list[Tensor]]] = ([], [[] for _ in range(k)])
        size = 0
        for i in range(self.n):
            ops = [lst[i] for lst in operands]
            m = ops[0].numel()
            big = m > chunk
            if big or (small is not None and m >= small):
                if accelerator and group[0]:  # keep tensor order
                    self.buckets.append(group)
                    group, size = ([], [[] for _ in range(k)]), 0
                flat = flatten(ops) if big or not accelerator else None
                if flat is None:
                    self.buckets.append(([i], [[t] for t in ops]))
                else:
                    cuts = [f.split(chunk) for f in flat]
                    self.buckets.extend(([i], [[c] for c in cs]) for cs in zip(*cuts, strict=True))
                continue
            if size and size + m > chunk:
                self.buckets.append(group)
                group, size = ([], [[] for _ in range(k)]), 0
            group[0].append(i)
            for lst, t in zip(group[1], ops, strict=True):
                lst.append(t)
            size += m
        if group[0]:
            self.buckets.append(group)

    def per_tensor(self, vals: Tensor, owners: list[int]) -> Tensor:
        """``(q, P)`` per-piece sums, piece j belonging to tensor ``owners[j]`` → ``(q, n)``."""
        n = self.n
        if len(owners) == n and owners == list(range(n)):
            return vals
        if not self.ordered or any(b < a for a, b in zip(owners, owners[1:], strict=False)):
            # CPU only: an index built on the host costs nothing there
            idx = torch.tensor(owners, dtype=torch.long, device=vals.device)
            return vals.new_zeros(vals.shape[0], n).index_add_(1, idx, vals)
        blocks, j = [], 0  # pieces in tensor order: sum the runs of chunks of one tensor
        while j < len(owners):
            e = j + 1
            while e < len(owners) and owners[e] == owners[j]:
                e += 1
            blocks.append(vals[:, j:e].sum(1, keepdim=True) if e - j > 1 else vals[:, j:e])
            j = e
        return torch.cat(blocks, 1)

    def expand(self, coeffs: Sequence[Any]) -> list[list[Any]]:
        """Per-tensor coefficients → per-piece lists, one per bucket."""
        return [[coeffs[i] for i in owners] for owners, _ in self.buckets]


class Collect:
    """Per-bucket reduction results (lists of 0-d sums), kept apart by reduction style ("dot"
    or sums of squares), then stacked once into one canonical ``(q, P)`` matrix."""

    def __init__(self) -> None:
        self.parts: dict[bool, tuple[list[list[Tensor]], list[int]]] = {
            True: ([], []),
            False: ([], []),
        }

    def add(self, dot: bool, sums: list[list[Tensor]], owners: list[int]) -> None:
        cols, own = self.parts[dot]
        if not cols:
            cols.extend([] for _ in sums)
        for col, lst in zip(cols, sums, strict=True):
            col.extend(lst)
        own.extend(owners)

    def finish(
        self, canon_dot: Callable[[Tensor], Tensor], canon_sumsq: Callable[[Tensor], Tensor]
    ) -> tuple[Tensor, list[int]]:
        mats, owners = [], []
        for dot, canon in ((True, canon_dot), (False, canon_sumsq)):
            cols, own = self.parts[dot]
            if own:
                q = len(cols)
                mats.append(canon(torch.stack([t for c in cols for t in c]).view(q, len(own))))
                owners.extend(own)
        return (torch.cat(mats, 1) if len(mats) > 1 else mats[0]), owners


def sumsq(tensors: list[Tensor], acc: torch.dtype) -> list[Tensor]:
    """Per-tensor sums of squares, accumulated in ``acc`` (one multi-tensor reduction)."""
    if hasattr(torch, "_foreach_powsum"):
        return list(torch._foreach_powsum(tensors, 2, dtype=acc))
    norms = torch._foreach_norm(tensors, 2, dtype=acc)  # older torch
    return list(torch._foreach_mul(norms, norms))


def dots(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
    """Per-piece dot products (BLAS; the accumulation dtype is the tensors' own, fp32/fp64)."""
    return [
        torch.dot(x if x.dim() == 1 else x.reshape(-1), y if y.dim() == 1 else y.reshape(-1))
        for x, y in zip(xs, ys, strict=True)
    ]


def host_vec(vals: list[float], acc: torch.dtype, device: torch.device) -> float | Tensor:
    """Per-tensor host floats (r_t, bias corrections) as one float when they agree (the normal
    case), else a device vector (an asynchronous host-to-device copy, no sync)."""
    if all(v == vals[0] for v in vals):
        return vals[0]
    return torch.tensor(vals, dtype=acc).to(device, non_blocking=True)


def total(vals: list[Tensor]) -> Tensor:
    """Sum of 0-d tensors that may live on several devices / dtypes (the ``global`` β of the
    single-tensor paths)."""
    acc = torch.float64 if any(v.dtype == torch.float64 for v in vals) else torch.float32
    return torch.stack([v.to(vals[0].device, acc) for v in vals]).sum()


def by_device_dtype(tensors: Sequence[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Positions in ``tensors`` grouped by (device, dtype), in order."""
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for k, t in enumerate(tensors):
        out.setdefault((t.device, t.dtype), []).append(k)
    return out


@dataclass
class Workspaces:
    """CPU scratch vectors reused across steps, per (device, dtype): fresh large allocations
    would page-fault at every step. Not optimizer state (never saved); at most a few chunks."""

    store: dict[tuple[torch.device, torch.dtype], list[Tensor]] = field(default_factory=dict)

    def get(self, n: int, views: list[list[Tensor]], accelerator: bool) -> list[Tensor] | None:
        """``n`` vectors shaped like the single flat piece of a bucket, or None where the bucket
        is not a single flat piece (or on the accelerator strategy)."""
        if accelerator or len(views[0]) != 1 or views[0][0].dim() != 1:
            return None
        ref = views[0][0]
        size, key = ref.numel(), (ref.device, ref.dtype)
        ws = self.store.get(key)
        if ws is None or len(ws) < n or ws[0].numel() < size:
            cap = max(size, ws[0].numel() if ws else 0)
            ws = [torch.empty(cap, dtype=ref.dtype, device=ref.device)
                  for _ in range(max(n, len(ws or [])))]
            self.store[key] = ws
        return [w[:size] for w in ws[:n]]


def combine_betas(
    granularity: str, parts: list[tuple[Tensor, Tensor, torch.device]], beta_max: float
) -> list[Tensor]:
    """β from per-tensor ``(num, den, device)`` vectors, one entry per (device, dtype) part:
    ``tensor`` granularity, a vector (one β per tensor); ``global``, a 0-d tensor on the part's
    device, all equal (the summed numerators over the summed denominators)."""
    if not parts:
        return []
    if granularity == "tensor":
        return [twoplane.clip_beta(num, den, beta_max) for num, den, _ in parts]
    if len(parts) == 1:
        num, den, _ = parts[0]
        return [twoplane.clip_beta(num.sum(), den.sum(), beta_max)]
    home = parts[0][2]
    acc = torch.float64 if any(n.dtype == torch.float64 for n, _, _ in parts) else torch.float32
    tot_num = torch.stack([n.sum().to(home, acc, non_blocking=True) for n, _, _ in parts])
    tot_den = torch.stack([d.sum().to(home, acc, non_blocking=True) for _, d, _ in parts])
    beta = twoplane.clip_beta(tot_num.sum(), tot_den.sum(), beta_max)
    return [beta.to(dev, n.dtype, non_blocking=True) for n, _, dev in parts]
