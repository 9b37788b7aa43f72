"""Where the JAX reference's time goes: random graphs through `jax_backend.evaluate` in this one
process, under cProfile, summed into a few parts (each the cumulative time of the functions named).

    python tools/jax_reference_profile.py [--graphs 250] [--seed 3] [--dtype float64]

Run it twice: the first run of a new shape of graphs fills the kernel store, the second shows a
warm audit's worker. AUTODIFF_AUDIT_JAX_KERNELS=off profiles plain JAX instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# part -> (file suffix, function name) pairs whose cumulative times add up to it. The parts
# overlap where JAX nests them (a kernel is loaded while the VJP is traced): they are not a sum.
PARTS = {
    "evaluate (everything)": [("jax_backend.py", "evaluate")],
    "forward and linearisation (jax.vjp)": [("api.py", "vjp")],
    "backward pass (the VJP function)": [("api.py", "_vjp3_bwd")],
    "kernels loaded from the store": [("jax_kernels.py", "_load")],
    "kernels compiled (store misses)": [("jax_kernels.py", "_compile")],
    "lowering to MLIR (what the store does not hold)": [("mlir.py", "lower_jaxpr_to_module")],
    "kernels run (the store's)": [("stages.py", "__call__")],
    "jitted functions traced (softmax, reductions)": [("pjit.py", "_pjit_linearize")],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, default=250)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--dtype", default="float64")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    from oracles.backends import jax_backend, jax_kernels
    from oracles.format import case_to_json
    from oracles.generate import GeneratorConfig, generate_case

    imported = time.perf_counter() - start
    generator = GeneratorConfig(dtype=args.dtype)
    cases = []
    for index in range(args.graphs):
        case = generate_case(args.seed, index, generator)
        cases.append((case_to_json(case)["graph"], case.values, case.cotangent))
    profile = cProfile.Profile()
    profile.enable()
    for graph, values, cotangent in cases:
        jax_backend.evaluate(graph, values, cotangent)
    profile.disable()

    stats = pstats.Stats(profile).stats  # {(file, line, name): (calls, _, own, cumulative, callers)}
    total = sum(entry[3] for key, entry in stats.items() if key[0].endswith("jax_backend.py") and key[2] == "evaluate")
    print(f"{args.graphs} graphs ({args.dtype}, seed {args.seed}), one process: {1000 * total / args.graphs:.1f} ms "
          f"a graph (importing JAX and the backend: {imported:.1f} s)")  # fmt: skip
    store = jax_kernels.installed()
    print(f"kernel store: {store.counts if store else 'off'}; note: {jax_backend.note}")
    print("| part | seconds | share of evaluate |")
    print("| --- | ---: | ---: |")
    for part, functions in PARTS.items():
        seconds = sum(
            entry[3] for key, entry in stats.items()
            if any(key[0].endswith(suffix) and key[2] == name for suffix, name in functions)
        )  # fmt: skip
        print(f"| {part} | {seconds:.2f} | {100 * seconds / total:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
