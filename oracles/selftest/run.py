"""The selftest: how much an audit with given generator settings can catch, measured on the
planted bugs of `planted.py`.

For every planted bug, and for each of a few root seeds, the audit's own cases are checked in
order, in the audit's mode (full or tiered: check.CheckMode), until the bug shows, at most
`graphs` of them. That gives how many graphs it takes to catch; the
first catch is then diagnosed and shrunk, which gives the minimal case's size and whether
the blame lands where the bug is (its op, and the derivative mode it lives in). A bug that no
seed catches survived: the settings cannot see it (say, a transpose permutation bug with
`--max-rank 2`, or a forward-mode bug with `--modes vjp`).
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

from ..backends import DERIVATIVE_MODES, start_isolated_engine
from ..check import Backends, CheckMode, load_backends
from ..check.modes import mode_of
from ..diagnose import engine_findings
from ..generate import GeneratorConfig, generate_case
from ..kinds import Kind
from ..ops import OPS
from ..pipeline import FULL, Budget, run_case, shrink_target
from ..workers import kill_pool, spawn_pool
from .planted import BUGS, ENGINE_BUGS, MODE_BUGS, SEED_BUGS

SEEDS = (0, 1, 2)
# Where a gradient is summed back over broadcast axes: the broadcasting ops, and broadcast_to.
BROADCASTING_OPS = frozenset(name for name, op in OPS.items() if op.broadcasts) | {"broadcast_to"}
MODE_NAMES = {"vjp": "reverse mode (vjp)", "jvp": "forward mode (jvp)", "hvp": "second order (hvp)"}
# The kinds that blame a bug in forward mode or second order: the references' verdict on that
# mode, NaN/Inf in it (reduce_prod's y / a at a zero), or the engine's own modes disagreeing.
MODE_KINDS = {"jvp": {Kind.JVP, Kind.NAN_INF, Kind.MODE_MISMATCH}, "hvp": {Kind.HVP, Kind.NAN_INF, Kind.MODE_MISMATCH}}


@dataclass(frozen=True)
class PlantedBug:
    name: str
    category: str  # local rule, composition, broadcasting, dtype, crash
    op: str | None  # the op whose rule is wrong, when it is one op's
    description: str
    mode: str = "vjp"  # the derivative mode it is wrong in: vjp, jvp (forward) or hvp (second order)

    @property
    def spec(self) -> str:
        return f"oracles.selftest.planted:{self.name}"

    def blamed_right(self, kind: str, op: str | None, mode: str = "vjp") -> bool:
        """Whether the diagnosis (kind, op, and the derivative mode of the finding: check.modes.mode_of)
        points at this bug. A bug in forward mode or second order is blamed right only by a finding
        in its own mode, of a kind of that mode (MODE_KINDS), on its op."""
        if self.mode in MODE_KINDS:
            return op == self.op and kind in MODE_KINDS[self.mode] and mode == self.mode
        if self.category == "local rule":
            return op == self.op
        if self.category == "composition":
            return kind == Kind.COMPOSITION
        if self.category == "broadcasting":
            return op in BROADCASTING_OPS
        if self.category == "dtype":
            return kind == Kind.DTYPE
        return kind == Kind.CRASH and op == self.op


def battery(names=None) -> list[PlantedBug]:
    """Every planted bug, or those named in `names` (in battery order)."""
    bugs = [
        PlantedBug(name, "local rule", bug.op, f"{bug.op}: {'seed op' if name in SEED_BUGS else 'wider op set'}")
        for name, bug in BUGS.items()
    ]
    bugs += [
        PlantedBug(name, "local rule", bug.op, f"{bug.op}: {MODE_NAMES[bug.mode]}", bug.mode)
        for name, bug in MODE_BUGS.items()
    ]
    for name, (category, description) in ENGINE_BUGS.items():
        bugs.append(PlantedBug(name, category, "dot" if category == "crash" else None, description))
    if names is not None:
        unknown = set(names) - {bug.name for bug in bugs}
        if unknown:
            raise ValueError(f"unknown planted bug(s): {', '.join(sorted(unknown))}")
        bugs = [bug for bug in bugs if bug.name in names]
    return bugs


@dataclass
class BugResult:
    bug: str
    category: str
    op: str | None
    description: str
    mode: str = "vjp"  # the derivative mode the bug lives in
    caught_by_seed: dict[str, int | None] = field(default_factory=dict)  # seed -> graphs it took, or None
    kind: Kind | None = None  # the first catch's diagnosis
    blamed_op: str | None = None
    blamed_mode: str | None = None  # the derivative mode of the first catch's finding
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
    cases in the same order (the audit's, seed by seed), and a reference's answer to a case (its
    VJP, and its JVP and HVP along the case's tangents) is the same whichever planted engine is
    beside it, so each case costs JAX and PyTorch once per worker, not once per planted bug. The
    answers come back as copies: nothing that reads them can change what is remembered."""

    LIMIT = 16384  # answers remembered (a few KB each); the least recently used are forgotten first

    def __init__(self, plugin):
        self.plugin = plugin
        self.answers: OrderedDict[bytes, object] = OrderedDict()

    def __getattr__(self, name):  # name, ops, unsupported, accepts: the reference's own
        return getattr(self.plugin, name)

    def _remembered(self, key: bytes, answer):
        if key in self.answers:
            self.answers.move_to_end(key)
        else:
            self.answers[key] = answer()
            if len(self.answers) > self.LIMIT:
                self.answers.popitem(last=False)
        return self.answers[key]

    def evaluate(self, graph, values, cotangent):
        key = _case_key("vjp", graph, values, {"cotangent": cotangent})
        value, gradients = self._remembered(key, lambda: self.plugin.evaluate(graph, values, cotangent))
        return _copy(value), {name: _copy(g) for name, g in gradients.items()}

    def jvp(self, graph, values, tangents):
        key = _case_key("jvp", graph, values, {f"t:{n}": t for n, t in tangents.items()})
        value, product = self._remembered(key, lambda: self.plugin.jvp(graph, values, tangents))
        return _copy(value), _copy(product)

    def hvp(self, graph, values, cotangent, tangents):
        key = _case_key("hvp", graph, values, {"cotangent": cotangent, **{f"t:{n}": t for n, t in tangents.items()}})
        products = self._remembered(key, lambda: self.plugin.hvp(graph, values, cotangent, tangents))
        return {name: _copy(p) for name, p in products.items()}


