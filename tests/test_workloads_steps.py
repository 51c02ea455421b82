"""Step numbering of every bundled workload, through the engine's RunRecorder.

The engine records ``last_step + 1`` updates for a run that stops early (diverged, pruned, failed),
so every workload must number its updates 0 … total − 1 in ``ctx.log_step`` and ``ctx.report``.
CIFAR (generated images) and the LM (a small slice of the stdlib corpus) run on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from admtune.study.context import Arm, RunRecorder
from admtune.workloads import BUNDLED, Diverged, TrainConfig, get_workload
from tests.fake_cifar import write_fake_cifar

TOTAL = 3  # updates per run in the numbering test


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> str:
    return str(write_fake_cifar(tmp_path_factory.mktemp("c10"), n_train=192, n_test=32))


@pytest.fixture(scope="module")
def cifar100_dir(tmp_path_factory) -> str:
    return str(write_fake_cifar(tmp_path_factory.mktemp("c100"), n_train=192, n_test=32,
                                classes=100))


LM = {"max_bytes": 60_000, "n_layer": 1, "n_head": 2, "d_model": 32, "context": 32,
      "eval_batches": 2}
CIFAR = {"width": 0.0625, "val_size": 64, "n_train": 64, "tta": False}


def setup(name: str, data: dict[str, str]) -> tuple[dict, dict]:
    """(workload options, train overrides) for a run that validates after every one of its
    ``TOTAL`` updates."""
    if name == "lm":
        return {**LM, "eval_every": 1}, {"steps": TOTAL, "batch_size": 4}
    if name.startswith("cifar"):
        folder = data["cifar100" if name == "cifar100" else "cifar10"]
        # a batch of the whole training set: one update per epoch, validated after each
        return {**CIFAR, "data_dir": folder}, {"epochs": TOTAL, "batch_size": 64}
    opts = {"eval_points": TOTAL}
    if name == "convex-quad":
        opts["dim"] = 10
    if name == "mlp":
        opts.update(hidden=8, n_samples=300)
    return opts, {"steps": TOTAL, "batch_size": 32}


def recorder(train: dict, lr: float = 0.01, **kw) -> RunRecorder:
    cfg = TrainConfig(lr=lr, weight_decay=0.0, **train)
    arm = Arm(baseline="sgd", name="tuned", beta=0.9, lr=lr, weight_decay=0.0)
    return RunRecorder(seed=0, device=torch.device("cpu"), train=cfg, options={}, arm=arm, **kw)


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_steps_are_numbered_from_zero_to_total_minus_one(name, cifar_dir, cifar100_dir):
    opts, train = setup(name, {"cifar10": cifar_dir, "cifar100": cifar100_dir})
    ctx = recorder(train)
    result = get_workload(name, opts).run(ctx)
    ctx.finish()
    assert result.steps == TOTAL
    assert ctx.curve()["step"] == list(range(TOTAL))  # log_step after update 0 … total − 1
    assert ctx.val_steps == list(range(TOTAL))        # report after each of them
    assert ctx.last_step + 1 == result.steps


def count_updates(ctx: RunRecorder, poison_after: int) -> list[int]:
    """Count the optimizer's updates (the returned list grows by one per update); after update
    number ``poison_after`` every trainable parameter becomes NaN, so the loss of the next update
    (0-based index ``poison_after``) is NaN."""
    taken: list[int] = []
    make = ctx.make_optimizer

    def after_update(opt, args, kwargs):
        taken.append(len(taken))
        if len(taken) == poison_after:
            with torch.no_grad():
                for group in opt.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))

    def make_optimizer(params):
        opt = make(params)
        opt.register_step_post_hook(after_update)
        return opt

    ctx.make_optimizer = make_optimizer
    return taken


# check_every = 1: the recorder's own check stops the run at the NaN loss; 10**9: only the
# loop's check at the next evaluation point does.
@pytest.mark.parametrize("check_every", [1, 10**9])
@pytest.mark.parametrize("name", ["cifar", "lm"])
def test_a_diverged_run_records_the_updates_it_took(name, check_every, cifar_dir):
    if name == "lm":
        # 8 updates, validated after the 4th and the 8th
        opts, train = {**LM, "eval_every": 4}, {"steps": 8, "batch_size": 4}
    else:
        # 128 images in batches of 32: 4 updates per epoch, validated after each epoch
        opts = {**CIFAR, "data_dir": cifar_dir, "n_train": 128}
        train = {"epochs": 2, "batch_size": 32}
    ctx = recorder(train, check_every=check_every)
    taken = count_updates(ctx, poison_after=2)  # the loss of update 2 (the third) is NaN
    with pytest.raises(Diverged):
        get_workload(name, opts).run(ctx)
    # stopped at the NaN loss, or at the first validation after it (after the 4th update)
    assert len(taken) == (3 if check_every == 1 else 4)
    assert ctx.last_step + 1 == len(taken)  # what the engine records as the run's steps
    assert ctx.curve()["step"] == list(range(len(taken)))
