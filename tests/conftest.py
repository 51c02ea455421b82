"""Test configuration: property tests are derandomized under CI (CI=true), so that a submission's
verdict never depends on which random examples Hypothesis drew that day; locally they explore."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
