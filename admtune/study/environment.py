"""What a study records about where it ran: the versions of what it used and the device."""

from __future__ import annotations

import os
import platform

import optuna
import torch

from .. import __version__

WORKER_ID = f"{platform.node()}:{os.getpid()}"  # recorded with each run: who ran it


def describe_device(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    import numpy

    return {
        "admtune": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "optuna": optuna.__version__, "numpy": numpy.__version__, "platform": platform.platform(),
    }


__all__ = ["WORKER_ID", "describe_device", "versions"]
