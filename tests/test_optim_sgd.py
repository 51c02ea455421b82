"""AdMSGD: oracles 3-5 of ALGORITHM.md, the spec reference, edge cases, dtypes, compile."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import pytest
import torch

import admtune.optim._foreach as fe_mod
from admtune.optim import AdMSGD
from tests.test_optim_reference import RefAdMSGD

SHAPES = [(37,), (8, 9), (200,), (3, 4, 5), (1,)]


def make_params(dtype=torch.float64, seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]


def grad_seq(steps, dtype=torch.float64, seed=1, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        out.append([torch.randn(s, generator=gen, dtype=dtype) for s in shapes])
    return out


@pytest.fixture(params=["default", "tiny-pieces", "accelerator-strategy"])
def pieces(request, monkeypatch):
    """Also run with tiny pieces (chunked tensors, shared buckets, per-piece sums), and with
    the strategy used on accelerators (multi-tensor reductions, big ordered buckets, fast
    one-coefficient paths), here with small buckets so that tensors are chunked too. Returns
    the private step arguments that select it (the single-tensor path ignores all of this)."""
    if request.param == "tiny-pieces":
        monkeypatch.setattr(fe_mod, "CPU_CHUNK", 64)
        monkeypatch.setattr(fe_mod, "SGD_CPU_CHUNK", 64)
        monkeypatch.setattr(fe_mod, "CPU_SMALL", 16)
    elif request.param == "accelerator-strategy":
        monkeypatch.setattr(fe_mod, "DEVICE_BUCKET", 100)
        return {"_strategy": "accelerator"}
    return {}


@contextlib.contextmanager
def no_host_sync():
    """Fail on any Python-level read of a tensor's value (what a host sync needs)."""

    def boom(*args, **kwargs):
        raise AssertionError("host read of a tensor value inside step()")

    names = ["item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy"]
    saved = {n: getattr(torch.Tensor, n) for n in names}
    try:
        for n in names:
            setattr(torch.Tensor, n, boom)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


# --- the spec reference, adaptive β --------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("reduce_mode", [None, "dot", "sumsq"])
def test_matches_spec_reference(granularity, foreach, reduce_mode, pieces):
    """Adaptive β, two groups, weight decay, an lr schedule with a zero step, a parameter
    without gradient on some steps: AdMSGD follows the float64 transcription of the spec."""
    ps = make_params()
    groups = [
        {"params": ps[:3], "lr": 0.1},
        {"params": ps[3:], "lr": 0.05, "weight_decay": 0.01},
    ]
    opt = AdMSGD(groups, lr=0.1, granularity=granularity, foreach=foreach)
    knobs = dict(_reduce_mode=reduce_mode, **pieces)
    ref_params = [p.detach().clone() for p in ps]
    ref = RefAdMSGD([
        dict(params=ref_params[:3], lr=0.1, weight_decay=0.0, lam=0.1, beta_max=0.9,
             granularity=granularity),
        dict(params=ref_params[3:], lr=0.05, weight_decay=0.01, lam=0.1, beta_max=0.9,
             granularity=granularity),
    ])
    lrs = [1.0, 1.0, 0.5, 0.5, 0.0, 0.25, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    for t, gs in enumerate(grad_seq(len(lrs))):
        if t in (0, 3, 7):
            gs[1] = None  # tensor 1 starts late and skips steps
        for grp, rgrp, base in zip(opt.param_groups, ref.groups, (0.1, 0.05), strict=True):
            grp["lr"] = rgrp["lr"] = base * lrs[t]
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step(**knobs)
        want = ref.step([gs[:3], gs[3:]])
        for p, q in zip(ps, ref_params, strict=True):
            torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)
        for got, exp in zip(opt.last_betas, want, strict=True):
            torch.testing.assert_close(
                got, torch.tensor(exp, dtype=torch.float32), equal_nan=True, rtol=1e-6, atol=1e-7
            )
    # the adaptive β is really adaptive here (neither clipped end everywhere)
    assert any(0.0 < b < 0.9 for b in torch.cat(opt.last_betas).tolist() if not math.isnan(b))


