"""torch.optim's generic optimizer behaviours, tested the way torch tests its own optimizers.

``OptimizerInfo`` entries (``torch.testing._internal.common_optimizers``) for AdMSGD and AdMAdamW,
with their optimizer inputs and error inputs; torch's own SGD and AdamW entries go through the same
tests as controls, so that a failure on AdM where torch passes names a real difference. What a
torch.optim user relies on: parameters without a gradient and empty groups, every LR scheduler,
hooks, tensor lr, ``maximize``, foreach vs for-loop, ``state_dict`` through hooks and
``weights_only`` loading, ``torch.compile(opt.step)``.
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Callable

import pytest
import torch
from torch.optim import lr_scheduler as L
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.testing._internal.common_optimizers import (
    ErrorOptimizerInput,
    OptimizerErrorEnum,
    OptimizerInfo,
    OptimizerInput,
    get_error_inputs_for_all_optims,
    optim_db,
)

from admtune.optim import AdMAdamW, AdMSGD
from tests.test_optim_reference import RefAdMAdamW, RefAdMSGD

# --- the entries -----------------------------------------------------------------------------


def _inputs_adm_sgd(device: str, dtype: torch.dtype | None = None) -> list[OptimizerInput]:
    return [
        OptimizerInput(params=None, kwargs={"lr": 0.1}, desc="default"),
        OptimizerInput(params=None, kwargs={"lr": 0.05, "weight_decay": 0.1}, desc="weight_decay"),
        OptimizerInput(params=None, kwargs={"lr": 0.1, "granularity": "tensor"}, desc="tensor"),
        OptimizerInput(params=None, kwargs={"lr": 0.1, "maximize": True, "weight_decay": 0.1},
                       desc="maximize"),
        OptimizerInput(params=None, kwargs={"lr": 0.1, "beta_max": 0.5, "lam": 0.0},
                       desc="beta_max and lam"),
    ]


def _inputs_adm_adamw(device: str, dtype: torch.dtype | None = None) -> list[OptimizerInput]:
    return [
        OptimizerInput(params=None, kwargs={}, desc="default"),
        OptimizerInput(params=None, kwargs={"lr": 0.01, "weight_decay": 0.0}, desc="no decay"),
        OptimizerInput(params=None, kwargs={"granularity": "global"}, desc="global"),
        OptimizerInput(params=None, kwargs={"maximize": True, "weight_decay": 0.1},
                       desc="maximize"),
        OptimizerInput(params=None, kwargs={"betas": (0.8, 0.99), "eps": 1e-6, "lam": 0.0},
                       desc="betas, eps and lam"),
    ]


def _errors(cls: type, required: dict) -> Callable[..., list[ErrorOptimizerInput]]:
    """torch's errors for every optimizer (params that are not tensors, a param in two groups,
    names on some params only...) plus AdM's argument checks, all at construction."""

    def bad(kwargs: dict, regex: str) -> ErrorOptimizerInput:
        p = torch.nn.Parameter(torch.rand(3))
        return ErrorOptimizerInput(OptimizerInput(params=[p], kwargs={**required, **kwargs},
                                                  desc=str(kwargs)),
                                   error_type=ValueError, error_regex=regex)

    def func(device: str, dtype: torch.dtype) -> list[ErrorOptimizerInput]:
        out = []
        for e in get_error_inputs_for_all_optims(device, dtype):
            oi = e.optimizer_error_input
            if isinstance(oi.kwargs.get("lr"), torch.Tensor):
                continue  # replaced by AdM's own tensor-lr error below
            oi.kwargs = {**required, **oi.kwargs}
            out.append(e)
        out += [
            bad({"lr": -0.1}, r"lr must be a number in \[0, inf\), got -0.1"),
            bad({"lr": torch.tensor(0.1)}, "lr must be a number in .* got a Tensor"),
            bad({"weight_decay": math.nan}, "weight_decay must be a number"),
            bad({"lam": -1.0}, r"lam must be a number in \[0, inf\)"),
            bad({"granularity": "layer"}, "granularity must be one of 'global', 'tensor'"),
            bad({"foreach": "yes"}, "foreach must be one of None, True, False"),
            bad({"maximize": 1}, "maximize must be True or False"),
        ]
        if cls is AdMSGD:
            out.append(bad({"beta_max": 1.0}, r"beta_max must be a number in \[0, 1\)"))
        else:
            out += [bad({"betas": (1.0, 0.999)}, r"betas\[0\] \(beta_max\) must be a number"),
                    bad({"betas": (0.9,)}, "betas must be a pair"),
                    bad({"eps": -1e-8}, r"eps must be a number in \[0, inf\)")]
        return out

    return func


