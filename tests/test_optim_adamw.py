"""AdMAdamW: oracles 3-5 of ALGORITHM.md, the spec reference, edge cases, dtypes, compile."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch

from admtune.optim import AdMAdamW
from tests.test_optim_reference import RefAdMAdamW
from tests.test_optim_sgd import grad_seq, make_params, no_host_sync, pieces  # noqa: F401


def ref_groups(params, granularity, **over):
    base = dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, lam=0.1,
                granularity=granularity)
    return {**base, "params": params, **over}


# --- the spec reference, adaptive β --------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("reduce_mode", [None, "dot", "sumsq"])
def test_matches_spec_reference(granularity, foreach, reduce_mode, pieces):  # noqa: F811
    """Adaptive β, two groups (own lr, weight decay, β2), an lr schedule with a zero step and
    a change, a parameter without gradient on some steps (so per-tensor step counts and B
    differ): AdMAdamW follows the float64 transcription of the spec."""
    ps = make_params()
    groups = [
        {"params": ps[:3], "lr": 0.01},
        {"params": ps[3:], "lr": 0.02, "weight_decay": 0.1, "betas": (0.8, 0.99)},
    ]
    opt = AdMAdamW(groups, granularity=granularity, foreach=foreach)
    knobs = dict(_reduce_mode=reduce_mode, **pieces)
    rp = [p.detach().clone() for p in ps]
    ref = RefAdMAdamW([
        ref_groups(rp[:3], granularity, lr=0.01),
        ref_groups(rp[3:], granularity, lr=0.02, weight_decay=0.1, betas=(0.8, 0.99)),
    ])
    lrs = [1.0, 1.0, 0.5, 0.5, 0.0, 0.25, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
    osc = grad_seq(1, seed=5)[0]
    seen = []
    for t, gs in enumerate(grad_seq(len(lrs))):
        # oscillating gradients (overshoot), so that β leaves β_max
        gs = [(-1) ** t * b + 0.5 * g for b, g in zip(osc, gs, strict=True)]
        if t in (0, 3, 7):
            gs[1] = None  # tensor 1 starts late and skips steps
        for grp, rgrp, base in zip(opt.param_groups, ref.groups, (0.01, 0.02), strict=True):
            grp["lr"] = rgrp["lr"] = base * lrs[t]
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step(**knobs)
        want = ref.step([gs[:3], gs[3:]])
        for p, q in zip(ps, rp, strict=True):
            torch.testing.assert_close(p.detach(), q, rtol=1e-9, atol=1e-12)
        for got, exp in zip(opt.last_betas, want, strict=True):
            torch.testing.assert_close(
                got, torch.tensor(exp, dtype=torch.float32), equal_nan=True, rtol=1e-6, atol=1e-7
            )
        seen += [b for b in torch.cat(opt.last_betas).tolist() if not math.isnan(b)]
    assert any(0.0 < b < 0.79 for b in seen)  # the adaptive β is really adaptive here


# --- oracle 3: λ = 0 and β forced to β_max reproduce torch's AdamW ----------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
def test_oracle3_forced_beta_max_is_torch_adamw(granularity, foreach, pieces):  # noqa: F811
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    net2 = copy.deepcopy(net)

    def groups(m):
        return [
            {"params": m[0].parameters(), "lr": 3e-3, "weight_decay": 0.0},
            {"params": m[2].parameters(), "lr": 1e-3, "weight_decay": 0.1, "betas": (0.9, 0.99)},
        ]

    adm = AdMAdamW(groups(net), lam=0.0, granularity=granularity, foreach=foreach)
    knobs = dict(_force_beta=0.9, **pieces)  # = β_max of both groups
    ref = torch.optim.AdamW(groups(net2))
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


# --- oracle 4: state_dict round trip --------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_oracle4_state_dict_round_trip(granularity, foreach, dtype):
    ps = make_params(dtype)

    def build(params):
        return AdMAdamW([{"params": params[:2]}, {"params": params[2:], "weight_decay": 0.1}],
                        lr=1e-2, granularity=granularity, foreach=foreach)

    opt = build(ps)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)
    seq = grad_seq(10, dtype)
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
    opt2 = build(ps2)
    opt2.load_state_dict(saved["opt"])
    sched2 = torch.optim.lr_scheduler.ExponentialLR(opt2, gamma=0.8)
    sched2.load_state_dict(saved["sched"])
    assert all(opt2.state[p]["beta_prod"].dtype == torch.float32 for p in ps2)
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


def test_first_step_reports_beta_max_and_matches_reference():
    ps = make_params()
    rp = [p.detach().clone() for p in ps]
    opt = AdMAdamW(ps, lr=0.01)
    ref = RefAdMAdamW([ref_groups(rp, "tensor")])
    gs = grad_seq(1)[0]
    for p, g in zip(ps, gs, strict=True):
        p.grad = g
    opt.step()
    ref.step([gs])
    assert opt.last_betas[0].tolist() == pytest.approx([0.9] * len(ps))
    for p, q in zip(ps, rp, strict=True):
        torch.testing.assert_close(p.detach(), q, rtol=1e-12, atol=1e-14)
        assert float(opt.state[p]["beta_prod"]) == pytest.approx(0.9)


def test_d_equals_g_gives_beta_zero_and_resets_the_product():
    """Σ(d − g)² m = 0: β = 0 and B ← 0 (exact, since then d_{t+1} = g)."""
    w = torch.nn.Parameter(torch.zeros(8, dtype=torch.float64))
    opt = AdMAdamW([w], lr=0.01, weight_decay=0.0)
    g = torch.linspace(-1, 1, 8, dtype=torch.float64)
    w.grad = g.clone()
    opt.step()
    opt.state[w]["exp_avg"].copy_(g)  # make d equal to the next gradient
    w.grad = g.clone()
    opt.step()
    assert opt.last_betas[0].tolist() == [0.0]
    assert float(opt.state[w]["beta_prod"]) == 0.0
    torch.testing.assert_close(opt.state[w]["exp_avg"], g)


def test_zero_lr_freezes_params_including_weight_decay():
    ps = make_params()
    rp = [p.detach().clone() for p in ps]
    opt = AdMAdamW(ps, lr=0.01, weight_decay=0.1)
    ref = RefAdMAdamW([ref_groups(rp, "tensor", weight_decay=0.1)])
    for t, gs in enumerate(grad_seq(5)):
        lr = 0.0 if t == 2 else 0.01
        opt.param_groups[0]["lr"] = ref.groups[0]["lr"] = lr
        before = [p.detach().clone() for p in ps]
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        opt.step()
        ref.step([gs])
        if lr == 0.0:
            assert all(torch.equal(p, b) for p, b in zip(ps, before, strict=True))
        for p, q in zip(ps, rp, strict=True):
            torch.testing.assert_close(p.detach(), q, rtol=1e-10, atol=1e-12)


def test_not_loss_scale_invariant():
    """Documented behaviour: scaling the loss changes AdM-AdamW's trajectory (λP carries
    gradient units), while torch's AdamW is (nearly) invariant."""
    def run(opt_cls, scale, **kw):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(20))
        o = opt_cls([w], lr=0.05, weight_decay=0.0, **kw)
        for t in range(6):
            o.zero_grad()
            (scale * ((w - t * 0.1) ** 2).sum()).backward()
            o.step()
        return w.detach()

    torch.testing.assert_close(run(torch.optim.AdamW, 1.0), run(torch.optim.AdamW, 100.0),
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(run(AdMAdamW, 1.0), run(AdMAdamW, 100.0), rtol=1e-3, atol=1e-4)


# --- oracle 5: no host synchronisation ------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["global", "tensor"])
@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("reduce_mode", [None, "sumsq"])
def test_oracle5_step_never_reads_tensor_values(granularity, foreach, reduce_mode, pieces):  # noqa: F811
    ps = make_params(torch.float32)
    opt = AdMAdamW([{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.1}], lr=1e-2,
                   granularity=granularity, foreach=foreach)
    knobs = dict(_reduce_mode=reduce_mode, **pieces)
    sched = torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)
    for t, gs in enumerate(grad_seq(5, torch.float32)):
        if t in (0, 3):
            gs[0] = None
        for p, g in zip(ps, gs, strict=True):
            p.grad = g
        with no_host_sync():
            opt.step(**knobs)
        sched.step()
        assert all(isinstance(b, torch.Tensor) and b.device == ps[0].device
                   for b in opt.last_betas)
        assert [b.shape for b in opt.last_betas] == (
            [(2,), (3,)] if granularity == "tensor" else [(1,), (1,)]
        )


