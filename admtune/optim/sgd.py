r"""AdM-SGD: heavy-ball momentum (EMA form) whose β is chosen afresh at every step.

Also home of the plumbing both AdM optimizers share (argument checks, the per-group bookkeeping,
cutting tensors into pieces, ``last_betas``); :mod:`admtune.optim.adamw` imports it.

Execution model (both optimizers). A step is two passes over the parameters with a gradient:

1. *reduce*: per tensor, the few sums β needs (fp32 accumulation, fp64 for fp64 parameters);
2. β from those sums (:mod:`admtune.optim.twoplane`, vectorised over the tensors of a group, on
   the parameters' device: no host synchronisation), then *apply*: update the state and the
   parameters with per-tensor coefficients held as 0-d device tensors.

Both passes run on *pieces* (flat views of at most ``chunk`` elements) grouped in *buckets*:

* CPU: tensors are cut into cache-sized chunks (2**18 elements for AdM-AdamW, whose transient
  temporaries then stay in cache and are never whole-model sized; 2**20 for AdM-SGD, which has
  none), each chunk and each tensor of at least 2**14 elements is a bucket of its own whose sums
  are BLAS dot products (the fastest reduction there: parallel, no temporary), and the small
  tensors share multi-tensor buckets reduced by ``torch._foreach_powsum``. The apply pass walks
  the buckets backwards, starting with the ones the reduce pass left in cache.
* Accelerators: buckets of up to 2**25 elements processed with ``torch._foreach_*`` kernels
  (multi-tensor reductions of sums of squares, signed sums by polarisation), which bounds the
  temporaries while keeping kernel launches few.

``foreach=False`` (the for-loop path) runs the same kernels one piece at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import Optimizer

from . import twoplane

__all__ = ["AdMSGD"]

#: Elements per piece on CPU (both paths) and per multi-tensor bucket of the CPU foreach path:
#: AdM-AdamW (L2-sized transient temporaries), AdM-SGD (no temporaries: fewer, larger ops).
CPU_CHUNK = 1 << 18
SGD_CPU_CHUNK = 1 << 20
#: CPU foreach path: tensors with at least this many elements get a bucket of their own (their
#: reductions are BLAS dots); smaller ones share multi-tensor buckets (overhead-bound).
CPU_SMALL = 1 << 14
#: Elements per piece / bucket of the foreach path on accelerators.
DEVICE_BUCKET = 1 << 25

_GRANULARITIES = ("global", "tensor")


# ---------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------


def _accelerator(device: torch.device) -> bool:
    """Whether ``device`` gets the accelerator strategy (large foreach buckets, multi-tensor
    reductions, one-coefficient fast paths) rather than the CPU one (tests patch this)."""
    return device.type != "cpu"


def _check_number(name: str, value: Any, low: float, high: float, *, high_open: bool) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` if ``high_open``;
    ``high=inf`` means no upper bound), else a ValueError naming the argument and the range."""
    open_hi = high_open or math.isinf(high)
    rng = f"[{low:g}, {high:g}{')' if open_hi else ']'}"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and low <= v and (v < high if open_hi else v <= high)
    if not ok:
        raise ValueError(f"{name} must be a number in {rng}, got {value!r}")
    return float(value)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Pieces and reductions
# ---------------------------------------------------------------------------------------------


def _flatten(ops: list[Tensor]) -> list[Tensor] | None:
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


