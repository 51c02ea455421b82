"""Time the real workloads: seconds per training run, throughput and the metric reached.

    python -m admtune.bench.workloads --workload cifar --data-dir data/cifar \\
        --device cuda --epochs 16 --repeat 2 --study-estimate

runs ``--repeat`` training runs of one workload with a torch baseline arm (SGD heavy ball in EMA form,
β = 0.9 by default) under the budget of the workload's default study spec (``studies/<name>.toml``;
``--epochs``/``--steps``/``--set`` change it), and prints per run: seconds, images/s or tokens/s, and
the validation and test metrics. The first run of a process pays for loading the data onto the device
(and for ``torch.compile``); later runs show the steady state a study sees.

``--study-estimate`` adds the estimated wall time of the default study on this machine: per baseline,
``trials`` tuning runs plus (3 + extra arms) × ``seeds`` evaluation runs, each costing the steady
per-run time scaled to the spec's budget by the number of examples processed (steps × batch size; an
upper bound: pruned trials stop early; AdamW and AdM runs are assumed to cost what the timed run
cost). ``--json FILE`` appends one JSON object per run and
one for the estimate, each with the date (UTC) and the device; ``--tag KEY=VALUE`` adds a field to
each of them (VALUE read as JSON where it parses, e.g. ``--tag generated_data=true``). Exit code 2
with one sentence on a bad option or missing data.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from admtune import families
from admtune.devices import resolve_device
from admtune.errors import AdmtuneError, SpecError
from admtune.study.results import CORE_ARMS
from admtune.study.spec import parse_overrides, resolve
from admtune.workloads.base import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SPEC_FOR = {"cifar": "cifar", "cifar10": "cifar", "cifar100": "cifar100", "lm": "lm"}
EVAL_ARMS = len(CORE_ARMS)


def load_spec(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"cannot read study spec {path} ({exc})") from None
    w = raw.get("workload")
    if isinstance(w, dict):  # [workload] table with name = ...
        w = dict(w)
        raw["workload"] = w.pop("name", None)
        raw["workload_options"] = w
    raw.setdefault("workload_options", {})
    return raw


def apply_sets(spec: dict[str, Any], items: list[str]) -> None:
    """``--set KEY=VALUE`` on the raw spec, parsed as the study command parses them; no schema here
    (the workload's factory checks its options)."""
    for key, value in parse_overrides(items).items():
        parts = key.split(".")
        if parts[0] == "workload" and len(parts) > 1:
            parts[0] = "workload_options"
        node = spec
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"--set {key}: {part} is not a table")
        node[parts[-1]] = value


def family_value(table: dict[str, Any], key: str, baseline: str, default: float) -> float:
    v = table.get(key, default)
    if isinstance(v, dict):
        if baseline not in v:
            raise SpecError(f"train.{key} has no value for baseline {baseline!r}")
        return float(v[baseline])
    return float(v)


def train_config(train: dict[str, Any], baseline: str, lr: float | None) -> TrainConfig:
    return TrainConfig(
        batch_size=int(train["batch_size"]),
        lr=float(lr) if lr is not None else family_value(train, "lr", baseline, 0.0),
        weight_decay=family_value(train, "weight_decay", baseline, 0.0),
        epochs=train.get("epochs"),
        steps=train.get("steps"),
        schedule=train.get("schedule", "constant"),
        warmup_steps=int(train.get("warmup_steps", 0)),
    )


