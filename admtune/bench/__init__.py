"""Benchmarks: commands that print figures, run by hand or in a nox session (never timed tests).

- ``admtune bench`` / ``python -m admtune.bench``: AdM optimizers' step time and state memory
  against torch's (:mod:`admtune.bench.optimizers`);
- ``python -m admtune.bench.workloads``: one run of a bundled workload timed, and the study's wall
  time estimated from it;
- ``python -m admtune.bench.workers``: one worker against two on the same study.
- ``python -m admtune.bench.gpu_figures``: the pieces of ``tools/gpu_figures.sh`` (sync-debug
  check of the AdM steps, airbench beside admtune, workers sharing a GPU, the study estimate).
"""

from admtune.bench.optimizers import (
    PROTOCOLS,
    RESNET18_SHAPES,
    TARGETS,
    main,
    resnet18_shapes,
    run_bench,
    state_bytes,
)

__all__ = ["PROTOCOLS", "RESNET18_SHAPES", "TARGETS", "main", "resnet18_shapes", "run_bench", "state_bytes"]