ADM_DB = [
    OptimizerInfo(AdMSGD, optim_inputs_func=_inputs_adm_sgd, supported_impls=("foreach",),
                  supports_complex=False, optim_error_inputs_func=_errors(AdMSGD, {"lr": 0.1})),
    OptimizerInfo(AdMAdamW, optim_inputs_func=_inputs_adm_adamw, supported_impls=("foreach",),
                  supports_complex=False, optim_error_inputs_func=_errors(AdMAdamW, {})),
]
CONTROLS = [o for o in optim_db if o.name in ("SGD", "AdamW")]
ALL = ADM_DB + CONTROLS
ADM_IDS = [o.name for o in ADM_DB]
ALL_IDS = [o.name for o in ALL]


def _inputs(info: OptimizerInfo, device: str = "cpu", dtype=torch.float32) -> list[OptimizerInput]:
    """The entry's inputs on this CPU build (torch's controls list fused/capturable variants
    and tensor lrs, which are not what these tests compare)."""
    out = []
    for oi in info.optim_inputs_func(device=device, dtype=dtype):
        kw = oi.kwargs
        if kw.get("fused") or kw.get("capturable") or isinstance(kw.get("lr"), torch.Tensor):
            continue
        if info.optim_cls is torch.optim.SGD and not kw.get("momentum"):
            kw = {**kw, "momentum": 0.9}  # the AdM counterpart has momentum
        out.append(OptimizerInput(params=None, kwargs=kw, desc=oi.desc))
    return out


def _model(seed: int = 0, dtype=torch.float32) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).to(dtype)


def _loss(m: torch.nn.Module, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 6, generator=gen, dtype=next(m.parameters()).dtype)
    return m(x).pow(2).mean()


def _train(m: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, start: int = 0,
           step: Callable[[], object] | None = None) -> None:
    for t in range(start, start + steps):
        opt.zero_grad()
        _loss(m, t).backward()
        (step or opt.step)()


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
def test_errors(info):
    """Every error input gets its error (as torch's ``test_errors``)."""
    for e in info.optim_error_inputs_func(device="cpu", dtype=torch.float32):
        oi = e.optimizer_error_input
        if e.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
            if issubclass(e.error_type, Warning):
                with pytest.warns(e.error_type, match=e.error_regex):
                    info.optim_cls(oi.params, **oi.kwargs)
            else:
                with pytest.raises(e.error_type, match=e.error_regex):
                    info.optim_cls(oi.params, **oi.kwargs)
        else:
            opt = info.optim_cls(oi.params, **oi.kwargs)
            with pytest.raises(e.error_type, match=e.error_regex):
                opt.step()


