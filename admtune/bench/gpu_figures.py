"""The measurements of ``tools/gpu_figures.sh`` that are not plain ``python -m admtune.bench.workloads``
runs, each a subcommand that prints what it measured and appends JSON lines to ``--json FILE``:

- ``meta``: the machine (GPU name, torch, CUDA, Python), the date, whether the data is generated;
- ``sync``: AdMSGD and AdMAdamW (both granularities, ``foreach`` True and False; torch's foreach SGD
  and AdamW as controls) step a few times on the ResNet-18 parameter set under
  ``torch.cuda.set_sync_debug_mode("error")``, so that a host synchronisation inside ``step()``
  fails loudly; on a machine without CUDA the steps run but the check is recorded as *skipped*;
- ``optimizers``: :func:`admtune.bench.optimizers.run_bench` (any protocol, ``--rounds``), its table
  printed and one line per optimizer written;
- ``airbench``: the ``airbench`` package's 94 % recipe (``airbench.train94``, not compiled) timed on
  the same CIFAR-10 folder as admtune's run, converted to airbench's ``train.pt``/``test.pt``;
  needs CUDA (airbench builds its net with ``.half().cuda()``);
- ``concurrent``: N ``python -m admtune.bench.workloads`` processes started together on one device
  (what ``admtune study --workers N`` does on one GPU), their runs recorded;
- ``estimate``: the default ``admtune study cifar`` wall time from the records above (per-run
  times × the planned runs of each stage, one worker and several), and admtune's CIFAR-10 s/run
  against airbench's; the targets of issue 18 marked met/MISSED.

Every line carries ``date`` (UTC), ``device_name`` and ``smoke``; the CIFAR ones ``generated_data``
(from the environment variables ``GPU_FIGURES_SMOKE`` and ``GPU_FIGURES_GENERATED`` that the script
sets). On generated data the times are real and the accuracies mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

GENERATED_NOTE = "generated data: the times are real, the accuracies mean nothing"
#: Issue 18's targets on one H200 (the optimizer step ratios are in admtune.bench.TARGETS).
STUDY_TARGET_S = 15 * 60
PEER_TARGET = 2.0


def _flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0", "false", "False")


def device_label(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(dev)


def base(device: str, data: bool = False) -> dict[str, Any]:
    """The fields of every line: date, device, smoke, and (CIFAR lines) generated_data."""
    rec: dict[str, Any] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "device_name": device_label(device), "smoke": _flag("GPU_FIGURES_SMOKE")}
    if data:
        rec["generated_data"] = _flag("GPU_FIGURES_GENERATED")
        if rec["generated_data"]:
            rec["note"] = GENERATED_NOTE
    return rec


def write(path: str | None, *records: dict[str, Any]) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, default=str) + "\n")


def read(path: str) -> list[dict[str, Any]]:
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def small_shapes() -> list[tuple[int, ...]]:
    """The first 15 tensors of the ResNet-18 parameter set (about 0.17 M parameters): smoke runs."""
    from admtune.bench.optimizers import RESNET18_SHAPES

    return list(RESNET18_SHAPES[:15])


# -- meta -----------------------------------------------------------------------------------------
def cmd_meta(args: argparse.Namespace) -> int:
    try:
        import torchvision  # noqa: F401

        tv = getattr(sys.modules["torchvision"], "__version__", "present")
    except ImportError:
        tv = None
    rec = {"kind": "meta", **base(args.device, data=True), "torch": torch.__version__,
           "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "torchvision": tv, "commit": os.environ.get("GIT_COMMIT", "unknown"),
           "data_dir": args.data_dir}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        rec.update(gpu_memory_gib=p.total_memory / 2**30, sm_count=p.multi_processor_count,
                   capability=f"{p.major}.{p.minor}")
    print("meta:", json.dumps(rec))
    write(args.json, rec)
    return 0


# -- sync ------------------------------------------------------------------------------------------
def _sync_configs() -> list[tuple[str, Any]]:
    from admtune.optim import AdMAdamW, AdMSGD

    out: list[tuple[str, Any]] = []
    for cls in (AdMSGD, AdMAdamW):
        for gran in ("global", "tensor"):
            for foreach in (True, False):
                out.append((f"{cls.__name__} granularity={gran} foreach={foreach}",
                            lambda ps, c=cls, g=gran, f=foreach: c(ps, lr=1e-3, weight_decay=1e-4,
                                                                   granularity=g, foreach=f)))
    out.append(("torch SGD foreach (control)", lambda ps: torch.optim.SGD(
        ps, lr=1e-3, momentum=0.9, dampening=0.9, foreach=True)))
    out.append(("torch AdamW foreach (control)", lambda ps: torch.optim.AdamW(
        ps, lr=1e-3, foreach=True)))
    return out


def _where(exc: BaseException) -> str:
    """The innermost frame of the traceback inside admtune (else the innermost one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "admtune" in f.filename] or frames
    f = mine[-1] if mine else None
    return f"{f.filename}:{f.lineno} ({f.name}): {f.line}" if f else "?"


