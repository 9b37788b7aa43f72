"""The two node engines on the 1,000-step scalar chain, without pytest:

    python -m benchmarks.chains [STEPS]

prints the median forward and forward+backward time of our `autodiff` and of the notebook's
engine (`examples.notebook_engine`). The chain and both engines' node graphs come from the
benchmark suite (workloads.py, backends.py), so these are the numbers `test_bench.py` measures.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .backends import PASSES, prepare
from .workloads import workload

ENGINES = ("autodiff", "notebook")


def median_seconds(function, repeats: int = 30) -> float:
    """The median wall time of `repeats` calls of `function()` (after one untimed warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(steps: int = 1000, repeats: int = 50) -> None:
    chain = workload("scalar_chain", steps)
    print(f"scalar_chain, {steps} steps ({chain.nodes} op nodes), median of {repeats} calls:")
    for pass_name in PASSES:
        for engine in ENGINES:
            seconds = median_seconds(prepare(engine, chain, pass_name).run, repeats)
            per_node = seconds / chain.nodes * 1e6
            print(f"  {engine:9s} {pass_name:17s} {seconds * 1e3:8.3f} ms  ({per_node:.3f} us per op node)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