# --- arguments and unsupported inputs ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1e-3}, r"lr must be a number in \[0, inf\)"),
        ({"betas": (1.0, 0.999)}, r"betas\[0\] \(beta_max\) must be a number in \[0, 1\)"),
        ({"betas": (0.9, 1.0)}, r"betas\[1\] \(beta2\) must be a number in \[0, 1\)"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"eps": -1e-8}, r"eps must be a number in \[0, inf\)"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"lam": -1.0}, "lam"),
        ({"granularity": "param"}, "granularity"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdMAdamW(make_params(), **kwargs)


def test_sparse_and_complex_gradients_raise():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        AdMAdamW(emb.parameters()).step()
    z = torch.nn.Parameter(torch.randn(4, dtype=torch.complex64))
    z.grad = torch.randn(4, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match="complex"):
        AdMAdamW([z]).step()


# --- dtypes, state, compile -----------------------------------------------------------------------


def test_state_memory_is_adamws_plus_scalars():
    ps = make_params(torch.float32)
    opt = AdMAdamW(ps)
    for p, g in zip(ps, grad_seq(1, torch.float32)[0], strict=True):
        p.grad = g
    opt.step()
    for p in ps:
        st = opt.state[p]
        big = [k for k, v in st.items() if isinstance(v, torch.Tensor) and v.numel() > 1]
        assert sorted(big) == ["exp_avg", "exp_avg_sq_sqrt"] or p.numel() == 1
        assert st["beta_prod"].numel() == 1 and isinstance(st["step"], int)


@pytest.mark.parametrize("granularity", ["global", "tensor"])
def test_bf16_params_track_fp32(granularity, pieces):  # noqa: F811
    p32 = make_params(torch.float32)
    p16 = [torch.nn.Parameter(p.detach().to(torch.bfloat16)) for p in p32]
    o32 = AdMAdamW(p32, lr=1e-2, granularity=granularity)
    o16 = AdMAdamW(p16, lr=1e-2, granularity=granularity)
    for gs in grad_seq(6, torch.float32):
        for a, b, g in zip(p32, p16, gs, strict=True):
            a.grad, b.grad = g, g.to(torch.bfloat16)
        o32.step()
        o16.step()
        torch.testing.assert_close(torch.cat(o16.last_betas), torch.cat(o32.last_betas),
                                   atol=0.05, rtol=0.0)
    for a, b in zip(p32, p16, strict=True):
        torch.testing.assert_close(b.float(), a.detach(), atol=0.05, rtol=0.02)
        assert o16.state[b]["exp_avg"].dtype == torch.bfloat16
        assert o16.state[b]["beta_prod"].dtype == torch.float32


def test_compiled_training_step_matches_eager():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    net2 = copy.deepcopy(net)
    o1, o2 = AdMAdamW(net.parameters(), lr=1e-2), AdMAdamW(net2.parameters(), lr=1e-2)
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