def n_examples(workload: Any, result: Any) -> int:
    """The step-budget denominator the workload used (training images or context windows)."""
    extra = result.extra
    if "n_train" in extra:
        return int(extra["n_train"])
    return max(1, int(extra["train_bytes"]) // int(workload.options["context"]))


def study_estimate(spec: dict[str, Any], per_run_s: float, bench_examples: int,
                   spec_examples: int) -> dict[str, Any]:
    """The default study's wall time: ``per_run_s`` scaled by the examples (images or sequences)
    a run of the spec processes over those of the timed run, times the number of runs."""
    trials, seeds = int(spec.get("trials", 20)), int(spec.get("seeds", 5))
    baselines = list(spec.get("baselines", ["sgd", "adamw"]))
    extra = list(spec.get("extra_arms", []))
    tune = spec.get("tune", {})
    # Selection: at most the best distinct trials, β = 0.9 and the candidates, on their own seeds
    # (AdM's lr study gets its own when tune.lr = true).
    finalists = int(tune.get("finalists", 3)) + 1 + len(tune.get("candidates", []))
    selection = finalists * int(tune.get("selection_seeds", 3)) * (2 if tune.get("lr") else 1)
    runs_per_baseline = trials + selection + (EVAL_ARMS + len(extra)) * seeds
    run_s = per_run_s * spec_examples / max(1, bench_examples)
    return {
        "baselines": baselines, "trials": trials, "seeds": seeds, "extra_arms": extra,
        "selection": selection,
        "runs": runs_per_baseline * len(baselines), "spec_examples": spec_examples,
        "stages": {"tuning": trials * len(baselines), "selection": selection * len(baselines),
                   "evaluation": (EVAL_ARMS + len(extra)) * seeds * len(baselines)},
        "bench_examples": bench_examples, "run_s": run_s,
        "total_s": run_s * runs_per_baseline * len(baselines),
    }


def _fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m admtune.bench.workloads",
        description="Time training runs of the cifar/cifar100/lm workloads with a torch baseline arm.",
    )
    ap.add_argument("--workload", default="cifar", choices=sorted(SPEC_FOR))
    ap.add_argument("--spec", help="study spec whose [train] and [workload] set the run "
                                   "(default: the workload's studies/<name>.toml)")
    ap.add_argument("--data-dir", help="cifar: workload.data_dir")
    ap.add_argument("--data-path", help="lm: workload.data_path (default: the stdlib sources)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--epochs", type=float, help="train.epochs (replaces train.steps)")
    ap.add_argument("--steps", type=int, help="train.steps (replaces train.epochs)")
    ap.add_argument("--batch-size", type=int, help="train.batch_size")
    ap.add_argument("--baseline", default="sgd", choices=list(families.names()))
    ap.add_argument("--beta", type=float, default=0.9, help="the arm's fixed β (default 0.9)")
    ap.add_argument("--adm", action="store_true", help="run the AdM arm instead of a fixed β")
    ap.add_argument("--lr", type=float, help="base lr (default: the spec's for the baseline)")
    ap.add_argument("--compile", action="store_true", help="set workload.compile = true")
    ap.add_argument("--repeat", type=int, default=1, help="training runs (seeds seed, seed+1, …)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a spec key, e.g. workload.width=0.5 or train.warmup_steps=0")
    ap.add_argument("--study-estimate", action="store_true",
                    help="also print the estimated wall time of the default study")
    ap.add_argument("--json", help="append one JSON line per run (and the estimate) to this file")
    ap.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                    help="add this field to every JSON line (VALUE parsed as JSON if it can be)")
    return ap


