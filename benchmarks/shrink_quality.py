"""How well the shrinker does on planted single-rule bugs: minimal-case sizes and times.

    python -m benchmarks.shrink_quality [--graphs N] [--limit K]

For every planted bug in examples/broken_engines.py (one wrong rule each), audits N random
graphs, shrinks up to K failing graphs, and reports the distribution of minimal sizes (op
nodes, largest input) and shrink times, and whether triage named the planted op.
"""

import argparse

import numpy as np

from examples import broken_engines
from oracles.audit import AuditConfig, run_audit
from oracles.kinds import Kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, default=100)
    parser.add_argument("--limit", type=int, default=10, help="failing graphs shrunk per bug")
    parser.add_argument("--oracles", default="torch,numeric")
    args = parser.parse_args()
    rows, all_seconds, small = [], [], []
    bugs = [*broken_engines.BUGS, "fan_out_overwritten"]
    for bug in bugs:
        planted_op = broken_engines.BUGS[bug][0] if bug in broken_engines.BUGS else None
        config = AuditConfig(
            graphs=args.graphs, engine=f"examples.broken_engines:{bug}", oracles=tuple(args.oracles.split(",")),
            workers=2, shrink_limit=args.limit,
        )  # fmt: skip
        run = run_audit(config)
        results, investigations, wall = run.results, run.investigations, run.wall_seconds
        shrunk = [i for i in investigations if i.minimal is not None]
        nodes = [i.minimal_size[0] for i in shrunk]
        largest = [max([int(np.size(v)) for v in i.minimal["values"].values()] or [0]) for i in shrunk]
        seconds = [i.shrink_seconds for i in shrunk]
        # A wrong rule must be named by its op; lost fan-out accumulation is a composition bug.
        named = sum(1 for i in shrunk if (i.op == planted_op if planted_op else i.kind == Kind.COMPOSITION))
        ok = sum(1 for n, e in zip(nodes, largest) if n <= 3 and e <= 4)
        all_seconds += seconds
        small += [n <= 3 and e <= 4 for n, e in zip(nodes, largest)]
        failing = sum(1 for r in results if r.findings)
        rows.append((bug, failing, len(shrunk), nodes, largest, seconds, named, ok, wall))
    print(f"{'bug':28s} failing shrunk  op nodes (min/med/max)  largest input  median s  max s  blamed right  small")
    for bug, failing, count, nodes, largest, seconds, named, ok, _wall in rows:
        if not count:
            print(f"{bug:28s} {failing:7d} {count:6d}  -")
            continue
        print(
            f"{bug:28s} {failing:7d} {count:6d}  {min(nodes)}/{int(np.median(nodes))}/{max(nodes):<18d} "
            f"{max(largest):<14d} {np.median(seconds):<9.3f} {max(seconds):<6.3f} {named}/{count}    {ok}/{count}"
        )
    print(
        f"all: {len(small)} shrinks, {np.mean(small) * 100:.0f}% with <= 3 op nodes and <= 4 elements per input; "
        f"shrink time median {np.median(all_seconds):.3f} s, 90th percentile {np.quantile(all_seconds, 0.9):.3f} s, "
        f"max {max(all_seconds):.3f} s"
    )


if __name__ == "__main__":
    main()