# --- parameters without a gradient, empty groups ---------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
def test_params_without_grad_are_left_alone(info):
    """A frozen group, a step before any backward, a step after zero_grad() without a
    backward and a group added but not used yet: those parameters do not move, nothing
    raises; AdM reports NaN for them."""
    for oi in _inputs(info):
        for granularity in ("global", "tensor") if info in ADM_DB else (None,):
            kw = dict(oi.kwargs, **({"granularity": granularity} if granularity else {}))
            m = _model()
            frozen = torch.nn.Linear(3, 3)
            opt = info.optim_cls([{"params": m[0].parameters()},
                                  {"params": frozen.parameters()}], **kw)
            before = [p.detach().clone() for p in [*m.parameters(), *frozen.parameters()]]
            opt.step()  # before any backward
            opt.zero_grad()
            opt.step()  # after zero_grad(), no backward
            assert all(torch.equal(a, b) for a, b in
                       zip(before, [*m.parameters(), *frozen.parameters()], strict=True))
            late = torch.nn.Linear(2, 2)
            opt.add_param_group({"params": [*m[2].parameters(), *late.parameters()]})
            late_before = [p.detach().clone() for p in late.parameters()]
            _train(m, opt, 3)
            assert all(torch.equal(a, b) for a, b in zip(late_before, late.parameters(),
                                                         strict=True)), oi.desc
            assert not torch.equal(before[0], m[0].weight)
            if info in ADM_DB:
                b0, b1, b2 = opt.last_betas
                assert torch.isfinite(b0).all() and b1.isnan().all()
                assert b2.isnan().any() == (granularity == "tensor")


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
def test_empty_param_group(info):
    """The usual no-decay split on a model without biases leaves an empty group."""
    for oi in _inputs(info):
        m = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.Linear(3, 1, bias=False))
        ref = copy.deepcopy(m)
        decay = [p for n, p in m.named_parameters() if not n.endswith("bias")]
        no_decay = [p for n, p in m.named_parameters() if n.endswith("bias")]
        assert no_decay == []
        opt = info.optim_cls([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}],
                             **oi.kwargs)
        opt_ref = info.optim_cls([{"params": list(ref.parameters())}], **oi.kwargs)
        for t in range(3):
            for mm, o in ((m, opt), (ref, opt_ref)):
                o.zero_grad()
                mm(torch.randn(5, 4, generator=torch.Generator().manual_seed(t))).sum().backward()
                o.step()
        for p, q in zip(m.parameters(), ref.parameters(), strict=True):
            assert torch.equal(p, q), oi.desc
        if info in ADM_DB:
            empty = opt.last_betas[1]
            assert empty.numel() == (1 if opt.param_groups[1]["granularity"] == "global" else 0)


# --- LR schedulers ---------------------------------------------------------------------------

#: Every LR scheduler of torch.optim.lr_scheduler with default arguments (and the required
#: ones), as (name, factory).
SCHEDULERS: list[tuple[str, Callable]] = [
    ("LambdaLR", lambda o: L.LambdaLR(o, lambda t: 0.9**t)),
    ("MultiplicativeLR", lambda o: L.MultiplicativeLR(o, lambda t: 0.8)),
    ("StepLR", lambda o: L.StepLR(o, step_size=2)),
    ("MultiStepLR", lambda o: L.MultiStepLR(o, milestones=[1, 3])),
    ("ConstantLR", lambda o: L.ConstantLR(o)),
    ("LinearLR", lambda o: L.LinearLR(o)),
    ("ExponentialLR", lambda o: L.ExponentialLR(o, gamma=0.7)),
    ("SequentialLR", lambda o: L.SequentialLR(o, [L.ConstantLR(o, total_iters=2),
                                                  L.ExponentialLR(o, gamma=0.9)], milestones=[2])),
    ("CosineAnnealingLR", lambda o: L.CosineAnnealingLR(o, T_max=4)),
    ("ChainedScheduler", lambda o: L.ChainedScheduler([L.ConstantLR(o, total_iters=2),
                                                       L.ExponentialLR(o, gamma=0.9)])),
    ("ReduceLROnPlateau", lambda o: L.ReduceLROnPlateau(o, patience=0)),
    ("CyclicLR", lambda o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2)),
    ("CosineAnnealingWarmRestarts", lambda o: L.CosineAnnealingWarmRestarts(o, T_0=2)),
    ("OneCycleLR", lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=20)),
    ("PolynomialLR", lambda o: L.PolynomialLR(o)),
]
CYCLES_MOMENTUM = {"CyclicLR", "OneCycleLR"}


def _sched_step(s, loss: float) -> None:
    s.step(loss) if isinstance(s, L.ReduceLROnPlateau) else s.step()


