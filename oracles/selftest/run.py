"""The selftest: how much an audit with given generator settings can catch, measured on the
planted bugs of `planted.py`.

For every planted bug, and for each of a few root seeds, the audit's own cases are checked in
order, in the audit's mode (full or tiered: check.CheckMode), until the bug shows, at most
`graphs` of them. That gives how many graphs it takes to catch; the
first catch is then diagnosed and shrunk, which gives the minimal case's size and whether
the blame lands where the bug is. A bug that no seed catches survived: the settings cannot
see it (say, a transpose permutation bug with `--max-rank 2`).
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context

import numpy as np

from ..audit import _exit_worker, kill_pool
from ..backends import start_isolated_engine
from ..backends.isolation import watch_parent
from ..check import Backends, CheckMode, check_in_mode, load_backends
from ..diagnose import diagnose_case, investigate
from ..generate import GeneratorConfig, generate_case
from ..ops import OPS
from .planted import BUGS, ENGINE_BUGS, SEED_BUGS

SEEDS = (0, 1, 2)
FULL = CheckMode()  # every reference on every graph, as a default audit
# Where a gradient is summed back over broadcast axes: the broadcasting ops, and broadcast_to.
BROADCASTING_OPS = frozenset(name for name, op in OPS.items() if op.broadcasts) | {"broadcast_to"}


@dataclass(frozen=True)
class PlantedBug:
    name: str
    category: str  # local rule, composition, broadcasting, dtype, crash
    op: str | None  # the op whose rule is wrong, when it is one op's
    description: str

    @property
    def spec(self) -> str:
        return f"oracles.selftest.planted:{self.name}"

    def blamed_right(self, kind: str, op: str | None) -> bool:
        """Whether the diagnosis (kind, op) points at this bug."""
        if self.category == "local rule":
            return op == self.op
        if self.category == "composition":
            return kind == "composition"
        if self.category == "broadcasting":
            return op in BROADCASTING_OPS
        if self.category == "dtype":
            return kind == "dtype"
        return kind == "crash" and op == self.op


def battery() -> list[PlantedBug]:
    bugs = [
        PlantedBug(name, "local rule", bug.op, f"{bug.op}: {'seed op' if name in SEED_BUGS else 'wider op set'}")
        for name, bug in BUGS.items()
    ]
    for name, (category, description) in ENGINE_BUGS.items():
        bugs.append(PlantedBug(name, category, "dot" if category == "crash" else None, description))
    return bugs


@dataclass
class BugResult:
    bug: str
    category: str
    op: str | None
    description: str
    caught_by_seed: dict[str, int | None] = field(default_factory=dict)  # seed -> graphs it took, or None
    kind: str | None = None  # the first catch's diagnosis
    blamed_op: str | None = None
    blamed_right: bool | None = None
    minimal_op_nodes: int | None = None
    minimal_elements: int | None = None
    error: str | None = None
    graphs_checked: int = 0  # every graph the hunt checked, over all seeds
    jax_graphs: int = 0  # of those, the ones JAX checked

    @property
    def caught(self) -> bool:
        return any(n is not None for n in self.caught_by_seed.values())

    @property
    def graphs_to_catch(self) -> list[int]:
        return sorted(n for n in self.caught_by_seed.values() if n is not None)

    def row(self) -> dict:
        taken = self.graphs_to_catch
        return {
            **asdict(self),
            "caught": self.caught,
            "seeds_caught": len(taken),
            "median_graphs": float(np.median(taken)) if taken else None,
            "worst_graphs": max(taken) if taken else None,
        }


# Each worker loads the references once.
_references: dict = {}


def _worker_start(oracles: tuple[str, ...], parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch_parent, args=(parent, _exit_worker), daemon=True).start()
    loaded = load_backends("oracles.selftest.planted:correct", oracles)
    loaded.engine.plugin.close()
    _references["backends"] = loaded


def hunt(
    bug: PlantedBug, generator: GeneratorConfig, graphs: int, seeds=SEEDS, timeout: float = 10.0,
    mode: CheckMode = FULL,
) -> BugResult:  # fmt: skip
    """Check the audit's cases of each seed in order, in `mode`, until `bug` shows; diagnose and
    shrink the first catch."""
    result = BugResult(bug.name, bug.category, bug.op, bug.description)
    engine = start_isolated_engine(bug.spec, timeout, os.devnull)  # a planted engine's numpy warnings are noise
    backends = Backends(engine, _references["backends"].references, _references["backends"].numeric)
    try:
        for seed in seeds:
            result.caught_by_seed[str(seed)] = None
            for index in range(graphs):
                case = generate_case(seed, index, generator)
                checked = check_in_mode(case, backends, index, mode)
                result.graphs_checked += 1
                result.jax_graphs += "jax" in checked.seconds
                mine = [f for f in checked.findings if f.backend == engine.name]
                if not mine:
                    continue
                result.caught_by_seed[str(seed)] = index + 1
                if result.kind is None:
                    diagnose_case(case, checked, backends)
                    investigation = investigate(case, index, mine[0], backends)
                    result.kind, result.blamed_op = investigation.kind, investigation.op
                    result.blamed_right = bug.blamed_right(investigation.kind, investigation.op)
                    if investigation.minimal is not None:
                        result.minimal_op_nodes, result.minimal_elements = investigation.minimal_size
                break
    except Exception as error:  # a selftest that cannot finish one bug reports it, and goes on
        result.error = f"{type(error).__name__}: {error}"
    finally:
        engine.plugin.close()
    return result


def _worker_hunt(bug, generator, graphs, seeds, timeout, mode) -> BugResult:
    return hunt(bug, generator, graphs, seeds, timeout, mode)


def run_selftest(
    generator: GeneratorConfig,
    graphs: int,
    oracles: tuple[str, ...],
    workers: int = 1,
    seeds=SEEDS,
    timeout: float = 10.0,
    progress=None,
    stop: threading.Event | None = None,
    mode: CheckMode = FULL,
) -> tuple[list[BugResult], bool]:
    """Every planted bug hunted with these settings; returns the results (in battery order) and
    whether a stop cut it short."""
    stop = stop or threading.Event()
    bugs = battery()
    pool = ProcessPoolExecutor(
        max(1, min(workers, len(bugs))), mp_context=get_context("spawn"), initializer=_worker_start,
        initargs=(oracles, os.getpid()),
    )  # fmt: skip
    futures: dict[Future, int] = {
        pool.submit(_worker_hunt, bug, generator, graphs, seeds, timeout, mode): k for k, bug in enumerate(bugs)
    }
    done: dict[int, BugResult] = {}
    pending = set(futures)
    try:
        while pending and not stop.is_set():
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                done[futures[future]] = future.result()
                if progress:
                    progress(1)
    finally:
        if stop.is_set():
            kill_pool(pool)
        else:
            pool.shutdown(wait=True)
    return [done[k] for k in sorted(done)], stop.is_set()


def render_markdown(summary: dict, rows: list[dict]) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in summary["settings"].items())
    lines = [
        f"# Selftest: {summary['caught']} of {summary['bugs']} planted bugs caught "
        f"(kill rate {summary['kill_rate']:.0%})" + (" - INTERRUPTED" if summary["interrupted"] else ""),
        "",
        f"Settings: {settings}. Each bug is hunted in the audit's own cases of seeds "
        f"{', '.join(map(str, summary['seeds']))}, up to {summary['graphs']} graphs each; JAX checked "
        f"{summary['jax_fraction'] or 0:.1%} of the {summary['graphs_checked']} graphs checked.",
        "",
        "| bug | category | op | caught (seeds) | graphs to catch (median / worst) | minimal case | blamed right |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        taken = f"{row['median_graphs']:g} / {row['worst_graphs']}" if row["caught"] else "-"
        minimal = (
            f"{row['minimal_op_nodes']} op nodes, {row['minimal_elements']} elements"
            if row["minimal_op_nodes"]
            else "-"
        )
        right = {True: "yes", False: f"no ({row['kind']} in {row['blamed_op']})", None: "-"}[row["blamed_right"]]
        caught = f"yes ({row['seeds_caught']}/{len(summary['seeds'])})" if row["caught"] else "**no**"
        lines.append(
            f"| `{row['bug']}` | {row['category']} | {row['op'] or '-'} | {caught} | {taken} | {minimal} | {right} |"
        )
    survivors = [row for row in rows if not row["caught"]]
    if survivors:
        lines += ["", "Survivors (these settings cannot see them):", ""]
        lines += [f"- `{row['bug']}`: {row['description']}" for row in survivors]
    return "\n".join(lines) + "\n"
