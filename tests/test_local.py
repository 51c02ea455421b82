"""Device and thread plans of ``admtune study --workers N``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admtune._workers import MAX_WORKERS, device_plan, threads_per_worker
from admtune.errors import DeviceError, SpecError


@given(st.integers(1, MAX_WORKERS), st.integers(1, 16))
def test_cuda_spreads_workers_evenly_over_the_gpus(n, gpus):
    plan = device_plan("cuda", n, gpus)
    assert len(plan) == n
    counts = [plan.count(f"cuda:{i}") for i in range(gpus)]
    assert sum(counts) == n and max(counts) - min(counts) <= 1  # none idle while another doubles
    assert device_plan("auto", n, gpus) == plan


@given(st.integers(1, MAX_WORKERS), st.sampled_from(["cpu", "cuda:3", "mps"]), st.integers(0, 8))
def test_an_explicit_device_is_every_worker_s(n, device, gpus):
    assert device_plan(device, n, gpus) == [device] * n


def test_auto_without_a_gpu_is_the_cpu_and_cuda_without_one_is_refused():
    assert device_plan("auto", 3, 0) == ["cpu"] * 3
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        device_plan("cuda", 2, 0)


@pytest.mark.parametrize("n", [0, -1, MAX_WORKERS + 1])
def test_worker_count_out_of_range(n):
    with pytest.raises(SpecError, match="--workers"):
        device_plan("cpu", n, 0)


@given(st.integers(1, MAX_WORKERS), st.integers(1, 256))
def test_cpu_workers_share_the_cores_and_get_at_least_one_thread(n, cores):
    threads = threads_per_worker(["cpu"] * n, cores)
    assert threads >= 1
    assert threads * n <= cores or threads == 1
    assert threads_per_worker(["cuda:0"] * n, cores) == cores  # GPU workers keep the host's threads