def _ref_for(opt: torch.optim.Optimizer, params: list[torch.Tensor]):
    """The float64 transcription of ALGORITHM.md for a one-group AdM optimizer."""
    g = opt.param_groups[0]
    if isinstance(opt, AdMSGD):
        return RefAdMSGD([dict(params=params, lr=g["lr"], weight_decay=g["weight_decay"],
                               lam=g["lam"], beta_max=g["beta_max"],
                               granularity=g["granularity"])])
    return RefAdMAdamW([dict(params=params, lr=g["lr"], betas=g["betas"], eps=g["eps"],
                             weight_decay=g["weight_decay"], lam=g["lam"],
                             granularity=g["granularity"])])


@pytest.mark.parametrize("name,make", SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
def test_every_lr_scheduler(info, name, make):
    """Each scheduler drives each optimizer; on AdM the trajectory is the spec's for the lr
    sequence the scheduler produced (r_t from the real lr history). A scheduler that cycles
    momentum (CyclicLR, OneCycleLR with their default cycle_momentum=True) is refused by AdM
    with a sentence naming cycle_momentum=False, before any parameter moves; with
    cycle_momentum=False it works."""
    kw = {"lr": 0.1} if info.optim_cls in (AdMSGD, torch.optim.SGD) else {"lr": 0.01}
    if info.optim_cls is torch.optim.SGD:
        kw["momentum"] = 0.9
    dtype = torch.float64
    m = _model(dtype=dtype)
    opt = info.optim_cls(m.parameters(), **kw)
    adm = info in ADM_DB
    if adm and name in CYCLES_MOMENTUM:
        before = [p.detach().clone() for p in m.parameters()]
        with pytest.raises(ValueError, match="cycle_momentum"):
            make(opt)
            _train(m, opt, 1)
        assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))
        opt = info.optim_cls(m.parameters(), **kw)
        make = {"CyclicLR": lambda o: L.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                                 cycle_momentum=False),
                "OneCycleLR": lambda o: L.OneCycleLR(o, 0.1, total_steps=20,
                                                     cycle_momentum=False)}[name]
    sched = make(opt)
    ref_params = [p.detach().clone() for p in m.parameters()]
    ref = _ref_for(opt, ref_params) if adm else None
    lrs = []
    for t in range(6):
        opt.zero_grad()
        loss = _loss(m, t)
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if ref is not None:
            ref.groups[0]["lr"] = lrs[-1]
            ref.step([[p.grad.clone() for p in m.parameters()]])
            for p, q in zip(m.parameters(), ref_params, strict=True):
                torch.testing.assert_close(p.detach(), q, rtol=1e-9, atol=1e-11)
        _sched_step(sched, float(loss.detach()))
    assert all(torch.isfinite(p).all() for p in m.parameters())
    if name not in ("ConstantLR", "ReduceLROnPlateau"):
        assert len(set(lrs)) > 1, "the scheduler changed nothing: the test tests nothing"


