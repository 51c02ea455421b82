"""The bundled CPU workloads: logreg-digits (quick), convex-logreg / -lsq / -quad, mlp."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from admtune.errors import SpecError
from admtune.study.context import Arm, RunRecorder
from admtune.workloads import Diverged, Pruned, TrainConfig, convex, data, get_workload, loop
from admtune.workloads.device import cpu_threads

ROOT = Path(__file__).resolve().parents[1]
CPU_WORKLOADS = ("logreg-digits", "convex-logreg", "convex-lsq", "convex-quad", "mlp")

# A tiny budget per workload: (train overrides, workload options).
TINY = {
    "logreg-digits": ({"steps": 30, "batch_size": 64}, {"eval_points": 3}),
    "convex-logreg": ({"steps": 30, "batch_size": 32}, {"eval_points": 3}),
    "convex-lsq": ({"steps": 30, "batch_size": 0}, {"eval_points": 3}),
    "convex-quad": ({"steps": 30, "batch_size": 0}, {"dim": 20, "eval_points": 3}),
    "mlp": ({"steps": 20, "batch_size": 64}, {"hidden": 32, "n_samples": 600, "eval_points": 3}),
}
LR = {"logreg-digits": 0.3, "convex-logreg": 0.05, "convex-lsq": 0.3, "convex-quad": 1.0, "mlp": 0.1}


def make_ctx(options=None, *, baseline="sgd", beta=0.9, lr=0.1, seed=0, should_prune=None,
             check_every=25, steps=None, epochs=None, batch_size=64, schedule="cosine"):
    train = TrainConfig(batch_size=batch_size, lr=lr, weight_decay=0.0, steps=steps,
                        epochs=epochs if steps is None else None, schedule=schedule)
    arm = Arm(baseline=baseline, name="tuned" if beta is not None else "adm", beta=beta, lr=lr,
              weight_decay=0.0)
    return RunRecorder(seed=seed, device=torch.device("cpu"), train=train,
                       options=dict(options or {}), arm=arm, should_prune=should_prune,
                       check_every=check_every)


def tiny_run(name, seed=0, **kw):
    train, opts = TINY[name]
    opts = {**opts, **kw.pop("options", {})}
    ctx = make_ctx(opts, seed=seed, lr=kw.pop("lr", LR[name]), **{**train, **kw})
    result = get_workload(name, opts).run(ctx)
    ctx.finish()
    return result, ctx


# -- options ------------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("logreg-digits", {"bogus": 1}, "workload.bogus"),
    ("logreg-digits", {"l2": -1.0}, "workload.l2"),
    ("logreg-digits", {"l2": "x"}, "workload.l2"),
    ("logreg-digits", {"eval_points": 0}, "workload.eval_points"),
    ("logreg-digits", {"eval_points": 2.5}, "workload.eval_points"),
    ("convex-logreg", {"l2": 0.0}, "workload.l2"),
    ("convex-logreg", {"dataset": "iris"}, "workload.dataset"),
    ("convex-lsq", {"dataset": 3}, "workload.dataset"),
    ("convex-lsq", {"l2": float("nan")}, "workload.l2"),
    ("convex-quad", {"dim": "x"}, "workload.dim"),
    ("convex-quad", {"dim": 1}, "workload.dim"),
    ("convex-quad", {"dim": True}, "workload.dim"),
    ("convex-quad", {"condition": 0.5}, "workload.condition"),
    ("convex-quad", {"noise": -0.1}, "workload.noise"),
    ("convex-quad", {"steps": 10}, "workload.steps"),
    ("mlp", {"hidden": 0}, "workload.hidden"),
    ("mlp", {"depth": "two"}, "workload.depth"),
    ("mlp", {"dataset": "mnist"}, "workload.dataset"),
    ("mlp", {"dataset": "digits", "n_samples": 500}, "workload.n_samples"),
    ("mlp", {"n_classes": 1}, "workload.n_classes"),
]


@pytest.mark.parametrize(("name", "options", "key"), BAD_OPTIONS)
def test_factory_rejects_bad_option_naming_the_key(name, options, key):
    with pytest.raises(SpecError) as info:
        get_workload(name, options)
    message = str(info.value)
    assert key in message
    assert "\n" not in message


def test_error_message_wording():
    with pytest.raises(SpecError, match=r"^workload\.dim must be an integer in \[2, 4096\], got 'x'$"):
        get_workload("convex-quad", {"dim": "x"})


@pytest.mark.parametrize("name", CPU_WORKLOADS)
def test_defaults_accepted_and_metrics_declared(name):
    w = get_workload(name, {})
    assert w.metrics and set(w.metrics.values()) <= {"minimize", "maximize"}


# -- running ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CPU_WORKLOADS)
def test_tiny_run_returns_every_metric_on_both_splits(name):
    result, ctx = tiny_run(name)
    w = get_workload(name, TINY[name][1])
    assert set(result.validation) == set(w.metrics) == set(result.test)
    assert all(math.isfinite(v) for v in [*result.validation.values(), *result.test.values()])
    assert result.steps == TINY[name][0]["steps"]
    # evaluation points: 0-based steps like the engine, the last one at the last step
    assert ctx.val_steps == sorted(ctx.val_steps) and ctx.val_steps[-1] == result.steps - 1
    assert len(ctx.val_steps) == 3
    assert len(ctx.curve()["train_loss"]) == result.steps
    if name.startswith("convex"):
        assert result.validation == result.test  # same objective by design


@pytest.mark.parametrize("name", CPU_WORKLOADS)
def test_same_seed_identical_other_seed_different(name):
    a, ctx_a = tiny_run(name, seed=3)
    b, ctx_b = tiny_run(name, seed=3)
    c, ctx_c = tiny_run(name, seed=4)
    assert a.validation == b.validation and a.test == b.test
    assert ctx_a.curve() == ctx_b.curve()
    assert a.validation != c.validation
    assert ctx_a.curve()["train_loss"][0] != ctx_c.curve()["train_loss"][0]


def test_seed_fixes_order_not_data():
    """Two seeds see the same split; with a zero init, only the minibatch order differs."""
    splits = convex._digits_splits()
    assert [len(y) for _, y in splits] == [1078, 359, 360]
    assert splits[0][0].mean(0).abs().max() < 1e-12  # standardised with train statistics
    a, _ = tiny_run("logreg-digits", seed=1, options={"init_scale": 0.0})
    b, _ = tiny_run("logreg-digits", seed=2, options={"init_scale": 0.0})
    full_a, _ = tiny_run("logreg-digits", seed=1, options={"init_scale": 0.0}, batch_size=0)
    full_b, _ = tiny_run("logreg-digits", seed=2, options={"init_scale": 0.0}, batch_size=0)
    assert a.validation != b.validation
    assert full_a.validation == full_b.validation


def test_batch_order_and_budget():
    g = torch.Generator().manual_seed(0)
    order = data.batch_order(10, 4, 5, g)
    assert order.shape == (5, 4)
    flat = order.reshape(-1)
    assert sorted(flat[:10].tolist()) == list(range(10))
    assert sorted(flat[10:].tolist()) == list(range(10))
    assert data.batch_order(10, 10, 3, g) is None
    full = make_ctx(batch_size=0, epochs=7)
    assert data.budget(full, 100) == (100, 7)
    big = make_ctx(batch_size=500, epochs=7)
    assert data.budget(big, 100) == (100, 7)
    mini = make_ctx(batch_size=32, epochs=2)
    assert data.budget(mini, 100) == (32, math.ceil(2 * 100 / 32))
    assert loop.eval_steps(7, 10) == list(range(1, 8))
    assert loop.eval_steps(100, 4) == [25, 50, 75, 100]


def test_cpu_threads_restored():
    before = torch.get_num_threads()
    with cpu_threads("cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# -- convex: f* -----------------------------------------------------------------------------------
def _grad_norm(prob, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(prob.objective(x), x)
    return float(g.norm())


@pytest.mark.parametrize("l2", [1e-3, 1e-5])
def test_logreg_f_star_is_the_minimum(l2):
    from scipy.optimize import minimize

    prob = convex.logreg_problem("breast_cancer", l2)
    # f is l2-strongly convex: f(x*) − min f ≤ ‖∇f(x*)‖² / (2·l2), far below rounding here
    gnorm = _grad_norm(prob, prob.x_star)
    assert gnorm**2 / (2 * l2) < 1e-18
    # and an independent solver finds nothing lower
    shape = prob.shape

    def fg(v):
        x = torch.tensor(v.reshape(shape), requires_grad=True)
        f = prob.objective(x)
        (g,) = torch.autograd.grad(f, x)
        return float(f.detach()), g.numpy().ravel()

    with cpu_threads("cpu"):
        res = minimize(fg, np.zeros(int(np.prod(shape))), jac=True, method="L-BFGS-B",
                       options={"maxiter": 400, "gtol": 1e-10, "ftol": 0.0})
    assert res.fun >= prob.f_star - 1e-15
    assert res.fun - prob.f_star < (1e-8 if l2 >= 1e-3 else 1e-4)


def test_lsq_f_star_matches_normal_equations():
    prob = convex.lsq_problem("diabetes", 0.0)
    x, y = prob.x_data.numpy(), prob.y_data.numpy()
    w = np.linalg.solve(x.T @ x, x.T @ y)
    assert np.allclose(prob.x_star.numpy(), w, atol=1e-9)
    assert _grad_norm(prob, prob.x_star) < 1e-12
    ridge = convex.lsq_problem("diabetes", 0.1)
    assert _grad_norm(ridge, ridge.x_star) < 1e-12 and ridge.f_star > prob.f_star


def test_quad_problem_spectrum():
    prob = convex.quad_problem(30, 1e4)
    lam = torch.linalg.eigvalsh(prob.a)
    assert lam.max().item() == pytest.approx(1.0, rel=1e-10)
    assert (lam.max() / lam.min()).item() == pytest.approx(1e4, rel=1e-8)
    assert prob.f_star == 0.0 and prob.objective(prob.x_star).item() == 0.0
    assert convex.quad_problem(30, 1e4) is prob  # cached


@pytest.mark.parametrize("name", ["convex-logreg", "convex-lsq", "convex-quad"])
def test_suboptimality_nonnegative_along_a_run(name):
    """Report f itself (ctx.metric = "loss") at every step: never below f*."""
    train, opts = TINY[name]
    opts = {**opts, "eval_points": 30}
    ctx = make_ctx(opts, lr=LR[name], **train)
    ctx.metric = "loss"
    w = get_workload(name, opts)
    result = w.run(ctx)
    prob = w.problem()
    f = np.array(ctx.val_values)
    assert len(f) == 30
    assert (f - prob.f_star >= -1e-15 * max(1.0, abs(prob.f_star))).all()
    assert f[-1] < f[0]  # it trains
    expected = math.log10(max(result.validation["loss"] - prob.f_star,
                              convex.SUBOPT_FLOOR * max(1.0, abs(prob.f_star))))
    assert result.validation["log10_subopt"] == pytest.approx(expected)


def test_subopt_floor_makes_log_finite():
    prob = convex.quad_problem(20, 1e3)
    assert math.log10(prob.subopt(0.0)) == pytest.approx(-16)


def test_quad_gradient_noise_is_seeded():
    a, _ = tiny_run("convex-quad", seed=5)
    n1, _ = tiny_run("convex-quad", seed=5, options={"noise": 0.1})
    n2, _ = tiny_run("convex-quad", seed=5, options={"noise": 0.1})
    assert n1.validation == n2.validation
    assert n1.validation != a.validation


def test_convex_runs_reach_high_precision():
    """float64 end to end: a long well-tuned full-batch run goes far below float32 precision."""
    ctx = make_ctx({"dim": 20, "condition": 10.0}, lr=1.0, steps=400, batch_size=0,
                   schedule="constant")
    result = get_workload("convex-quad", {"dim": 20, "condition": 10.0}).run(ctx)
    assert result.validation["log10_subopt"] < -12


# -- divergence and pruning ---------------------------------------------------------------------
HUGE_LR = {"logreg-digits": 1e40, "convex-logreg": 1e40, "convex-lsq": 1e3, "convex-quad": 1e3,
           "mlp": 1e4}


@pytest.mark.parametrize("name", CPU_WORKLOADS)
@pytest.mark.parametrize("check_every", [25, 10**9])
def test_huge_lr_raises_diverged(name, check_every):
    """Diverged, never a NaN result, even when the context never checks the loss itself."""
    train, opts = TINY[name]
    ctx = make_ctx(opts, lr=HUGE_LR[name], check_every=check_every, **{**train, "steps": 40})
    with pytest.raises(Diverged):
        get_workload(name, opts).run(ctx)


@pytest.mark.parametrize("name", CPU_WORKLOADS)
def test_pruned_propagates_from_report(name):
    train, opts = TINY[name]
    seen = []

    def should_prune(step, value):
        seen.append(step)
        return True

    ctx = make_ctx(opts, lr=LR[name], should_prune=should_prune, **train)
    with pytest.raises(Pruned):
        get_workload(name, opts).run(ctx)
    assert seen == [ctx.val_steps[0]] and len(ctx.val_steps) == 1
    assert ctx.last_step == seen[0] < train["steps"] - 1


def test_report_uses_the_context_metric_when_named():
    ctx = make_ctx({"eval_points": 2}, lr=0.3, steps=10)
    ctx.metric = "accuracy"
    get_workload("logreg-digits", {"eval_points": 2}).run(ctx)
    assert all(v > 1.0 for v in ctx.val_values)  # percent, not a cross-entropy


@pytest.mark.parametrize("baseline", ["sgd", "adamw"])
@pytest.mark.parametrize("name", CPU_WORKLOADS)
def test_adm_smoke(name, baseline):
    """AdM arms (β = None) run every CPU workload, float64 ones included, and record β_t."""
    optim = pytest.importorskip("admtune.optim")
    if not hasattr(optim, "AdMSGD") or not hasattr(optim, "AdMAdamW"):
        pytest.skip("admtune.optim has no AdM optimizers yet")
    train, opts = TINY[name]
    lr = LR[name] if baseline == "sgd" else 0.01
    ctx = make_ctx(opts, baseline=baseline, beta=None, lr=lr, **train)
    result = get_workload(name, opts).run(ctx)
    ctx.finish()
    assert all(math.isfinite(v) for v in result.validation.values())
    assert ctx.beta_trace() is not None


# -- the study specs -----------------------------------------------------------------------------
SPECS = ["quick", "convex-logreg", "convex-lsq", "convex-quad", "mlp"]


@pytest.mark.parametrize("spec_name", SPECS)
def test_study_spec_is_valid_for_its_workload(spec_name):
    from admtune.study import spec as specmod

    path = ROOT / "studies" / f"{spec_name}.toml"
    s = specmod.load(str(path))
    assert s.name == spec_name
    w = get_workload(s.workload, s.workload_options)
    assert w.metrics[s.metric] == s.direction
    assert set(s.baselines) == {"sgd", "adamw"}