def _copy(x) -> np.ndarray:
    return np.array(x, copy=True)


def _case_key(mode: str, graph, values, more: dict) -> bytes:
    digest = hashlib.sha256(mode.encode() + json.dumps(graph, sort_keys=True).encode())
    for name, array in [*sorted(values.items()), *sorted(more.items())]:
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}{array.shape}".encode() + array.tobytes())
    return digest.digest()


def _load_references(oracles: tuple[str, ...]) -> None:
    loaded = load_backends("oracles.selftest.planted:correct", oracles)
    loaded.engine.plugin.close()
    loaded.references = [dataclasses.replace(r, plugin=RememberedAnswers(r.plugin)) for r in loaded.references]
    _references["backends"] = loaded


def hunt(
    bug: PlantedBug, generator: GeneratorConfig, graphs: int, seeds=SEEDS, timeout: float = 10.0,
    mode: CheckMode = FULL, modes=DERIVATIVE_MODES,
) -> BugResult:  # fmt: skip
    """Check the audit's cases of each seed in order, in `mode` and in the derivative `modes`,
    until `bug` shows; diagnose and shrink the first catch."""
    result = BugResult(bug.name, bug.category, bug.op, bug.description, bug.mode)
    engine = start_isolated_engine(bug.spec, timeout, os.devnull)  # a planted engine's numpy warnings are noise
    loaded = _references["backends"]
    backends = Backends(engine, loaded.references, loaded.numeric, modes=frozenset(modes))
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
                    target = shrink_target(run.result, backends)  # the finding shrunk, in its mode
                    result.kind, result.blamed_op = run.minimal.kind, run.minimal.op
                    result.blamed_mode = mode_of(target) if target is not None else None
                    result.blamed_right = bug.blamed_right(run.minimal.kind, run.minimal.op, result.blamed_mode)
                    if run.minimal.minimal is not None:
                        result.minimal_op_nodes, result.minimal_elements = run.minimal.minimal_size
                break
    except Exception as error:  # a selftest that cannot finish one bug reports it, and goes on
        result.error = f"{type(error).__name__}: {error}"
    finally:
        engine.plugin.close()
    return result


def _worker_hunt(bug, generator, graphs, seeds, timeout, mode, modes) -> BugResult:
    return hunt(bug, generator, graphs, seeds, timeout, mode, modes)


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
    modes=DERIVATIVE_MODES,
    bugs: tuple[str, ...] | None = None,
) -> tuple[list[BugResult], bool]:
    """Every planted bug (or those named in `bugs`) hunted with these settings, checking the
    derivative `modes`; returns the results (in battery order) and whether a stop cut it short."""
    stop = stop or threading.Event()
    hunted = battery(bugs)
    pool = spawn_pool(max(1, min(workers, len(hunted))), _load_references, (oracles,))
    futures: dict[Future, int] = {
        pool.submit(_worker_hunt, bug, generator, graphs, seeds, timeout, mode, tuple(modes)): k
        for k, bug in enumerate(hunted)
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