def sync_check(device: str, shapes: Sequence[tuple[int, ...]], steps: int = 3,
               seed: int = 0) -> list[dict[str, Any]]:
    """Each optimizer steps ``steps`` times (the lr changing every step, as under a scheduler; the
    last tensor without a gradient) with CUDA's sync debug mode at "error"; one result per
    optimizer: ``status`` pass / FAIL (with the error and where) / skipped (no CUDA)."""
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    results = []
    for name, make in _sync_configs():
        params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.05).to(dev)) for s in shapes]
        grads = [[(torch.randn(s, generator=gen) * 1e-2).to(dev) for s in shapes[:-1]]
                 for _ in range(2)]
        opt = make(params)
        if cuda:
            torch.cuda.synchronize(dev)
        status, error, where = "pass", None, None
        try:
            if cuda:
                torch.cuda.set_sync_debug_mode("error")
            for k in range(steps):
                for p, g in zip(params, grads[k % 2], strict=False):
                    p.grad = g
                for group in opt.param_groups:
                    group["lr"] = 1e-3 * (1.0 - 0.1 * k)
                opt.step()
        except RuntimeError as exc:
            status, error, where = "FAIL", str(exc).strip().splitlines()[0], _where(exc)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
                torch.cuda.synchronize(dev)
        betas = getattr(opt, "last_betas", None)
        beta_range = None
        if status == "pass" and betas:
            b = torch.cat([x.detach().float().cpu() for x in betas])
            b = b[torch.isfinite(b)]
            beta_range = [float(b.min()), float(b.max())] if b.numel() else None
        if not cuda and status == "pass":
            status = "skipped"
            error = ("no CUDA here: the steps ran, but set_sync_debug_mode watches only CUDA "
                     "synchronisations, so nothing was checked")
        results.append({"optimizer": name, "status": status, "error": error, "where": where,
                        "steps": steps, "tensors": len(shapes),
                        "params": sum(math.prod(s) for s in shapes), "last_betas_range": beta_range})
    return results


def cmd_sync(args: argparse.Namespace) -> int:
    from admtune.bench.optimizers import RESNET18_SHAPES

    shapes = small_shapes() if args.small else list(RESNET18_SHAPES)
    results = sync_check(args.device, shapes, steps=args.steps)
    meta = base(args.device)
    for r in results:
        print(f"sync check {r['status']:>7}: {r['optimizer']}"
              + (f"  -- {r['error']} at {r['where']}" if r["status"] == "FAIL" else ""))
    statuses = {r["status"] for r in results}
    overall = "FAIL" if "FAIL" in statuses else ("skipped" if statuses == {"skipped"} else "pass")
    if overall == "skipped":
        print("sync check SKIPPED: " + results[0]["error"])
    write(args.json, *({"kind": "sync_check", **meta, **r} for r in results),
          {"kind": "sync_check_summary", **meta, "status": overall,
           "failed": [r["optimizer"] for r in results if r["status"] == "FAIL"],
           "mode": 'torch.cuda.set_sync_debug_mode("error") around step()'})
    return 1 if overall == "FAIL" else 0


# -- optimizers ------------------------------------------------------------------------------------
def cmd_optimizers(args: argparse.Namespace) -> int:
    from admtune.bench.optimizers import _print, run_bench

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not available", file=sys.stderr)
        return 2
    kw: dict[str, Any] = {}
    if args.small and args.protocol != "train":
        kw["shapes"] = small_shapes()
    rows = run_bench(args.device, repeats=args.repeats, warmup=args.warmup, protocol=args.protocol,
                     rounds=args.rounds, batch=args.batch, width=args.width, **kw)
    _print(rows)
    meta = base(args.device)
    write(args.json, *({"kind": "optimizer", **meta, **r} for r in rows))
    return 0


