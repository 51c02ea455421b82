"""Which torch device a command was asked for, checked before anything runs (torch alone: the
benchmarks use it on machines without the study engine's dependencies)."""

from __future__ import annotations

import torch

from .errors import DeviceError


def resolve_device(device: str) -> torch.device:
    """``auto`` → cuda if available else cpu; ``cuda``/``cuda:N`` must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {device!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device} was asked for, but no CUDA GPU is available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are available"
            )
    elif dev.type not in ("cpu", "mps"):
        raise DeviceError(f"--device {device!r} is not supported (use auto, cpu, cuda or cuda:N)")
    return dev


__all__ = ["resolve_device"]