# --- hooks -----------------------------------------------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
def test_step_and_state_dict_hooks(info):
    """Step pre/post hooks, global ones and state_dict / load_state_dict pre/post hooks run,
    in order, with the optimizer."""
    oi = _inputs(info)[0]
    m = _model()
    opt = info.optim_cls(m.parameters(), **oi.kwargs)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    h = register_optimizer_step_post_hook(
        lambda o, a, k: calls.append("global-post"))
    try:
        _train(m, opt, 2)
    finally:
        h.remove()
    assert calls == ["pre", "post", "global-post"] * 2
    opt.register_state_dict_pre_hook(lambda o: calls.append("sd-pre"))
    opt.register_state_dict_post_hook(lambda o, sd: {**sd, "extra": 1})
    sd = opt.state_dict()
    assert sd["extra"] == 1 and calls[-1] == "sd-pre"
    opt2 = info.optim_cls(m.parameters(), **oi.kwargs)
    opt2.register_load_state_dict_pre_hook(lambda o, sd: {k: v for k, v in sd.items()
                                                          if k != "extra"})
    opt2.register_load_state_dict_post_hook(lambda o: calls.append("load-post"))
    opt2.load_state_dict(sd)
    assert calls[-1] == "load-post"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_load_state_dict_pre_hook_can_change_beta_prod(dtype):
    """A pre-hook's beta_prod is the one loaded (and kept at its accumulation dtype)."""
    m = _model(dtype=dtype)
    opt = AdMAdamW(m.parameters())
    _train(m, opt, 3)
    sd = opt.state_dict()

    def hook(_o, sd):
        sd = copy.deepcopy(sd)
        for st in sd["state"].values():
            st["beta_prod"] = torch.tensor(0.123456789, dtype=torch.float32)
        return sd

    opt2 = AdMAdamW(m.parameters())
    opt2.register_load_state_dict_pre_hook(hook)
    seen = []
    opt2.register_load_state_dict_post_hook(
        lambda o: seen.extend(st["beta_prod"] for st in o.state.values()))
    opt2.load_state_dict(sd)
    bs = [st["beta_prod"] for st in opt2.state.values()]
    assert len(bs) == 4 and all(b.dtype == torch.float32 and float(b) == pytest.approx(
        0.123456789, rel=1e-7) for b in bs)
    assert all(float(b) == pytest.approx(0.123456789, rel=1e-7) for b in seen)  # post-hooks too


# --- tensor lr -------------------------------------------------------------------------------


@pytest.mark.parametrize("info", ADM_DB, ids=ADM_IDS)
@pytest.mark.parametrize("foreach", [True, False])
def test_tensor_lr_after_construction_is_refused_at_step(info, foreach):
    """A tensor lr written into a group later is refused with one sentence, before any
    group steps (r_t needs the previous lr's value, which an in-place scheduler overwrites)."""
    m = _model()
    opt = info.optim_cls([{"params": m[0].parameters()}, {"params": m[2].parameters()}],
                         lr=0.1, foreach=foreach)
    _train(m, opt, 1)
    opt.param_groups[1]["lr"] = torch.tensor(0.05)
    before = [p.detach().clone() for p in m.parameters()]
    opt.zero_grad()
    _loss(m, 1).backward()
    with pytest.raises(TypeError, match=r"param group 1 has a Tensor lr; .* needs a Python float"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


# --- maximize --------------------------------------------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("foreach", [True, False])
def test_maximize_is_minimising_the_negated_objective(info, foreach):
    """maximize=True on gradients G is, bit for bit, maximize=False on −G (the model of −f),
    and it climbs: a concave objective increases."""
    for oi in _inputs(info):
        kw = {k: v for k, v in oi.kwargs.items() if k not in ("maximize", "foreach")}
        for granularity in ("global", "tensor") if info in ADM_DB else (None,):
            if granularity:
                kw["granularity"] = granularity
            a, b = _model(), _model()
            oa = info.optim_cls(a.parameters(), maximize=True, foreach=foreach, **kw)
            ob = info.optim_cls(b.parameters(), maximize=False, foreach=foreach, **kw)
            for t in range(5):
                for mm, o, sign in ((a, oa, 1.0), (b, ob, -1.0)):
                    o.zero_grad()
                    (sign * _loss(mm, t)).backward()
                    o.step()
            for p, q in zip(a.parameters(), b.parameters(), strict=True):
                assert torch.equal(p, q), (oi.desc, granularity)
            w = torch.nn.Parameter(torch.ones(4))
            o = info.optim_cls([w], maximize=True, foreach=foreach, **kw)
            vals = []
            for _ in range(10):
                o.zero_grad()
                f = -((w - 3.0) ** 2).sum()
                f.backward()
                o.step()
                vals.append(float(f))
            assert vals[-1] > vals[0], (oi.desc, granularity)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", [AdMSGD, AdMAdamW])
def test_maximize_follows_the_reference_on_negated_gradients(cls, foreach):
    """Against ALGORITHM.md's float64 transcription fed −∇f."""
    for granularity in ("global", "tensor"):
        m = _model(dtype=torch.float64)
        opt = cls(m.parameters(), lr=0.05, weight_decay=0.01, granularity=granularity,
                  maximize=True, foreach=foreach)
        ref_params = [p.detach().clone() for p in m.parameters()]
        ref = _ref_for(opt, ref_params)
        for t in range(6):
            opt.zero_grad()
            _loss(m, t).backward()
            opt.step()
            ref.step([[-p.grad for p in m.parameters()]])
            for p, q in zip(m.parameters(), ref_params, strict=True):
                torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)


