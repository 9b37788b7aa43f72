"""Forward and forward+backward cost of each backend on each workload (see workloads.py).

One benchmark per (family, size, backend, pass). `benchmark.group` is "family/size/pass", so
each table of pytest-benchmark compares the backends on one workload and pass; extra_info
carries family, size, nodes (op nodes), backend, pass, threads, and for jax-jit
compile_seconds (trace + lower + XLA compile, not in the timings).

Before any benchmark, `test_backends_agree_on_<family>` checks that every backend computes the
same forward value (and the same gradients) on that workload, so no benchmark times a wrong
computation.

Not measured, in any sweep (the benchmark reports as skipped, with the reason):
see NOT_MEASURED. Measured only with `--bench-sweep full` (deselected in `quick`): the sizes
not in workloads.QUICK_SIZES, and FULL_ONLY_RUNS.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time

import numpy as np
import pytest

from oracles.format import reference_values

from .backends import BACKENDS, PASSES, Prepared, prepare
from .workloads import QUICK_SIZES, SIZES, workload

# The notebook's engine gets tensors wrong: it is benchmarked on the scalar chain only.
FAMILIES_OF = {"notebook": ("scalar_chain",)}

# (family, size, backend, pass) -> why it is not measured. Times are from this 2-core machine.
NOT_MEASURED = {
    **{
        ("scalar_chain", steps, "jax", "forward+backward"): (
            "eager jax.vjp of a 20,000-op chain takes ~12 s per call (it linearizes op by op), too slow to benchmark"
        )
        for steps in (10000, 50000)
    },
    ("scalar_chain", 50000, "jax", "forward"): "eager JAX forward of the 100,000-op chain takes ~1.5 s per call",
    **{
        ("scalar_chain", steps, "jax-jit", pass_name): (
            "jax.jit cannot compile a 20,000-op chain here: XLA's compiler crashes the process (segfault) "
            "on its forward after ~3.4 s of lowering; 2,000 ops already take ~3 s (forward) to ~5 s to compile"
        )
        for steps in (10000, 50000)
        for pass_name in PASSES
    },
}

# (family, size, backend) -> why `quick` leaves it out (it still runs in `full`): JIT compilation
# happens even with --benchmark-disable, and `quick` must stay well under a minute there.
FULL_ONLY_RUNS = {
    ("scalar_chain", 1000, "jax-jit"): "compiling the 2,000-op chain takes ~3 s (forward) + ~5 s (forward+backward)",
}

SLOW_CALL_SECONDS = 0.1  # a call this slow is timed in a few fixed rounds rather than calibrated ones
SLOW_MIN_ROUNDS = 3

RTOL, ATOL = 1e-9, 1e-12  # float64 backends on the same graph differ by rounding only


# The module each backend needs beyond numpy; a backend whose module is missing is skipped.
NEEDS = {"torch": "torch", "jax": "jax", "jax-jit": "jax"}


def missing(backend: str) -> str | None:
    """Why `backend` cannot run here, or None."""
    module = NEEDS.get(backend)
    if module and importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


def _backends_for(family: str) -> list[str]:
    return [backend for backend in BACKENDS if family in FAMILIES_OF.get(backend, (family,))]


def _full_only(family: str, size: int, backend: str | None = None) -> bool:
    return size not in QUICK_SIZES[family] or (family, size, backend) in FULL_ONLY_RUNS


def _in_sweep(config, family: str, size: int, backend: str) -> bool:
    return config.getoption("--bench-sweep") == "full" or not _full_only(family, size, backend)


def _benchmark_parameters():
    for family, sizes in SIZES.items():
        for size in sizes:
            for backend in _backends_for(family):
                for pass_name in PASSES:
                    why = FULL_ONLY_RUNS.get((family, size, backend))
                    mark = pytest.mark.full_sweep(reason=why) if why else pytest.mark.full_sweep
                    marks = [mark] if _full_only(family, size, backend) else []
                    yield pytest.param(
                        family, size, backend, pass_name, marks=marks, id=f"{family}-{size}-{backend}-{pass_name}"
                    )


def _size_parameters(family: str):
    for size in SIZES[family]:
        marks = [pytest.mark.full_sweep] if _full_only(family, size) else []
        yield pytest.param(size, marks=marks, id=str(size))


@functools.cache
def prepared(backend: str, family: str, size: int, pass_name: str) -> Prepared:
    """Built once per session: the agreement test and the benchmark share it (and its JIT compile)."""
    return prepare(backend, workload(family, size), pass_name)


# ---- the computations agree -------------------------------------------------------------------


def assert_backends_agree(config, family: str, size: int) -> None:
    """Every backend measured on this workload (in this sweep) gives the reference's forward value
    (the op table's numpy forward), and torch's gradients."""
    cases = workload(family, size).cases
    expected = [reference_values(case.graph, case.values)[case.graph["output"]] for case in cases]
    # Gradients are checked against an independent AD when one is installed.
    gradient_reference = next((b for b in ("torch", "jax") if not missing(b)), None)
    expected_gradients = None
    if gradient_reference:
        reference_run = prepared(gradient_reference, family, size, "forward+backward")
        expected_gradients = [gradients for _, gradients in reference_run.read(reference_run.run())]
    checked = []
    for backend in _backends_for(family):
        if not _in_sweep(config, family, size, backend) or missing(backend):
            continue
        for pass_name in PASSES:
            if (family, size, backend, pass_name) in NOT_MEASURED:
                continue
            run = prepared(backend, family, size, pass_name)
            for index, (output, gradients) in enumerate(run.read(run.run())):
                where = f"{backend}, {pass_name}, {family} size {size}, case {index}"
                np.testing.assert_allclose(output, expected[index], RTOL, ATOL, err_msg=f"forward value: {where}")
                for name, gradient in (gradients or {}).items() if expected_gradients else ():
                    reference = expected_gradients[index][name]
                    np.testing.assert_allclose(gradient, reference, RTOL, ATOL, err_msg=f"d/d{name}: {where}")
            checked.append(f"{backend}/{pass_name}")
    assert len(checked) >= 2, f"nothing to compare on {family} size {size}: {checked}"


@pytest.mark.parametrize("size", list(_size_parameters("scalar_chain")))
def test_backends_agree_on_scalar_chain(request, size):
    assert_backends_agree(request.config, "scalar_chain", size)


@pytest.mark.parametrize("size", list(_size_parameters("mlp")))
def test_backends_agree_on_mlp(request, size):
    assert_backends_agree(request.config, "mlp", size)


@pytest.mark.parametrize("size", list(_size_parameters("audit_graphs")))
def test_backends_agree_on_audit_graphs(request, size):
    assert_backends_agree(request.config, "audit_graphs", size)


# ---- the benchmarks ---------------------------------------------------------------------------


def time_call(benchmark, run, max_time: float) -> None:
    """Time `run` with pytest-benchmark; with benchmarks disabled, call it once, as a test.

    The first call is a warm-up outside the timings (eager JAX compiles its kernels there) and
    a probe: a call slower than SLOW_CALL_SECONDS gets max(3, max_time / call) rounds of one
    iteration, since calibrating it would cost several calls more.
    """
    if benchmark.disabled:
        benchmark(run)
        return
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    if seconds < SLOW_CALL_SECONDS:
        benchmark(run)
    else:
        rounds = max(SLOW_MIN_ROUNDS, math.ceil(max_time / seconds))
        benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize(("family", "size", "backend", "pass_name"), list(_benchmark_parameters()))
def test_bench(benchmark, request, one_thread, not_measured, family, size, backend, pass_name):
    reason = NOT_MEASURED.get((family, size, backend, pass_name)) or missing(backend)
    if reason:
        not_measured(reason)
        pytest.skip(f"not measured: {backend} {pass_name} on {family} size {size}: {reason}")
    run = prepared(backend, family, size, pass_name)
    benchmark.group = f"{family}/{size}/{pass_name}"
    benchmark.extra_info.update(
        {
            "family": family,
            "size": size,
            "nodes": workload(family, size).nodes,
            "backend": backend,
            "pass": pass_name,
            "threads": one_thread,
        }
    )
    if run.compile_seconds is not None:
        benchmark.extra_info["compile_seconds"] = run.compile_seconds
    time_call(benchmark, run.run, float(request.config.getoption("benchmark_max_time")))