# --- oracle 3: λ = 0 and a forced β reproduce torch's SGD -------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
def test_oracle3_forced_beta_is_torch_sgd(granularity, foreach, pieces):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    net2 = copy.deepcopy(net)
    beta = 0.8

    def groups(m):
        return [
            {"params": m[0].parameters(), "lr": 0.1},
            {"params": m[2].parameters(), "lr": 0.03, "weight_decay": 1e-2},
        ]

    adm = AdMSGD(groups(net), lr=0.1, lam=0.0, granularity=granularity, foreach=foreach)
    knobs = dict(_force_beta=beta, **pieces)
    ref = torch.optim.SGD(groups(net2), lr=0.1, momentum=beta, dampening=beta)
    scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (adm, ref)]
    x, y = torch.randn(64, 6), torch.randn(64, 3)
    for _ in range(10):
        for m, o in ((net, adm), (net2, ref)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x), y).backward()
            o.step(**(knobs if o is adm else {}))
        for s in scheds:
            s.step()
        for p, q in zip(net.parameters(), net2.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert all(float(b.max()) == pytest.approx(beta) for b in adm.last_betas)


# --- oracle 4: state_dict round trip --------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
def test_oracle4_state_dict_round_trip(granularity, foreach):
    ps = make_params(torch.float32)
    opt = AdMSGD([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 1e-3}], lr=0.1,
                 granularity=granularity, foreach=foreach)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    seq = grad_seq(10, torch.float32)
    for gs in seq[:5]:
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(),
                "params": [p.detach() for p in ps]}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ps2 = [torch.nn.Parameter(t.clone()) for t in saved["params"]]
    opt2 = AdMSGD([{"params": ps2[:2]}, {"params": ps2[2:], "weight_decay": 1e-3}], lr=0.1,
                  granularity=granularity, foreach=foreach)
    opt2.load_state_dict(saved["opt"])
    sched2 = torch.optim.lr_scheduler.ExponentialLR(opt2, gamma=0.8)
    sched2.load_state_dict(saved["sched"])
    for gs in seq[5:]:
        for o, s, pl in ((opt, sched, ps), (opt2, sched2, ps2)):
            for p, g in zip(pl, gs, strict=True):
                p.grad = g.clone()
            o.step()
            s.step()
        for p, q in zip(ps, ps2, strict=True):
            assert torch.equal(p, q)
        for a, b in zip(opt.last_betas, opt2.last_betas, strict=True):
            assert torch.equal(a, b)


# --- edge cases -----------------------------------------------------------------------------------


def test_first_step_is_gradient_step_and_reports_zero():
    ps = make_params(torch.float32)
    x0 = [p.detach().clone() for p in ps]
    gs = grad_seq(1, torch.float32)[0]
    opt = AdMSGD(ps, lr=0.1)
    for p, g in zip(ps, gs, strict=True):
        p.grad = g
    opt.step()
    for p, x, g in zip(ps, x0, gs, strict=True):
        torch.testing.assert_close(p.detach(), x - 0.1 * g)
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], g)
    assert opt.last_betas[0].tolist() == [0.0]


@pytest.mark.parametrize("granularity", ["global", "tensor"])
def test_constant_gradient_d_equals_g(granularity):
    """d = g exactly (a linear loss): β = 0 by convention at every step, the step is g."""
    w = torch.nn.Parameter(torch.zeros(50))
    c = torch.linspace(-1, 1, 50)
    opt = AdMSGD([w], lr=0.1, granularity=granularity)
    for t in range(1, 5):
        opt.zero_grad()
        (c * w).sum().backward()
        opt.step()
        assert opt.last_betas[0].tolist() == [0.0]
        torch.testing.assert_close(w.detach(), -0.1 * t * c)


