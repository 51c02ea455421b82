"""``mlp``: a small ReLU MLP classifier on bundled data (non-convex, CPU, float32).

Data (``workload.dataset``):

- ``"synthetic"`` (default): scikit-learn's ``make_classification`` drawn from a fixed data seed
  (``n_samples`` × ``n_features``, ``n_classes`` classes, several Gaussian clusters per class, 2 %
  label noise): harder than digits, so the optimizer's momentum visibly matters;
- ``"digits"``: the bundled 8 × 8 digits (1797 × 64, 10 classes).

Split 60 / 20 / 20 (stratified, fixed seed), features standardised with train statistics. The run
seed fixes the initialisation (PyTorch's default uniform fan-in init, drawn from ``ctx.generator()``)
and the minibatch order. Metrics: ``loss`` (mean cross-entropy, minimize) and ``accuracy`` (percent,
maximize) on the validation and the test split.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from ..errors import SpecError
from .base import RunContext, RunResult
from .data import minibatches, split_indices, standardize, to_tensor
from .device import cpu_threads
from .loop import check_finite, classification_metrics, eval_steps, report_metric, train
from .models import build_mlp
from .options import Opt, parse_options

DTYPE = torch.float32
DATA_SEED = 7  # the fixed seed of the synthetic dataset

_SYNTHETIC_KEYS = ("n_samples", "n_features", "n_classes")


@functools.lru_cache(maxsize=4)
def _splits(dataset: str, n_samples: int, n_features: int, n_classes: int):
    """((x, y) train, (x, y) validation, (x, y) test) as CPU tensors; cached per process."""
    if dataset == "digits":
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
    else:
        from sklearn.datasets import make_classification

        x, y = make_classification(
            n_samples=n_samples, n_features=n_features,
            n_informative=max(2, (n_features * 3) // 4), n_redundant=n_features // 8,
            n_classes=n_classes, n_clusters_per_class=3, class_sep=1.5, flip_y=0.02,
            random_state=DATA_SEED,
        )
    tr, va, te = split_indices(len(y), 0.2, 0.2, labels=y)
    xs = standardize(x[tr].astype(np.float64), x[va], x[te])
    return tuple(
        (to_tensor(a, DTYPE), torch.as_tensor(y[i], dtype=torch.long))
        for a, i in zip(xs, (tr, va, te), strict=True)
    )


class MLP:
    """A small MLP classifier (see the module docstring)."""

    metrics = {"loss": "minimize", "accuracy": "maximize"}
    schema = {
        "dataset": Opt("synthetic", "choice", choices=("synthetic", "digits")),
        "hidden": Opt(128, "int", low=1, high=4096, help="width of each hidden layer"),
        "depth": Opt(2, "int", low=1, high=16, help="number of hidden layers"),
        "n_samples": Opt(8000, "int", low=100, high=1_000_000, help="synthetic: examples"),
        "n_features": Opt(32, "int", low=2, high=4096, help="synthetic: input features"),
        "n_classes": Opt(10, "int", low=2, high=100, help="synthetic: classes"),
        "eval_points": Opt(10, "int", low=1, help="evaluation points (ctx.report) over the run"),
    }

    def __init__(self, options: dict[str, Any]):
        given = dict(options or {})
        self.options = parse_options("mlp", given, self.schema)
        if self.options["dataset"] != "synthetic":
            for key in _SYNTHETIC_KEYS:
                if key in given:
                    raise SpecError(
                        f"workload.{key} applies only to workload.dataset = 'synthetic', "
                        f"not {self.options['dataset']!r}"
                    )
        elif self.options["n_classes"] * 3 > 2 ** (max(2, (self.options["n_features"] * 3) // 4)):
            raise SpecError(
                f"workload.n_classes = {self.options['n_classes']} is too many for "
                f"workload.n_features = {self.options['n_features']}"
            )

    def data(self):
        o = self.options
        if o["dataset"] == "digits":
            return _splits("digits", 0, 0, 0)
        return _splits("synthetic", o["n_samples"], o["n_features"], o["n_classes"])

    def run(self, ctx: RunContext) -> RunResult:
        with cpu_threads(ctx.device):
            return self._run(ctx)

    def _run(self, ctx: RunContext) -> RunResult:
        dev = ctx.device
        (xtr, ytr), (xva, yva), (xte, yte) = ((x.to(dev), y.to(dev)) for x, y in self.data())
        n_classes = int(ytr.max()) + 1
        g = ctx.generator()
        sizes = [xtr.shape[1]] + [self.options["hidden"]] * self.options["depth"] + [n_classes]
        model = build_mlp(sizes, g).to(dev)
        metric = report_metric(ctx, self.metrics, "loss")

        total, rows = minibatches(ctx, len(ytr), g, dev)

        def step(t: int) -> torch.Tensor:
            idx = rows(t)
            x, y = (xtr, ytr) if idx is None else (xtr[idx], ytr[idx])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        def evaluate(x, y):
            with torch.no_grad():
                return classification_metrics(model(x), y)

        val, _ = train(ctx, model.named_parameters(), total, step, lambda: evaluate(xva, yva), metric,
                       eval_steps(total, self.options["eval_points"]))
        check_finite(val, "validation")
        return RunResult(validation=val, test=evaluate(xte, yte), steps=total)


def mlp(options: dict[str, Any]) -> MLP:
    """Factory of the ``mlp`` workload."""
    return MLP(options)
