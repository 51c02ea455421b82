"""User-facing errors: each carries one clear sentence; the CLI prints it and exits with code 2."""

from __future__ import annotations


class AdmtuneError(Exception):
    """Base class: the message is one sentence naming the problem, shown to the user as is."""

    exit_code = 2


class SpecError(AdmtuneError):
    """A study spec, an override or a workload option is malformed or out of range."""


class DataError(AdmtuneError):
    """A dataset is missing or corrupt (the message says where it looked and how to provide it)."""


class DeviceError(AdmtuneError):
    """The requested device is not available."""


class StorageError(AdmtuneError):
    """The Optuna storage cannot be used (unreachable, missing driver, fingerprint mismatch …)."""
