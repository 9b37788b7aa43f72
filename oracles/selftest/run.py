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

import dataclasses
import hashlib
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field

import numpy as np

from ..backends import start_isolated_engine
from ..check import Backends, CheckMode, load_backends
from ..diagnose import engine_findings
from ..generate import GeneratorConfig, generate_case
from ..kinds import Kind
from ..ops import OPS
from ..pipeline import FULL, Budget, run_case
from ..workers import kill_pool, spawn_pool
from .planted import BUGS, ENGINE_BUGS, SEED_BUGS

SEEDS = (0, 1, 2)
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
            return kind == Kind.COMPOSITION
        if self.category == "broadcasting":
            return op in BROADCASTING_OPS
        if self.category == "dtype":
            return kind == Kind.DTYPE
        return kind == Kind.CRASH and op == self.op


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
    kind: Kind | None = None  # the first catch's diagnosis
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


class RememberedAnswers:
    """An AD reference whose answers are remembered in this worker: every hunt checks the same
    cases in the same order (the audit's, seed by seed), and a reference's answer to a case is
    the same whichever planted engine is beside it, so each case costs JAX and PyTorch once per
    worker, not once per planted bug. The answers come back as copies: nothing that reads them
    can change what is remembered."""

    LIMIT = 4096  # cases remembered; the oldest are forgotten first

    def __init__(self, plugin):
        self.plugin = plugin
        self.answers: OrderedDict[bytes, tuple] = OrderedDict()

    def __getattr__(self, name):  # name, ops, unsupported, accepts: the reference's own
        return getattr(self.plugin, name)

    def evaluate(self, graph, values, cotangent):
        key = _case_key(graph, values, cotangent)
        if key not in self.answers:
            self.answers[key] = self.plugin.evaluate(graph, values, cotangent)
            if len(self.answers) > self.LIMIT:
                self.answers.popitem(last=False)
        value, gradients = self.answers[key]
        return np.array(value, copy=True), {name: np.array(g, copy=True) for name, g in gradients.items()}


def _case_key(graph, values, cotangent) -> bytes:
    digest = hashlib.sha256(json.dumps(graph, sort_keys=True).encode())
    for name in sorted(values):
        array = np.ascontiguousarray(values[name])
        digest.update(f"{name}:{array.dtype.str}{array.shape}".encode() + array.tobytes())
    array = np.ascontiguousarray(cotangent)
    digest.update(f"cotangent:{array.dtype.str}{array.shape}".encode() + array.tobytes())
    return digest.digest()


def _load_references(oracles: tuple[str, ...]) -> None:
    loaded = load_backends("oracles.selftest.planted:correct", oracles)
    loaded.engine.plugin.close()
    loaded.references = [dataclasses.replace(r, plugin=RememberedAnswers(r.plugin)) for r in loaded.references]
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
                # The first catch is shrunk, which gives the minimal case and the blame.
                shrink = Budget() if result.kind is None else None
                run = run_case(generate_case(seed, index, generator), backends, index, mode, shrink=shrink)
                result.graphs_checked += 1
                result.jax_graphs += "jax" in run.result.seconds
                if not engine_findings(run.result, backends):
                    continue
                result.caught_by_seed[str(seed)] = index + 1
                if run.minimal is not None:
                    result.kind, result.blamed_op = run.minimal.kind, run.minimal.op
                    result.blamed_right = bug.blamed_right(run.minimal.kind, run.minimal.op)
                    if run.minimal.minimal is not None:
                        result.minimal_op_nodes, result.minimal_elements = run.minimal.minimal_size
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
    pool = spawn_pool(max(1, min(workers, len(bugs))), _load_references, (oracles,))
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