# -- airbench --------------------------------------------------------------------------------------
def _torchvision_standin() -> str:
    """airbench imports torchvision for ``transforms.Normalize`` alone (and ``datasets.CIFAR10``
    where its ``train.pt`` is missing, which it is not here). Without torchvision a stand-in
    Normalize (the same arithmetic on a tensor) is put in its place; returns what was used."""
    try:
        import torchvision  # noqa: F401

        return f"torchvision {getattr(sys.modules['torchvision'], '__version__', '?')}"
    except ImportError:
        pass

    class Normalize:
        def __init__(self, mean: Any, std: Any) -> None:
            self.mean, self.std = mean, std

        def __call__(self, x: torch.Tensor) -> torch.Tensor:
            mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
            return (x - mean) / std

    tv = types.ModuleType("torchvision")
    tr = types.ModuleType("torchvision.transforms")
    tr.Normalize = Normalize  # type: ignore[attr-defined]
    tv.transforms = tr  # type: ignore[attr-defined]
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
    return "torchvision absent: a stand-in transforms.Normalize (same arithmetic)"


def write_airbench_data(data_dir: str, work: Path) -> dict[str, int]:
    """admtune's CIFAR-10 folder as airbench's ``cifar10/train.pt`` and ``test.pt`` (uint8 NHWC
    images, int64 labels, class names) under ``work``."""
    from admtune.workloads.cifar_data import RELEASES, load_arrays, locate

    rel = RELEASES[10]
    arrays = load_arrays(rel, locate(rel, data_dir, False))
    out = work / "cifar10"
    out.mkdir(parents=True, exist_ok=True)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    for split in ("train", "test"):
        x = torch.from_numpy(arrays[f"{split}_x"]).permute(0, 2, 3, 1).contiguous()
        y = torch.from_numpy(arrays[f"{split}_y"]).long()
        torch.save({"images": x, "labels": y, "classes": classes}, out / f"{split}.pt")
    return {"n_train": len(arrays["train_y"]), "n_test": len(arrays["test_y"])}


def cmd_airbench(args: argparse.Namespace) -> int:
    rec: dict[str, Any] = {"kind": "airbench", **base(args.device, data=True),
                           "recipe": "airbench94 (train94, not compiled, 9.9 epochs, batch 1024)"}

    def skipped(reason: str) -> int:
        rec.update(status="skipped", reason=reason)
        print(f"airbench SKIPPED: {reason}")
        write(args.json, rec)
        return 0

    if args.peers and os.path.isdir(args.peers):
        sys.path.insert(0, os.path.abspath(args.peers))
    rec["torchvision"] = _torchvision_standin()
    try:
        import airbench
    except ImportError as exc:
        return skipped(f"airbench is not importable ({exc}): run tools/fetch_peers.sh where PyPI "
                       f"is reachable and carry its folder ({args.peers}) to this machine")
    rec["airbench_path"] = os.path.dirname(airbench.__file__)
    stamp = Path(rec["airbench_path"]).parent / "airbench.version"  # written by tools/fetch_peers.sh
    rec["airbench_version"] = (stamp.read_text(encoding="utf-8").strip() if stamp.exists()
                               else getattr(airbench, "__version__", "?"))
    work = Path(tempfile.mkdtemp(prefix="airbench-", dir=args.work_dir))
    t0 = time.perf_counter()
    rec.update(write_airbench_data(args.data_dir, work))
    rec["convert_s"] = time.perf_counter() - t0
    print(f"airbench: {rec['torchvision']}; data written to {work}/cifar10 "
          f"({rec['n_train']} train, {rec['n_test']} test) in {rec['convert_s']:.1f} s")
    if not (torch.device(args.device).type == "cuda" and torch.cuda.is_available()):
        return skipped("needs CUDA: airbench builds its net with .half().cuda() "
                       "(the package imported and its data files were written)")
    os.chdir(work)
    loader = airbench.CifarLoader("cifar10", train=True, batch_size=1024,
                                  aug={"flip": True, "translate": 2}, altflip=True)
    test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
    t0 = time.perf_counter()
    airbench.warmup94(train_loader=loader)  # one step (its kernels, cudnn.benchmark)
    torch.cuda.synchronize()
    rec["warmup_s"] = time.perf_counter() - t0
    runs = []
    for i in range(args.repeat):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = airbench.train94(train_loader=loader, verbose=False)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        acc = airbench.evaluate(model, test_loader, tta_level=2)
        t2 = time.perf_counter()
        runs.append({"run": i + 1, "train_s": t1 - t0, "eval_s": t2 - t1, "wall_s": t2 - t0,
                     "test_accuracy": 100 * acc})
        print(f"airbench94 run {i + 1}/{args.repeat}: {t2 - t0:.2f} s/run (train {t1 - t0:.2f} s, "
              f"TTA eval {t2 - t1:.2f} s), test accuracy {100 * acc:.2f} %"
              + (" (generated data: means nothing)" if rec["generated_data"] else ""))
    rec.update(status="ok", runs=runs, steady_s=runs[-1]["wall_s"],
               peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30)
    write(args.json, rec)
    return 0