def test_zero_gradient_tensor_gets_beta_zero():
    ps = make_params(torch.float32, shapes=[(10,), (10,)])
    opt = AdMSGD(ps, lr=0.1, granularity="tensor")
    gs = grad_seq(3, torch.float32, shapes=[(10,), (10,)])
    for t, g in enumerate(gs):
        if t == 2:
            g[0] = torch.zeros(10)
        for p, gg in zip(ps, g, strict=True):
            p.grad = gg
        opt.step()
    assert float(opt.last_betas[0][0]) == 0.0


def test_zero_lr_freezes_params_and_next_ratio_is_zero():
    ps = make_params()
    ref_params = [p.detach().clone() for p in ps]
    opt = AdMSGD(ps, lr=0.1, granularity="tensor")
    ref = RefAdMSGD([dict(params=ref_params, lr=0.1, weight_decay=0.0, lam=0.1, beta_max=0.9,
                          granularity="tensor")])
    for t, gs in enumerate(grad_seq(5)):
        lr = 0.0 if t == 2 else 0.1
        opt.param_groups[0]["lr"] = ref.groups[0]["lr"] = lr
        before = [p.detach().clone() for p in ps]
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step()
        ref.step([gs])
        if lr == 0.0:
            assert all(torch.equal(p, b) for p, b in zip(ps, before, strict=True))
        for p, q in zip(ps, ref_params, strict=True):
            torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)
    assert all(opt.state[p]["prev_lr"] == 0.1 for p in ps)


# --- last_betas -----------------------------------------------------------------------------------


def test_last_betas_layout_and_freshness():
    ps = make_params(torch.float32)
    opt = AdMSGD([{"params": ps[:2]}, {"params": ps[2:], "granularity": "tensor"}], lr=0.1)
    assert opt.last_betas == []
    prev = None
    for t, gs in enumerate(grad_seq(4, torch.float32)):
        if t == 3:
            gs[3] = None
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step()
        b0, b1 = opt.last_betas
        assert b0.shape == (1,) and b1.shape == (3,)
        assert b0.dtype == b1.dtype == torch.float32
        assert b0.device == b1.device == ps[0].device
        if prev is not None:
            snapshot = [b.clone() for b in prev]
            assert all(a is not b for a, b in zip(prev, opt.last_betas, strict=True))
            assert all(torch.equal(a, b) for a, b in zip(prev, snapshot, strict=True))
        prev = opt.last_betas
        if t == 3:
            assert math.isnan(float(b1[1])) and not math.isnan(float(b1[0]))
    torch.stack([torch.cat(opt.last_betas)] * 2)  # the study engine stacks them


def test_group_without_gradients_reports_nan():
    ps = make_params(torch.float32)
    opt = AdMSGD([{"params": ps[:2]}, {"params": ps[2:], "granularity": "tensor"}], lr=0.1)
    ps[0].grad = torch.ones_like(ps[0])
    opt.step()
    assert opt.last_betas[0].tolist() == [0.0]
    assert all(math.isnan(b) for b in opt.last_betas[1].tolist())


# --- oracle 5: no host synchronisation ------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("reduce_mode", [None, "sumsq"])
def test_oracle5_step_never_reads_tensor_values(granularity, foreach, reduce_mode, pieces):
    ps = make_params(torch.float32)
    opt = AdMSGD([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 1e-2}], lr=0.1,
                 granularity=granularity, foreach=foreach)
    knobs = dict(_reduce_mode=reduce_mode, **pieces)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    for t, gs in enumerate(grad_seq(5, torch.float32)):
        if t == 3:
            gs[0] = None
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        with no_host_sync():
            opt.step(**knobs)
        sched.step()
        assert all(isinstance(b, torch.Tensor) and b.device == ps[0].device
                   for b in opt.last_betas)