class _Pieces:
    """The tensors of one (device, dtype) set of parameters, cut into pieces and buckets.

    ``operands`` holds k lists of n same-shape tensors (parameter, gradient, state buffers).
    ``buckets`` is a list of ``(owners, views)``: ``owners[j]`` is the tensor index of piece j and
    ``views`` holds k lists of piece views. Tensors above ``chunk`` elements are cut into flat
    chunks, one bucket each; tensors of at least ``small`` elements get a bucket of their own;
    the others share buckets of up to ``bucket`` elements (``bucket=None``: one piece per
    bucket, the single-tensor path). Without ``small`` (accelerators) pieces stay in tensor
    order, which :meth:`per_tensor` relies on off the CPU. With ``flat_solo`` every bucket of a
    single piece holds a flat (1-D, dense) view when the layout allows one.
    """

    def __init__(
        self,
        operands: list[list[Tensor]],
        chunk: int | None,
        bucket: int | None,
        small: int | None = None,
        flat_solo: bool = False,
    ):
        self.n = len(operands[0])
        self.ordered = small is None  # pieces in tensor order (see per_tensor)
        self.buckets: list[tuple[list[int], list[list[Tensor]]]] = []
        k = len(operands)
        group: tuple[list[int], list[list[Tensor]]] = ([], [[] for _ in range(k)])
        size = 0
        for i in range(self.n):
            ops = [lst[i] for lst in operands]
            m = ops[0].numel()
            big = chunk is not None and m > chunk
            if big or bucket is None or (small is not None and m >= small):
                if small is None and group[0]:  # keep tensor order
                    self.buckets.append(group)
                    group, size = ([], [[] for _ in range(k)]), 0
                # ``flat_solo`` (CPU): flat views for every bucket of its own, so that the
                # kernels can work in a preallocated workspace; else only to cut big tensors.
                flat = _flatten(ops) if big or flat_solo else None
                if flat is None:
                    self.buckets.append(([i], [[t] for t in ops]))
                else:
                    assert chunk is not None
                    cuts = [f.split(chunk) for f in flat]
                    self.buckets.extend(([i], [[c] for c in cs]) for cs in zip(*cuts, strict=True))
                continue
            if size and size + m > bucket:
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
            # CPU only (``small`` is set only there): an index on the host costs nothing
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

    def expand(self, coeffs: list[Any]) -> list[list[Any]]:
        """Per-tensor coefficients → per-piece lists, one per bucket."""
        return [[coeffs[i] for i in owners] for owners, _ in self.buckets]


class _Collect:
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


def _sumsq(tensors: list[Tensor], acc: torch.dtype) -> list[Tensor]:
    """Per-tensor sums of squares, accumulated in ``acc`` (one multi-tensor reduction)."""
    if hasattr(torch, "_foreach_powsum"):
        return list(torch._foreach_powsum(tensors, 2, dtype=acc))
    norms = torch._foreach_norm(tensors, 2, dtype=acc)  # older torch
    return list(torch._foreach_mul(norms, norms))


def _dots(xs: list[Tensor], ys: list[Tensor]) -> list[Tensor]:
    """Per-piece dot products (BLAS; the accumulation dtype is the tensors' own, fp32/fp64)."""
    return [
        torch.dot(x if x.dim() == 1 else x.reshape(-1), y if y.dim() == 1 else y.reshape(-1))
        for x, y in zip(xs, ys, strict=True)
    ]


def _host_vec(vals: list[float], acc: torch.dtype, device: torch.device) -> float | Tensor:
    """Per-tensor host floats (r_t, bias corrections) as one float when they agree (the normal
    case), else a device vector (an asynchronous host-to-device copy, no sync)."""
    if all(v == vals[0] for v in vals):
        return vals[0]
    return torch.tensor(vals, dtype=acc).to(device, non_blocking=True)


# ---------------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------------