# -- concurrent ------------------------------------------------------------------------------------
def cmd_concurrent(args: argparse.Namespace) -> int:
    wargs = list(args.workload_args)
    if wargs and wargs[0] == "--":
        wargs = wargs[1:]
    tmp = Path(tempfile.mkdtemp(prefix="concurrent-"))
    procs = []
    t0 = time.perf_counter()
    for i in range(args.n):
        cmd = [sys.executable, "-m", "admtune.bench.workloads", *wargs, "--json",
               str(tmp / f"{i}.jsonl"), "--tag", f"concurrent={args.n}", "--tag", f"process={i}"]
        log = open(tmp / f"{i}.log", "w", encoding="utf-8")  # noqa: SIM115
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
    codes = []
    for p, log in procs:
        codes.append(p.wait())
        log.close()
    wall = time.perf_counter() - t0
    records, steady = [], []
    for i in range(args.n):
        print(f"-- process {i} (exit {codes[i]}):")
        print((tmp / f"{i}.log").read_text(encoding="utf-8").rstrip())
        runs = [r for r in read(str(tmp / f"{i}.jsonl")) if r.get("kind") == "run"]
        records += runs
        if runs:
            steady.append(runs[-1])
    overlap = span = None
    if len(steady) == args.n and args.n > 1:  # how much of the steady runs ran at the same time
        start, end = max(r["t_start"] for r in steady), min(r["t_end"] for r in steady)
        overlap = max(0.0, end - start) / max(r["wall_s"] for r in steady)
        # The time the n steady runs took together, first start to last end: n runs per `span`
        # (where they overlap badly, this counts the gap too: the gain is understated, not made up).
        span = max(r["t_end"] for r in steady) - min(r["t_start"] for r in steady)
    meta = base(args.device, data=True)
    summary = {"kind": "concurrent", **meta, "processes": args.n, "exit_codes": codes,
               "wall_s": wall, "steady_run_s": [r["wall_s"] for r in steady],
               "steady_overlap": overlap, "steady_span_s": span, "args": wargs}
    print(f"{args.n} processes on one device: steady runs "
          + ", ".join(f"{r['wall_s']:.2f} s" for r in steady)
          + (f" (overlapping {overlap:.0%} of the longest)" if overlap is not None else "")
          + f"; {wall:.1f} s in all")
    write(args.json, *records, summary)
    return 0 if all(c == 0 for c in codes) and len(steady) == args.n else 1


# -- estimate --------------------------------------------------------------------------------------
def _last_run(records: list[dict[str, Any]], step: str) -> dict[str, Any] | None:
    runs = [r for r in records if r.get("kind") == "run" and r.get("step") == step]
    return runs[-1] if runs else None