def parse_tags(items: list[str]) -> dict[str, Any]:
    """``--tag KEY=VALUE`` items as a dict; a VALUE that is not JSON stays a string."""
    tags: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--tag {item!r}: expected KEY=VALUE")
        try:
            tags[key] = json.loads(value)
        except ValueError:
            tags[key] = value
    return tags


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_bench(args: argparse.Namespace, out=print) -> dict[str, Any]:
    from admtune.study.context import Arm, RunRecorder
    from admtune.workloads import get_workload

    spec_path = Path(args.spec) if args.spec else resolve(SPEC_FOR[args.workload])
    spec = load_spec(spec_path)
    default_spec = copy.deepcopy(spec)
    spec["workload"] = args.workload if args.workload != "cifar10" else "cifar"
    opts = spec["workload_options"]
    if args.data_dir is not None:
        opts["data_dir"] = args.data_dir
    if args.data_path is not None:
        opts["data_path"] = args.data_path
    if args.compile:
        opts["compile"] = True
    train = spec.setdefault("train", {})
    if args.epochs is not None:
        train["epochs"], train["steps"] = args.epochs, None
    if args.steps is not None:
        train["steps"], train["epochs"] = args.steps, None
    if args.batch_size is not None:
        train["batch_size"] = args.batch_size
    apply_sets(spec, args.set)
    if args.repeat < 1:
        raise SpecError("--repeat must be ≥ 1")
    tags = parse_tags(getattr(args, "tag", []))

    device = resolve_device(args.device)
    workload = get_workload(spec["workload"], opts)
    cfg = train_config(train, args.baseline, args.lr)
    arm = Arm(
        baseline=args.baseline, name="adm" if args.adm else "default",
        beta=None if args.adm else args.beta, lr=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
    )
    from admtune.workloads.device import device_name

    out(f"{spec['workload']} on {device_name(device)}  spec {spec_path}  arm {args.baseline} "
        f"{'AdM' if args.adm else f'β={args.beta:g}'}  lr {cfg.lr:g}  wd {cfg.weight_decay:g}  "
        f"batch {cfg.batch_size}  " + (f"epochs {cfg.epochs:g}" if cfg.steps is None
                                       else f"steps {cfg.steps}")
        + f"  options {json.dumps(opts, sort_keys=True)}")
    records = []
    result = None
    for i in range(args.repeat):
        ctx = RunRecorder(seed=args.seed + i, device=device, train=cfg, options=opts, arm=arm)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        result = workload.run(ctx)
        ctx.finish()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        t_end = time.time()
        is_lm = "tokens" in result.extra
        unit = "tokens/s" if is_lm else "images/s"
        rate = result.extra["tokens_per_s"] if is_lm else result.extra["images_per_s"]
        rec = {
            "kind": "run", "workload": spec["workload"], "device": device_name(device),
            "date": utc_now(), "t_start": t_end - wall, "t_end": t_end,
            "run": i + 1, "seed": args.seed + i, "wall_s": wall,
            "train_s": result.extra.get("train_s"), unit.replace("/", "_per_"): rate,
            "steps": result.steps, "validation": result.validation, "test": result.test,
            "baseline": args.baseline, "beta": arm.beta, "lr": cfg.lr, "options": opts,
            "epochs": cfg.epochs, "train_steps": cfg.steps, "batch_size": cfg.batch_size,
            "peak_mem_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                             if device.type == "cuda" else None),
        }
        records.append(rec)
        if args.json:  # each run as it ends: a run cut short by a time limit keeps the ones before
            with open(args.json, "a", encoding="utf-8") as f:
                f.write(json.dumps({**rec, **tags}, default=str) + "\n")
        metric = spec.get("metric") or next(iter(workload.metrics))
        note = "  (first run: includes data loading and compilation)" if i == 0 else ""
        out(f"run {i + 1}/{args.repeat}: {wall:.2f} s/run  {rate:,.0f} {unit}  steps {result.steps}  "
            f"val {metric} {result.validation.get(metric, float('nan')):.4g}  test {metric} "
            f"{result.test.get(metric, float('nan')):.4g}{note}")
    steady = records[-1]["wall_s"] if len(records) > 1 else records[0]["wall_s"]
    out(f"seconds per run: {steady:.2f}" + (" (steady state: the last run)" if len(records) > 1
                                             else " (a single run: includes one-time costs)"))
    estimate = None
    if args.study_estimate:
        ds_train = default_spec.get("train", {})
        n = n_examples(workload, result)
        spec_cfg = train_config(ds_train, args.baseline, None)
        bench_examples = result.steps * cfg.batch_size
        spec_examples = int(spec_cfg.total_steps(n)) * spec_cfg.batch_size \
            if ds_train.get("epochs") or ds_train.get("steps") else bench_examples
        estimate = study_estimate(default_spec, steady, bench_examples, spec_examples)
        scaled = "" if spec_examples == bench_examples else \
            f", scaled from this run's {bench_examples:,} examples to the spec's {spec_examples:,}"
        out(f"study estimate ({spec_path.name}: {len(estimate['baselines'])} baseline(s) × "
            f"({estimate['trials']} trials + {estimate['selection']} selection runs + "
            f"{EVAL_ARMS + len(estimate['extra_arms'])} arms × "
            f"{estimate['seeds']} seeds) = {estimate['runs']} runs at {estimate['run_s']:.1f} s/run"
            f"{scaled}): about {_fmt_s(estimate['total_s'])} (an upper bound: pruned trials stop "
            f"early; AdamW and AdM runs taken to cost what this run cost)")
    if args.json and estimate is not None:
        with open(args.json, "a", encoding="utf-8") as f:
            f.write(json.dumps({"kind": "estimate", "workload": spec["workload"],
                                "device": device_name(device), "date": utc_now(),
                                "steady_run_s": steady, **estimate, **tags}) + "\n")
    return {"runs": records, "estimate": estimate}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_bench(args)
    except AdmtuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "run_bench", "study_estimate"]
