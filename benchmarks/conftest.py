"""pytest configuration of the benchmark suite: the sweep, fixed thread counts, machine info.

    pytest benchmarks --benchmark-enable                      # quick sweep (about a minute)
    pytest benchmarks --benchmark-enable --bench-sweep full   # every size

Every benchmark runs with ONE thread in numpy's BLAS and torch's OpenMP/intra-op pools
(`threadpoolctl.threadpool_limits(1)` for the session, `torch.set_num_threads(1)`), so the
backends are compared on equal terms and the numbers do not depend on the core count.
XLA's own thread pool is not limited (nothing the benchmarks run is large enough to use it);
`XLA_FLAGS` is recorded. The thread counts go into every benchmark's `extra_info["threads"]`
and, with the library versions, into the machine info of the JSON. So does `not_measured`: each
benchmark the sweep left out or skipped, with the reason (the report's plots say why a curve stops).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform

import pytest
import threadpoolctl

SWEEPS = ("quick", "full")
FULL_ONLY = "full_sweep"  # the marker of parameters that only `--bench-sweep full` runs
THREADS = pytest.StashKey[dict]()
THREADPOOLS = pytest.StashKey[list]()
NOT_MEASURED = pytest.StashKey[list]()  # {family, size, backend, pass, reason} of each benchmark not run
VERSIONED = ("numpy", "torch", "jax", "jaxlib", "pytest-benchmark", "threadpoolctl")


def pytest_addoption(parser):
    parser.addoption(
        "--bench-sweep",
        choices=SWEEPS,
        default="quick",
        help="which sizes the benchmarks in benchmarks/ measure: quick (default: a subset that runs in about "
        "a minute) or full (every size; some minutes)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", f"{FULL_ONLY}: a benchmark parameter that only `--bench-sweep full` runs")


def record_not_measured(config, params: dict, reason: str) -> None:
    """Notes that the benchmark with these parameters (family, size, backend, pass_name) is not
    measured, and why: the JSON's machine info carries it, and the report's plots say why a
    curve stops."""
    keys = ("family", "size", "backend", "pass_name")
    if all(key in params for key in keys):
        entry = dict(zip(("family", "size", "backend", "pass"), (params[key] for key in keys)), reason=reason)
        config.stash.setdefault(NOT_MEASURED, []).append(entry)


@pytest.fixture
def not_measured(request):
    """Call with the reason before skipping a benchmark: `not_measured(reason)`."""
    callspec = getattr(request.node, "callspec", None)
    return lambda reason: record_not_measured(request.config, callspec.params if callspec else {}, reason)


@pytest.hookimpl(tryfirst=True)  # before `-k`/`-m` deselect: every benchmark the sweep leaves out is recorded
def pytest_collection_modifyitems(config, items):
    if config.getoption("--bench-sweep") == "full":
        return
    deselected = [item for item in items if item.get_closest_marker(FULL_ONLY)]
    for item in deselected:
        callspec = getattr(item, "callspec", None)
        why = item.get_closest_marker(FULL_ONLY).kwargs.get("reason") or "a size the quick sweep leaves out"
        record_not_measured(config, callspec.params if callspec else {}, f"only in `--bench-sweep full` ({why})")
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(FULL_ONLY)]


def threadpools() -> list[dict]:
    """The thread pools threadpoolctl sees now: internal_api, num_threads, version of each."""
    return [
        {key: pool.get(key) for key in ("internal_api", "num_threads", "version")}
        for pool in threadpoolctl.threadpool_info()
    ]


def thread_counts() -> dict:
    """{pool: threads}, flat, for extra_info: e.g. {"openblas 0.3.31": 1, "openmp": 1, "torch": 1, ...}."""
    counts = {}
    for pool in threadpools():
        name = pool["internal_api"] + (f" {pool['version']}" if pool["version"] else "")
        counts[name] = pool["num_threads"]
    torch = _torch()
    counts["torch"] = torch.get_num_threads() if torch else "not installed"
    counts["xla"] = os.environ.get("XLA_FLAGS") or "not limited (XLA_FLAGS unset)"
    return counts


@pytest.fixture(scope="session", autouse=True)
def one_thread(request) -> dict:
    """One thread per pool for the whole benchmark session; yields the thread counts in force."""
    import numpy  # noqa: F401  (loaded first, so that threadpoolctl sees and limits their pools)

    torch = _torch()
    torch_threads = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    try:
        with threadpoolctl.threadpool_limits(limits=1):
            # Read while the limits hold: the JSON's machine info is written after the session.
            request.config.stash[THREADS] = counts = thread_counts()
            request.config.stash[THREADPOOLS] = threadpools()
            yield counts
    finally:
        if torch:
            torch.set_num_threads(torch_threads)


def _torch():
    """torch, or None where it is not installed (the numpy-only environments of the matrix)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-benchmark: no error where it is not installed
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["versions"] = {"python": platform.python_version(), **{p: _version(p) for p in VERSIONED}}
    machine_info["threads"] = config.stash.get(THREADS, None) or {"not recorded": "no benchmark ran"}
    machine_info["threadpools"] = config.stash.get(THREADPOOLS, [])
    machine_info["bench_sweep"] = config.getoption("--bench-sweep", "quick")
    machine_info["not_measured"] = config.stash.get(NOT_MEASURED, [])