# --- arguments and unsupported inputs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -0.1}, r"lr must be a number in \[0, inf\)"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": torch.tensor(0.1)}, "lr"),
        ({"weight_decay": -1.0}, r"weight_decay must be a number in \[0, inf\)"),
        ({"lam": -0.5}, r"lam must be a number in \[0, inf\)"),
        ({"lam": float("inf")}, "lam"),
        ({"beta_max": 1.0}, r"beta_max must be a number in \[0, 1\)"),
        ({"beta_max": -0.1}, "beta_max"),
        ({"granularity": "layer"}, "granularity must be one of 'global', 'tensor'"),
        ({"foreach": "yes"}, "foreach must be one of None, True, False"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        AdMSGD(make_params(), **args)


def test_invalid_param_group_override():
    opt = AdMSGD(make_params()[:1], lr=0.1)
    with pytest.raises(ValueError, match="beta_max"):
        opt.add_param_group({"params": make_params()[1:2], "beta_max": 2.0})


def test_sparse_and_complex_gradients_raise():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        AdMSGD(emb.parameters(), lr=0.1).step()
    z = torch.nn.Parameter(torch.randn(4, dtype=torch.complex64))
    z.grad = torch.randn(4, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="complex"):
        AdMSGD([z], lr=0.1).step()


# --- dtypes, devices, compile ---------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
def test_bf16_params_track_fp32(granularity, pieces):
    p32 = make_params(torch.float32)
    p16 = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in p32]
    o32 = AdMSGD(p32, lr=0.05, granularity=granularity, weight_decay=1e-3)
    o16 = AdMSGD(p16, lr=0.05, granularity=granularity, weight_decay=1e-3)
    for gs in grad_seq(6, torch.float32):
        for a, b, g in zip(p32, p16, gs, strict=True):
            a.grad, b.grad = g, g.to(torch.bfloat16)
        o32.step()
        o16.step()
        torch.testing.assert_close(torch.cat(o16.last_betas), torch.cat(o32.last_betas),
                                   atol=0.05, rtol=0.0)
    for a, b in zip(p32, p16, strict=True):
        torch.testing.assert_close(b.float(), a.detach(), atol=0.05, rtol=0.02)
        assert o16.state[b]["momentum_buffer"].dtype == torch.bfloat16
    assert all(b.dtype == torch.float32 for b in o16.last_betas)


def test_mixed_dtypes_in_one_group_match_reference():
    ps = make_params(torch.float64)
    ps[1] = torch.nn.Parameter(ps[1].detach().float())
    ref_params = [p.detach().double().clone() for p in ps]
    opt = AdMSGD(ps, lr=0.1)
    ref = RefAdMSGD([dict(params=ref_params, lr=0.1, weight_decay=0.0, lam=0.1, beta_max=0.9,
                          granularity="global")])
    for gs in grad_seq(5):
        for p, g in zip(ps, gs, strict=True):
            p.grad = g.to(p.dtype)
        opt.step()
        ref.step([[g.to(p.dtype).double() for p, g in zip(ps, gs, strict=True)]])
    for p, q in zip(ps, ref_params, strict=True):
        torch.testing.assert_close(p.detach().double(), q, rtol=1e-5, atol=1e-6)


def test_compiled_training_step_matches_eager():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    net2 = copy.deepcopy(net)
    o1, o2 = AdMSGD(net.parameters(), lr=0.05), AdMSGD(net2.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def train_step(model, opt):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    compiled = torch.compile(train_step, backend="eager")
    for _ in range(4):
        compiled(net, o1)
        train_step(net2, o2)
    for p, q in zip(net.parameters(), net2.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    torch.testing.assert_close(o1.last_betas[0], o2.last_betas[0])


def test_closure_and_deepcopy():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    opt = AdMSGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss.detach()) > 0  # the closure's loss is returned
    clone = copy.deepcopy(opt)
    assert clone.last_betas == []
    clone_w = clone.param_groups[0]["params"][0]
    clone_w.grad = w.grad.clone()
    clone.step()
    opt.step()
    assert torch.equal(w, clone_w)