def _estimate_from_first_run(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """An ``estimate`` record made from the cifar step's first run when the step was cut short
    before its own: only for a run at the spec's default budget (no rescaling needed)."""
    from admtune.bench.workloads import load_spec, study_estimate
    from admtune.study.spec import resolve

    run = _last_run(records, "cifar")
    if run is None:
        return None
    spec = load_spec(resolve("cifar"))
    train = spec.get("train", {})
    if run.get("train_steps") is not None or run.get("epochs") != train.get("epochs") \
            or run.get("batch_size") != train.get("batch_size"):
        return None
    est = study_estimate(spec, run["wall_s"], 1, 1)
    return {"kind": "estimate", "workload": "cifar", "step": "cifar", **est,
            "steady_run_s": run["wall_s"], "device": run.get("device"),
            "generated_data": run.get("generated_data"), "smoke": run.get("smoke")}


def study_wall(stages: dict[str, int], run_s: float, workers: int) -> dict[str, float]:
    """The study's wall time with ``workers`` each taking ``run_s`` a run: ``ideal`` with every
    worker busy to the end, ``staged`` waiting at each stage's end (tuning → selection →
    evaluation: a stage's last wave may leave workers idle)."""
    total = sum(stages.values())
    return {"ideal_s": math.ceil(total / workers) * run_s,
            "staged_s": sum(math.ceil(n / workers) * run_s for n in stages.values())}


def estimates(records: list[dict[str, Any]], workers: Sequence[int] = (2, 4, 8)) -> list[dict[str, Any]]:
    """The study estimates and the peer comparison, from the lines of one results file."""
    out: list[dict[str, Any]] = []
    est = next((r for r in records if r.get("kind") == "estimate" and r.get("workload") == "cifar"
                and r.get("step") == "cifar"), None)
    basis_1 = "measured: the steady (last) run of the cifar step"
    if est is None:
        est = _estimate_from_first_run(records)
        basis_1 = "measured, but from the cifar step's only run (it includes loading the data)"
    if est is None:
        return [{"kind": "study_estimate", "status": "missing",
                 "reason": "no timed CIFAR-10 run at the default budget (the cifar step did not "
                           "finish one)"}]
    scale = est["spec_examples"] / max(1, est["bench_examples"])
    stages = est.get("stages") or {"all": est["runs"]}
    common = {"study": "cifar (studies/cifar.toml)", "runs": est["runs"], "stages": stages,
              "scale_to_spec": scale, "device_name": est.get("device"),
              "generated_data": est.get("generated_data"), "smoke": est.get("smoke"),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "caveat": "an upper bound on training time (pruned trials stop early); worker start, "
                        "storage and the report not counted; AdamW and AdM runs taken to cost what "
                        "the SGD β = 0.9 run cost"}

    def add(label: str, run_s: float, n: int, basis: str, **extra: Any) -> None:
        wall = study_wall(stages, run_s, n)
        out.append({"kind": "study_estimate", "status": "ok", "variant": label, "workers": n,
                    "run_s": run_s, "total_s": wall["staged_s"], **wall, "basis": basis,
                    "target_s": STUDY_TARGET_S, "met": wall["staged_s"] <= STUDY_TARGET_S,
                    **common, **extra})

    plain = est["steady_run_s"] * scale
    add("1 worker, no compile", plain, 1, basis_1)
    comp = _last_run(records, "cifar-compile")
    comp_s = None
    if comp is not None and comp.get("run", 1) > 1:
        comp_s = comp["wall_s"] * scale
        add("1 worker, workload.compile = true", comp_s, 1,
            "measured: the steady (last) run of the cifar-compile step (compilation paid in its "
            "first run, once per worker process)")
    conc = next((r for r in records if r.get("kind") == "concurrent"), None)
    if conc is not None and len(conc.get("steady_run_s", [])) == conc.get("processes"):
        n_meas = conc["processes"]
        # n_meas runs per span: a run's cost with n_meas workers sharing the GPU
        shared = (conc.get("steady_span_s") or max(conc["steady_run_s"])) * scale
        for n in sorted({n_meas, *workers}):
            if n == n_meas:
                add(f"{n} workers on one GPU", shared, n,
                    f"measured: {n} processes timed together on the GPU (their steady runs "
                    f"overlapping {conc.get('steady_overlap') or 0:.0%}; run_s = first start to "
                    f"last end)" + ("" if (conc.get("steady_overlap") or 0) >= 0.8 else
                                    "; they overlapped badly, so this figure is pessimistic"),
                    throughput_vs_1=n * plain / shared)
            elif n > n_meas:
                run_s = shared * n / n_meas
                add(f"{n} workers on one GPU", run_s, n,
                    f"ESTIMATE, not measured: the throughput of {n_meas} sharing processes held "
                    f"(each run {n}/{n_meas} × as long as with {n_meas})",
                    throughput_vs_1=n * plain / run_s)
    for n in workers:
        if not any(r.get("workers") == n for r in out):
            add(f"{n} workers on one GPU", plain * n, n,
                "ESTIMATE, not measured: no concurrent timing, so no gain over one worker assumed")
    air = next((r for r in records if r.get("kind") == "airbench"), None)
    if air is not None:
        if air.get("status") == "ok":
            ratio = est["steady_run_s"] / air["steady_s"]
            out.append({"kind": "peer", "status": "ok", "admtune_s_per_run": est["steady_run_s"],
                        "admtune_compiled_s_per_run": comp["wall_s"] if comp_s else None,
                        "airbench94_s_per_run": air["steady_s"], "ratio": ratio,
                        "target": PEER_TARGET, "met": ratio <= PEER_TARGET,
                        **{k: common[k] for k in ("device_name", "generated_data", "smoke", "date")},
                        "note": "admtune: the cifar spec's budget (16 epochs, validation and test "
                                "evaluation); airbench94: 9.9 epochs, its TTA test evaluation; "
                                + (GENERATED_NOTE if est.get("generated_data") else "")})
        else:
            out.append({"kind": "peer", "status": "skipped", "reason": air.get("reason"),
                        **{k: common[k] for k in ("device_name", "generated_data", "smoke", "date")}})
    return out


def _fmt(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def cmd_estimate(args: argparse.Namespace) -> int:
    recs = estimates(read(args.json))
    for r in recs:
        if r["kind"] == "study_estimate" and r["status"] == "ok":
            print(f"study cifar, {r['variant']}: {r['runs']} runs at {r['run_s']:.1f} s/run -> "
                  f"{_fmt(r['staged_s'])} (every worker busy: {_fmt(r['ideal_s'])}); target <= 15 min "
                  f"{'met' if r['met'] else 'MISSED'}; {r['basis']}")
        elif r["kind"] == "peer" and r["status"] == "ok":
            print(f"CIFAR-10 s/run: admtune {r['admtune_s_per_run']:.2f} s vs airbench94 "
                  f"{r['airbench94_s_per_run']:.2f} s = {r['ratio']:.2f}x; target <= {PEER_TARGET:.0f}x "
                  f"{'met' if r['met'] else 'MISSED'}")
        else:
            print(f"{r['kind']}: {r['status']} ({r.get('reason')})")
    if any(r.get("generated_data") for r in recs):
        print("NOTE: " + GENERATED_NOTE)
    with open(args.json, "a", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, default=str) + "\n")
    return 0


# -- command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m admtune.bench.gpu_figures",
                                 description="The pieces of tools/gpu_figures.sh.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
        p.add_argument("--json", help="append the results to this JSON-lines file")

    p = sub.add_parser("meta")
    common(p)
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_meta)
    p = sub.add_parser("sync")
    common(p)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--small", action="store_true", help="15 tensors of ResNet-18, not all 62")
    p.set_defaults(func=cmd_sync)
    p = sub.add_parser("optimizers")
    common(p)
    p.add_argument("--protocol", default="interleaved", choices=("interleaved", "blocks", "train"))
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=8, help="train protocol: images per batch")
    p.add_argument("--width", type=float, default=1.0, help="train protocol: ResNet-18 width")
    p.add_argument("--small", action="store_true", help="15 tensors of ResNet-18, not all 62")
    p.set_defaults(func=cmd_optimizers)
    p = sub.add_parser("airbench")
    common(p)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--peers", default=".peers", help="folder holding the airbench package")
    p.add_argument("--work-dir", default=None, help="where airbench's train.pt/test.pt go")
    p.add_argument("--repeat", type=int, default=2)
    p.set_defaults(func=cmd_airbench)
    p = sub.add_parser("concurrent")
    common(p)
    p.add_argument("--n", type=int, default=2)
    p.add_argument("workload_args", nargs=argparse.REMAINDER,
                   help="-- then the arguments of python -m admtune.bench.workloads")
    p.set_defaults(func=cmd_concurrent)
    p = sub.add_parser("estimate")
    p.add_argument("--json", required=True)
    p.set_defaults(func=cmd_estimate)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
