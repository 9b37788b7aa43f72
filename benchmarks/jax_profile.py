"""Where JAX's time goes in an audit: the JAX reference alone, in one fresh process, on the
audit's own first N graphs, with the time split into lowering (MLIR), compiling (XLA, or
loading from the persistent cache) and the rest, and the kernels counted per primitive.

    python -m benchmarks.jax_profile --graphs 300              # with the persistent cache
    python -m benchmarks.jax_profile --graphs 300 --cold       # with an empty one

Eager JAX lowers and compiles every primitive once per new combination of shapes, dtypes and
parameters in each process; this shows how many such kernels the audit's graphs meet and what
each costs. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, default=300)
    parser.add_argument("--cold", action="store_true", help="an empty persistent cache")
    args = parser.parse_args(argv)
    if not args.cold:
        return _profile(args)
    cold = tempfile.mkdtemp(prefix="jax-cold-")
    os.environ["AUTODIFF_AUDIT_JAX_CACHE"] = cold
    try:
        return _profile(args)
    finally:
        shutil.rmtree(cold, ignore_errors=True)  # an empty cache for this run only: nothing left in TMPDIR


def _profile(args) -> int:
    from jax._src import compiler, dispatch  # noqa: F401 - the functions timed below live there
    from jax._src.interpreters import mlir, pxla

    from oracles.backends import load_reference
    from oracles.generate import GeneratorConfig, generate_case

    spent: collections.Counter = collections.Counter()
    kernels: collections.Counter = collections.Counter()

    def timed(module, name: str, label: str, count_kernel: bool = False):
        original = getattr(module, name)

        def wrapper(*arguments, **keywords):
            if count_kernel:
                kernels[str(arguments[1].operation.attributes["sym_name"]).strip('"')] += 1
            start = time.perf_counter()
            try:
                return original(*arguments, **keywords)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(module, name, wrapper)

    timed(mlir, "make_ir_context", "making MLIR contexts")
    timed(mlir, "lower_jaxpr_to_module", "lowering to MLIR (contexts included)")
    timed(pxla.compiler, "compile_or_get_cached", "compiling, or loading from the cache", count_kernel=True)

    jax = load_reference("jax")
    generator = GeneratorConfig()
    cases = [generate_case(0, index, generator) for index in range(args.graphs)]
    per_graph = []
    for case in cases:
        start = time.perf_counter()
        jax.evaluate(case.graph, case.values, case.cotangent)
        per_graph.append(time.perf_counter() - start)
    total = sum(per_graph)
    print(f"JAX on {args.graphs} default graphs ({'empty' if args.cold else 'persistent'} cache): {total:.1f} s, "
          f"{1000 * total / args.graphs:.1f} ms per graph")  # fmt: skip
    fifth = max(1, args.graphs // 5)
    for start in range(0, args.graphs, fifth):
        chunk = per_graph[start : start + fifth]
        print(f"  graphs {start}..{start + len(chunk) - 1}: {1000 * sum(chunk) / len(chunk):.1f} ms per graph")
    for label, seconds in spent.most_common():
        print(f"  {label}: {seconds:.1f} s ({seconds / total:.0%})")
    count = sum(kernels.values())
    print(f"  kernels: {count} ({count / args.graphs:.1f} per graph), by primitive:")
    print("   " + ", ".join(f"{name.removeprefix('jit_')} {n}" for name, n in kernels.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