class _AdMOptimizer(Optimizer):
    """Shared plumbing of the AdM optimizers (not public)."""

    _name = "AdM"

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        #: One 1-D float32 device tensor per param group: the β of the last step (see class doc).
        self.last_betas: list[Tensor] = []
        #: Private test hook (oracle 3): a float forces β at every step; None = adaptive.
        self._force_beta: float | None = None
        #: Private: "dot" / "sumsq" forces the reduction style (tests); None = by device.
        self._reduce_mode: str | None = None
        #: Private: CPU scratch vectors reused across steps (not state; at most a few chunks).
        self._ws: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("last_betas", [])
        self.__dict__.setdefault("_force_beta", None)
        self.__dict__.setdefault("_reduce_mode", None)
        self.__dict__.setdefault("_ws", {})
        for group in self.param_groups:
            group.setdefault("foreach", None)

    # -- validation ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict[str, Any]) -> None:
        if isinstance(group["lr"], Tensor):
            raise ValueError(f"lr must be a number in [0, inf), got a Tensor ({group['lr']!r})")
        _check_number("lr", group["lr"], 0.0, math.inf, high_open=False)
        _check_number("weight_decay", group["weight_decay"], 0.0, math.inf, high_open=False)
        _check_number("lam", group["lam"], 0.0, math.inf, high_open=False)
        _check_choice("granularity", group["granularity"], _GRANULARITIES)
        _check_choice("foreach", group["foreach"], (None, True, False))

    # -- gathering -------------------------------------------------------------------------------
    def _gather(self, group: dict[str, Any]) -> list[tuple[int, Tensor, Tensor]]:
        """``(index in group, param, grad)`` for the params that have a gradient."""
        items = []
        for i, p in enumerate(group["params"]):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse or p.is_sparse:
                raise RuntimeError(
                    f"{self._name} does not support sparse gradients (param {i} of a group); "
                    "use a dense gradient (e.g. nn.Embedding(sparse=False))"
                )
            if torch.is_complex(p) or torch.is_complex(g):
                raise RuntimeError(
                    f"{self._name} does not support complex parameters or gradients (param {i}"
                    " of a group); optimise torch.view_as_real(param) instead"
                )
            if not p.is_floating_point():
                raise RuntimeError(f"{self._name} needs floating-point parameters, got {p.dtype}")
            items.append((i, p, g))
        return items

    @staticmethod
    def _by_device_dtype(
        items: list[tuple[int, Tensor, Tensor]],
    ) -> dict[tuple[torch.device, torch.dtype], list[int]]:
        """Positions in ``items`` grouped by (device, dtype), in order."""
        out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for k, (_, p, _g) in enumerate(items):
            out.setdefault((p.device, p.dtype), []).append(k)
        return out

    def _workspace(
        self, device: torch.device, dtype: torch.dtype, n: int, views: list[list[Tensor]]
    ) -> list[Tensor] | None:
        """``n`` scratch vectors shaped like the single flat piece of a bucket, carved from a
        workspace kept across steps (CPU only: reusing memory avoids the page faults of fresh
        large allocations), or None where the bucket is not a single flat piece."""
        if _accelerator(device) or len(views[0]) != 1 or views[0][0].dim() != 1:
            return None
        size = views[0][0].numel()
        key = (device, dtype)
        ws = self._ws.get(key)
        if ws is None or len(ws) < n or ws[0].numel() < size:
            cap = max(size, ws[0].numel() if ws else 0)
            ws = [torch.empty(cap, dtype=dtype, device=device) for _ in range(max(n, len(ws or [])))]
            self._ws[key] = ws
        return [w[:size] for w in ws[:n]]

    @staticmethod
    def _use_foreach(group: dict[str, Any]) -> bool:
        return True if group["foreach"] is None else bool(group["foreach"])

    def _dot_mode(self, device: torch.device, dtype: torch.dtype, n_pieces: int) -> bool:
        """Reduction style of a bucket: BLAS dot products (CPU, fp32/fp64, a bucket of one
        piece: the fastest reduction there) or multi-tensor sums of squares (accelerators, low
        precision, buckets of small tensors: one kernel, fp32 accumulation via ``dtype=``).
        ``_reduce_mode`` ("dot" / "sumsq") overrides it (tests)."""
        if self._reduce_mode is not None:
            return self._reduce_mode == "dot"
        cpu = not _accelerator(device)
        return cpu and dtype in (torch.float32, torch.float64) and n_pieces == 1

    def _cpu_chunk(self) -> int:
        return CPU_CHUNK

    def _pieces(self, operands: list[list[Tensor]], device: torch.device, foreach: bool) -> _Pieces:
        if not _accelerator(device):
            chunk = self._cpu_chunk()
            if foreach:
                return _Pieces(operands, chunk, chunk, CPU_SMALL, flat_solo=True)
            return _Pieces(operands, chunk, None, flat_solo=True)
        if foreach:
            return _Pieces(operands, DEVICE_BUCKET, DEVICE_BUCKET)
        return _Pieces(operands, None, None)

    # -- step ------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform a single optimization step (``closure`` re-evaluates the loss, optional).

        After it, :attr:`last_betas` holds the β used, per group, as device tensors."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.last_betas = self._step_groups()
        return loss

    @torch.compiler.disable
    def _step_groups(self) -> list[Tensor]:
        # Under torch.compile the model is compiled and the optimizer step runs eagerly (a
        # graph break): its host-side bookkeeping (per-tensor lr history, pieces) would
        # otherwise force recompilations.
        return [self._step_group(group) for group in self.param_groups]

    def _step_group(self, group: dict[str, Any]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- β bookkeeping ---------------------------------------------------------------------------
    @staticmethod
    def _betas(
        granularity: str, parts: list[tuple[Tensor, Tensor, torch.device]], beta_max: float
    ) -> list[Tensor]:
        """β from per-tensor ``(num, den, device)`` vectors, one entry per (device, dtype) part:
        ``tensor`` granularity, a vector (one β per tensor); ``global``, a 0-d tensor on the
        part's device, all equal (the summed numerators over the summed denominators)."""
        if granularity == "tensor":
            return [twoplane.clip_beta(num, den, beta_max) for num, den, _ in parts]
        if len(parts) == 1:
            num, den, _ = parts[0]
            return [twoplane.clip_beta(num.sum(), den.sum(), beta_max)]
        home = parts[0][2]
        acc = torch.float64 if any(n.dtype == torch.float64 for n, _, _ in parts) else None
        acc = acc or torch.float32
        tot_num = torch.stack([n.sum().to(home, acc, non_blocking=True) for n, _, _ in parts])
        tot_den = torch.stack([d.sum().to(home, acc, non_blocking=True) for _, d, _ in parts])
        beta = twoplane.clip_beta(tot_num.sum(), tot_den.sum(), beta_max)
        return [beta.to(dev, n.dtype, non_blocking=True) for n, _, dev in parts]

    def _report(
        self,
        group: dict[str, Any],
        items: list[tuple[int, Tensor, Tensor]],
        cols: list[tuple[list[int], Tensor]],
        group_beta: Tensor | None,
    ) -> Tensor:
        """The ``last_betas`` entry of a group: a fresh 1-D float32 tensor on the group's device.

        ``cols``: ``(positions in items, β vector)`` pairs (``tensor`` granularity);
        ``group_beta``: the group's 0-d β (``global``; None if no param had a gradient)."""
        params = group["params"]
        home = params[0].device if params else torch.device("cpu")
        f32 = torch.float32
        if group["granularity"] == "global":
            if group_beta is None:
                return torch.full((1,), math.nan, dtype=f32, device=home)
            return group_beta.reshape(1).to(home, f32, non_blocking=True, copy=True)
        n = len(params)
        if len(cols) == 1 and len(items) == n and cols[0][0] == list(range(n)):
            return cols[0][1].to(home, f32, non_blocking=True, copy=True)
        entries: list[Tensor | None] = [None] * n
        for pos, vec in cols:
            for k, b in zip(pos, vec.to(home, f32, non_blocking=True).unbind(), strict=True):
                entries[items[k][0]] = b
        if any(e is None for e in entries):
            nan = torch.full((), math.nan, dtype=f32, device=home)
            entries = [nan if e is None else e for e in entries]
        return torch.stack(entries)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# AdM-SGD
# ---------------------------------------------------------------------------------------------


def _decayed(xs: list[Tensor], gs: list[Tensor], wd: float, ws: list[Tensor] | None) -> list[Tensor]:
    """g + μx (coupled weight decay), in the workspace when there is one."""
    if wd == 0.0:
        return gs
    if ws is not None:
        return [torch.add(gs[0], xs[0], alpha=wd, out=ws[0])]
    return list(torch._foreach_add(gs, xs, alpha=wd))


def _sgd_reduce(
    xs: list[Tensor],
    gs: list[Tensor],
    ds: list[Tensor],
    wd: float,
    acc: torch.dtype,
    dot: bool,
    ws: list[Tensor] | None = None,
) -> list[list[Tensor]]:
    """Per piece, with g including the coupled weight decay: ``dot`` style (g·g, g·d, d·d) —
    three BLAS dots, no temporary; else (‖g‖², ‖d‖², ‖d − g‖²) — one multi-tensor reduction."""
    gs = _decayed(xs, gs, wd, ws)
    if dot:
        gd = _dots(gs, ds)  # first: streams g and d from memory together; the others hit cache
        return [_dots(gs, gs), gd, _dots(ds, ds)]
    us = torch._foreach_sub(ds, gs)
    sums = _sumsq([*gs, *ds, *us], acc)
    n = len(xs)
    return [sums[:n], sums[n : 2 * n], sums[2 * n :]]


def _sgd_canon_dot(v: Tensor) -> Tensor:
    """(g·g, g·d, d·d) → (‖g‖², g·d, ‖d−g‖² = g·g − 2 g·d + d·d)."""
    return torch.stack([v[0], v[1], v[0] - 2.0 * v[1] + v[2]])


def _sgd_canon_sumsq(v: Tensor) -> Tensor:
    """(‖g‖², ‖d‖², ‖d−g‖²) → (‖g‖², g·d = (‖g‖² + ‖d‖² − ‖d−g‖²)/2, ‖d−g‖²)."""
    return torch.stack([v[0], 0.5 * (v[0] + v[1] - v[2]), v[2]])


def _sgd_apply(
    xs: list[Tensor],
    gs: list[Tensor],
    ds: list[Tensor],
    b: list[Tensor],
    one_b: tuple[Tensor, Tensor] | None,
    lr: float,
    wd: float,
    ws: list[Tensor] | None = None,
) -> None:
    """d ← d + b (g − d) (= a d + b g), then x ← x − η d. ``one_b``: ``(a, b)`` when the whole
    bucket shares one coefficient (``global`` on an accelerator: multi-tensor fast paths)."""
    gs = _decayed(xs, gs, wd, ws)
    if one_b is not None:
        torch._foreach_mul_(ds, one_b[0])
        torch._foreach_add_(ds, torch._foreach_mul(gs, one_b[1]))
    elif len(ds) == 1:  # a bucket of one piece: plain ops, less call overhead
        ds[0].lerp_(gs[0], b[0])
    else:
        torch._foreach_lerp_(ds, gs, b)
    if lr != 0.0:
        if len(xs) == 1:
            xs[0].add_(ds[0], alpha=-lr)
        else:
            torch._foreach_add_(xs, ds, alpha=-lr)


class AdMSGD(_AdMOptimizer):
    r"""AdM-SGD: SGD with adaptive-memory momentum (Topollai & Choromanska, arXiv:2510.04988).

    Heavy-ball momentum in EMA form, like ``torch.optim.SGD(momentum=β, dampening=β)``, but β is
    the solution of a two-plane proximal model, recomputed at every step from three sums of
    squares — no momentum to tune:

    .. math::
        \begin{aligned}
        g_t &\leftarrow \nabla f(x_t) + \mu x_t \\
        \beta_t &= \operatorname{clip}\Big(\frac{(1+\lambda)\big(\lVert g_t\rVert^2
                 + (r_t-1)\,g_t^\top d_t\big) - \lambda\lVert d_t-g_t\rVert^2}
                 {\lVert d_t-g_t\rVert^2},\ 0,\ \beta_{\max}\Big),
                 \qquad r_t = \eta_{t-1}/\eta_t \\
        d_{t+1} &= \tfrac{\beta_t+\lambda}{1+\lambda}\,d_t + \tfrac{1-\beta_t}{1+\lambda}\,g_t
                 \qquad (d_1 = g_0 \text{ at the first step}) \\
        x_{t+1} &= x_t - \eta_t\, d_{t+1}
        \end{aligned}

    Args:
        params: iterable of parameters or dicts defining parameter groups.
        lr: step size η ≥ 0 (a float; LR schedulers work as usual, r_t comes from the lr
            history, kept per tensor in the optimizer state).
        weight_decay: coupled L2 coefficient μ ≥ 0 (as ``torch.optim.SGD``).
        lam: proximal weight λ ≥ 0 of the model (a fixed constant, 0.1; not a knob to tune).
        beta_max: cap on β, in [0, 1).
        granularity: ``"global"`` (one β per param group, the dot products over all its
            parameters that have a gradient) or ``"tensor"`` (one β per parameter tensor).
        foreach: multi-tensor ``torch._foreach_*`` path (``True``, and the default ``None``)
            or the for-loop path (``False``); see the module doc for how each device is served.

    Conventions: ‖d − g‖² = 0 gives β = 0 (the step is exactly g); η_t = 0 leaves the
    parameters in place, updates d with r = 1, and makes the next r exactly 0.

    After each :meth:`step`, :attr:`last_betas` holds one 1-D float32 tensor per param group on
    its device — length 1 for ``global``, one entry per parameter for ``tensor`` (NaN where a
    parameter had no gradient) — fresh tensors, produced without any host synchronisation.
    The first step reports β = 0 (d = g).

    State per parameter: ``momentum_buffer`` (d, the parameter's dtype and shape) and
    ``prev_lr`` (a float) — the same memory as torch's SGD with momentum.
    """

    _name = "AdMSGD"

    def __init__(
        self,
        params: Any,
        lr: float,
        weight_decay: float = 0.0,
        lam: float = 0.1,
        beta_max: float = 0.9,
        granularity: str = "global",
        foreach: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "lam": lam,
            "beta_max": beta_max,
            "granularity": granularity,
            "foreach": foreach,
        }
        self._check_group(defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        _check_number("beta_max", group["beta_max"], 0.0, 1.0, high_open=True)

    def _cpu_chunk(self) -> int:
        return SGD_CPU_CHUNK

    def _step_group(self, group: dict[str, Any]) -> Tensor:
        lr: float = group["lr"]
        wd: float = group["weight_decay"]
        lam: float = group["lam"]
        beta_max: float = group["beta_max"]
        items = self._gather(group)
        state = self.state

        # First step of a tensor: d = g (the step is g whatever β is); it adds nothing to the
        # sums of the others (r = 0 and d − g = 0).
        old: list[tuple[int, Tensor, Tensor]] = []
        new_pos: list[int] = []
        for k, (_, p, g) in enumerate(items):
            st = state[p]
            if "momentum_buffer" not in st:
                d = torch.add(g, p, alpha=wd) if wd != 0.0 else torch.clone(g).detach()
                st["momentum_buffer"] = d
                if lr != 0.0:
                    p.add_(d, alpha=-lr)
                new_pos.append(k)
            else:
                old.append((k, p, g))

        # Reduce: per (device, dtype) part, per-tensor numerator and denominator of β.
        per_tensor = group["granularity"] == "tensor"
        forced = self._force_beta
        foreach = self._use_foreach(group)
        parts = []
        for (dev, dtype), ks in self._by_device_dtype([items[k] for k, _, _ in old]).items():
            sel = [old[j] for j in ks]
            xs = [p for _, p, _ in sel]
            gs = [g for _, _, g in sel]
            ds = [state[p]["momentum_buffer"] for p in xs]
            acc = twoplane.acc_dtype(dtype)
            pieces = self._pieces([xs, gs, ds], dev, foreach)
            num = den = None
            if forced is None:
                col = _Collect()
                for owners, views in pieces.buckets:
                    dot = self._dot_mode(dev, dtype, len(owners))
                    ws = self._workspace(dev, dtype, 1, views) if wd != 0.0 else None
                    col.add(dot, _sgd_reduce(*views, wd, acc, dot, ws), owners)
                mat, owners = col.finish(_sgd_canon_dot, _sgd_canon_sumsq)
                gg, gd, uu = pieces.per_tensor(mat, owners).unbind()
                uu = torch.clamp(uu, min=0.0)
                r = _host_vec(
                    [twoplane.lr_ratio(state[p].get("prev_lr"), lr) for p in xs], acc, dev
                )
                num, den = twoplane.sgd_num_den(gg, gd, uu, r, lam)
            parts.append(([k for k, _, _ in sel], pieces, num, den, dev, acc))

        if forced is not None:
            betas = [torch.full((), float(forced), dtype=acc, device=dev)
                     for *_, dev, acc in parts]
            if per_tensor:
                betas = [b.expand(len(p[0])) for b, p in zip(betas, parts, strict=True)]
        elif parts:
            betas = self._betas(
                group["granularity"], [(n, d, dv) for _, _, n, d, dv, _ in parts], beta_max
            )
        else:
            betas = []

        # Apply.
        cols: list[tuple[list[int], Tensor]] = []
        for (pos, pieces, _, _, dev, _), beta in zip(parts, betas, strict=True):
            a_t, b_t = twoplane.sgd_coeffs(beta, lam)
            pieces_dtype = items[pos[0]][1].dtype
            if per_tensor:
                b_list = list(b_t.unbind())
                cols.append((pos, beta))
            else:
                b_list = [b_t] * len(pos)
            # One coefficient for all: multi-tensor fast paths on accelerators (which need the
            # scalar in the tensors' dtype; bf16/fp16 keep fp32 coefficients, per tensor).
            fast = not per_tensor and _accelerator(dev) and a_t.dtype == pieces_dtype
            one_b = (a_t, b_t) if fast else None
            # Reverse order: the pieces the reduction read last are still in cache.
            for (_, views), bl in zip(
                reversed(pieces.buckets), reversed(pieces.expand(b_list)), strict=True
            ):
                ws = self._workspace(dev, pieces_dtype, 1, views) if wd != 0.0 else None
                _sgd_apply(*views, bl, one_b, lr, wd, ws)
        for _, p, _ in items:
            state[p]["prev_lr"] = lr

        first = 0.0 if forced is None else float(forced)  # first step: d = g, reported β = 0
        if per_tensor:
            if new_pos:
                dev0 = items[new_pos[0]][1].device
                cols.append((new_pos, torch.full((len(new_pos),), first, device=dev0)))
            return self._report(group, items, cols, None)
        if betas:
            gb = betas[0]
        elif new_pos:
            gb = torch.full((), first, device=items[new_pos[0]][1].device)
        else:
            gb = None
        return self._report(group, items, [], gb)