# --- foreach vs for-loop ---------------------------------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_foreach_matches_for_loop(info, dtype):
    """The multi-tensor path and the single-tensor path follow the same trajectory, at both
    granularities. On AdM they sum in different orders (cache-sized pieces vs whole tensors),
    so the match is to rounding, not bitwise: tolerances a few ulps of the dtype over 12
    steps."""
    tol = {torch.float64: (1e-12, 1e-14), torch.float32: (2e-5, 1e-6)}[dtype]
    for oi in _inputs(info):
        kw = {k: v for k, v in oi.kwargs.items() if k != "foreach"}
        for granularity in ("global", "tensor") if info in ADM_DB else (None,):
            if granularity:
                kw["granularity"] = granularity
            a, b = _model(dtype=dtype), _model(dtype=dtype)
            oa = info.optim_cls(a.parameters(), foreach=True, **kw)
            ob = info.optim_cls(b.parameters(), foreach=False, **kw)
            _train(a, oa, 12)
            _train(b, ob, 12)
            for p, q in zip(a.parameters(), b.parameters(), strict=True):
                torch.testing.assert_close(p, q, rtol=tol[0], atol=tol[1])
            if info in ADM_DB:
                for x, y in zip(oa.last_betas, ob.last_betas, strict=True):
                    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


# --- state_dict ------------------------------------------------------------------------------


@pytest.mark.parametrize("info", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_state_dict_through_torch_save_weights_only(info, dtype):
    """Save mid-run with torch.save, load with torch.load(weights_only=True) into a new
    optimizer over a copy of the model: the run continues bit for bit."""
    for oi in _inputs(info)[:3]:
        for granularity in ("global", "tensor") if info in ADM_DB else (None,):
            kw = dict(oi.kwargs, **({"granularity": granularity} if granularity else {}))
            m = _model(dtype=dtype)
            opt = info.optim_cls(m.parameters(), **kw)
            _train(m, opt, 3)
            buf = io.BytesIO()
            torch.save({"model": m.state_dict(), "optim": opt.state_dict()}, buf)
            buf.seek(0)
            saved = torch.load(buf, weights_only=True)
            m2 = _model(seed=1, dtype=dtype)
            m2.load_state_dict(saved["model"])
            opt2 = info.optim_cls(m2.parameters(), **kw)
            opt2.load_state_dict(saved["optim"])
            _train(m, opt, 3, start=3)
            _train(m2, opt2, 3, start=3)
            for p, q in zip(m.parameters(), m2.parameters(), strict=True):
                assert torch.equal(p, q), (oi.desc, granularity)


# --- torch.compile ---------------------------------------------------------------------------


@pytest.mark.parametrize("info", ADM_DB, ids=ADM_IDS)
def test_compiled_step_matches_eager(info):
    """torch.compile(opt.step) runs (the step itself is a graph break, by design: its host
    bookkeeping would recompile every step) and follows the eager trajectory bit for bit."""
    import torch._dynamo

    torch._dynamo.reset()
    kw = _inputs(info)[0].kwargs
    a, b = _model(), _model()
    oa, ob = info.optim_cls(a.parameters(), **kw), info.optim_cls(b.parameters(), **kw)
    compiled = torch.compile(oa.step)
    _train(a, oa, 4, step=compiled)
    _train(b, ob, 4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    torch._dynamo.reset()
