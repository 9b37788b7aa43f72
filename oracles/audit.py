"""The audit: generate cases, check each against every backend, diagnose what fails, shrink it.

`run_audit` spreads the cases over workers (each loads the backends once, and runs the engine
in a child process of its own: backends/isolation.py) and gathers the results in case order,
so a report does not depend on the number or kind of workers. The workers are a process pool
on this machine (`ProcessPool`, the default) or a Dask cluster (oracles/cluster.py): both are a
`Workers`. A stop (a signal) kills the workers at once and returns what was finished.
`AuditConfig` holds the audit's defaults, once: the CLI and the pytest plugin read them.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .backends import DEFAULT_ENGINE, REFERENCES, Backend, start_isolated_engine
from .backends.isolation import DEFAULT_TIMEOUT, watch_parent
from .check import Backends, CaseResult, CheckMode, Finding, check_in_mode, load_backends
from .diagnose import NOT_A_DISCREPANCY, Investigation, Target, accepted, diagnose_case, investigate
from .format import validate_case
from .generate import GeneratorConfig, case_features, generate_case, op_pairs


class AuditConfigError(ValueError):
    """An audit that cannot run as configured (say, the engine supports none of --ops)."""


class ClusterError(RuntimeError):
    """A Dask cluster (--cluster) that cannot run the audit: one line, for the user."""


@dataclass
class AuditConfig:
    graphs: int = 500
    seed: int = 0
    engine: str = DEFAULT_ENGINE
    oracles: tuple[str, ...] = REFERENCES
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    workers: int = 1
    report: Path = Path("audit-report")  # where the report goes; its file paths start with it
    shrink_limit: int = 3  # failing graphs shrunk per (kind, backend, op) group; 0 = none
    shrink_seconds: float = 5.0  # budget of one shrink
    shrink_steps: int = 400  # candidates one shrink may try
    timeout: float = DEFAULT_TIMEOUT  # seconds one evaluation by the engine may take
    mode: str = "full"  # or "tiered": JAX only where anything disagrees, and on a sample (check.CheckMode)
    jax_sample: float = 0.05  # tiered mode: the fraction of the other cases JAX checks too


ENGINE_LOG = "engine.log"  # in the report folder: whatever the engine prints


def _audit_case(seed: int, index: int, generator: GeneratorConfig, backends: Backends, mode: CheckMode) -> CaseResult:
    """Generate case `index`, check it, and diagnose each finding against the engine."""
    case = generate_case(seed, index, generator)
    reason = accepted(backends.engine, case.graph)
    if reason:
        ops = sorted({node["op"] for node in case.graph["nodes"]})
        return CaseResult(index, {}, ops, 0, 0.0, [], {}, skipped=reason, redraws=case.redraws)
    result = check_in_mode(case, backends, index, mode)
    diagnose_case(case, result, backends)
    result.features, result.op_pairs = sorted(case_features(case)), sorted(op_pairs(case))
    if not result.findings:
        # (seed, index) makes the case again; only a case with a finding is written out. This keeps
        # a passing case's result (in memory and in the campaign store) a tenth of its size.
        result.case = {}
    return result


def _investigate_case(seed, index, generator, finding: Finding, backends: Backends, budget) -> Investigation:
    case = generate_case(seed, index, generator)
    return investigate(case, index, finding, backends, max_steps=budget[0], max_seconds=budget[1])


# Each worker process loads the backends once, under the name of the audit it serves (a Dask
# worker may serve several), and keeps them for its life. A lock makes a worker with several
# threads run one case at a time: the engine host answers one call at a time.
_loaded: dict[str, tuple[Future, threading.Lock]] = {}


def load_worker_backends(name: str, engine_spec: str, oracles, timeout: float, log_path: str | None) -> None:
    """Load the backends of audit `name` in this worker (the pool's initializer, a Dask worker plugin)."""
    loading: Future = Future()
    _loaded[name] = (loading, threading.Lock())
    try:
        loading.set_result(load_backends(engine_spec, oracles, timeout=timeout, log_path=log_path))
    except BaseException as error:
        loading.set_exception(error)
        raise


def forget_worker_backends(name: str) -> None:
    """Close audit `name`'s engine host in this worker."""
    loading, _ = _loaded.pop(name, (None, None))
    if loading is not None and loading.done() and loading.exception() is None:
        loading.result().engine.plugin.close()


class BackendsUnavailable(RuntimeError):
    """This worker has no backends for the audit (their loading failed here): its cases are lost."""


def _run_with_backends(name: str, work: Callable[[Backends], object]):
    if name not in _loaded:
        raise BackendsUnavailable("the backends were never loaded in this worker")
    loading, lock = _loaded[name]
    try:
        backends = loading.result()
    except Exception as error:
        raise BackendsUnavailable(f"the backends could not be loaded in this worker: {error}") from None
    with lock:
        return work(backends)


def _exit_worker() -> None:
    os._exit(1)  # the audit is gone: so is this worker (its engine host follows it)


def _pool_worker_start(name, engine_spec, oracles, timeout, log_path, parent: int):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the audit's main process decides when to stop
    threading.Thread(target=watch_parent, args=(parent, _exit_worker), daemon=True).start()
    load_worker_backends(name, engine_spec, oracles, timeout, log_path)


def _worker_what_ran(name: str, generator: GeneratorConfig) -> dict:
    return _run_with_backends(name, lambda backends: backends.what_ran(generator.ops))


def _worker_audit(name: str, seed: int, indices: list[int], generator: GeneratorConfig, mode) -> list[CaseResult]:
    return _run_with_backends(name, lambda backends: [_audit_case(seed, i, generator, backends, mode) for i in indices])


def _worker_replay(name: str, case_json: dict, mode) -> CaseResult:
    def replay(backends: Backends) -> CaseResult:
        case = validate_case(case_json)
        reason = accepted(backends.engine, case.graph)
        if reason:
            return CaseResult(-1, case_json, [], 0, 0.0, [], {}, skipped=reason)
        result = check_in_mode(case, backends, -1, mode)
        diagnose_case(case, result, backends)
        return result

    return _run_with_backends(name, replay)


def _worker_investigate(name: str, seed, index, generator, finding, budget) -> Investigation:
    return _run_with_backends(
        name, lambda backends: _investigate_case(seed, index, generator, finding, backends, budget)
    )


class Workers:
    """Where an audit's cases run: `submit(function, *arguments)` gives a concurrent.futures
    Future of `function(name, *arguments)` run in a worker that has loaded the backends.
    A future whose worker was lost raises one of `lost`."""

    name: str
    lost: tuple[type[BaseException], ...]
    description: str

    def submit(self, function, *arguments) -> Future:
        raise NotImplementedError

    def lost_cases(self, lost: list[int]) -> str:
        """Why the cases `lost` (in order) have no result."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop now: a signal asked for it."""

    def close(self) -> None:
        """Finished: let the workers go."""


class ProcessPool(Workers):
    """The embedded default: `count` worker processes on this machine, spawned (not forked: JAX
    and PyTorch hold threads that fork would copy half-alive)."""

    name = "pool"
    lost = (BrokenProcessPool, BackendsUnavailable)

    def __init__(self, count: int, config: AuditConfig, log_path: str | None):
        self.description = f"a process pool of {count} on this machine"
        self.pool = ProcessPoolExecutor(
            count, mp_context=get_context("spawn"), initializer=_pool_worker_start,
            initargs=(self.name, config.engine, config.oracles, config.timeout, log_path, os.getpid()),
        )  # fmt: skip

    def submit(self, function, *arguments) -> Future:
        return self.pool.submit(function, self.name, *arguments)

    def lost_cases(self, lost: list[int]) -> str:
        return (
            f"a worker process died or could not start, so {describe_cases(lost)} were not audited: a crash below "
            "Python (a segfault, running out of memory) in a reference, or backends that failed to load there; "
            "the engine runs apart, so not the engine"
        )

    def kill(self) -> None:
        kill_pool(self.pool)

    def close(self) -> None:
        # Every result is in, so nothing is left in the workers to save; letting them exit
        # would wait seconds on JAX's and PyTorch's teardown.
        kill_pool(self.pool)


def _restricted(generator: GeneratorConfig, engine: Backend) -> GeneratorConfig:
    # A plug-in's `ops` restricts the generated graphs to those ops.
    ops = tuple(op for op in generator.ops if op in engine.ops)
    if not ops:
        raise AuditConfigError(f"engine {engine.name!r} supports none of the ops {', '.join(generator.ops)}")
    return generator if ops == tuple(generator.ops) else dataclasses.replace(generator, ops=ops)


# Kinds whose graphs are not shrunk: a hang says nothing about the case's size, and shrinking
# it would wait out the time limit once per candidate.
NOT_SHRUNK = ("timeout",)


def shrink_targets(results: list[CaseResult], limit: int) -> list[tuple[int, Finding]]:
    """Which failing graphs to shrink, and for which finding: the first `limit` graphs of each
    (kind, backend, op) group, in case order, so the choice does not depend on the number of
    workers. A graph in two groups is shrunk once for each."""
    taken: dict[tuple, int] = {}
    targets = []
    for result in results:
        groups_here = set()
        for finding in result.findings:
            if finding.kind in NOT_A_DISCREPANCY or finding.kind in NOT_SHRUNK:
                continue
            group = Target.of(finding).group()
            if group in groups_here or result.lost or taken.get(group, 0) >= limit:
                continue
            groups_here.add(group)
            taken[group] = taken.get(group, 0) + 1
            targets.append((result.index, finding))
    return targets


def probe_engine(spec: str) -> Backend:
    """The engine's name and ops, read in a child process (so an engine whose import exits or
    crashes is a PluginError here, not the end of the audit)."""
    engine = start_isolated_engine(spec)
    engine.plugin.close()
    return engine


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Kill every worker at once; their engine hosts' watchdogs take the engines down with them."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def run_audit(
    config: AuditConfig,
    progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    engine: Backend | None = None,
    engine_log: Path | None = None,
    finished: list[CaseResult] | tuple = (),
    on_finished: Callable[[list[CaseResult]], None] | None = None,
    cluster: str | None = None,
    known: list[dict] | tuple = (),
    on_replayed: Callable[[int, CaseResult], None] | None = None,
) -> tuple[list[CaseResult], dict, list[Investigation]]:
    """Run the audit: check every case, then shrink and triage the failing ones.

    Cases run in `config.workers` worker processes (or on the Dask cluster at `cluster`: an
    address, or "local"), each of which runs the engine in a child process of its own. Returns
    the per-case results (in case order), what ran, and the investigations. `progress(n)` is
    called as cases complete. When `stop` is set (a signal), the workers are stopped at once and
    what was finished is returned, with `ran["interrupted"]`. `engine` is the engine as
    `probe_engine` read it, if the caller has it. The engine's own output goes to `engine_log`
    when given (the CLI's is the report folder's ENGINE_LOG). `finished` are cases a resumed
    campaign has already (they are not redone), and `on_finished(results)` is called with each
    batch of cases as it completes (the campaign store). `known` are cases (graph format) to replay
    before the first random graph (the failure database's); `on_replayed(k, result)` is called as
    each is replayed, and `ran["replayed"]` holds the results by k.
    """
    stop = stop or threading.Event()
    budget = (config.shrink_steps, config.shrink_seconds)
    engine = engine or probe_engine(config.engine)
    generator = _restricted(config.generator, engine)
    mode = CheckMode(tiered=config.mode == "tiered", jax_sample=config.jax_sample)
    log_path = str(engine_log) if engine_log is not None else None
    already = {result.index for result in finished}
    remaining = [index for index in range(config.graphs) if index not in already]
    count = max(1, min(config.workers, len(remaining) or 1))
    # Small chunks keep the progress bar moving, every core busy to the end, and a stop quick.
    chunk = max(1, min(25, len(remaining) // (count * 8)))
    parts = [remaining[k : k + chunk] for k in range(0, len(remaining), chunk)]
    done: dict[int, list[CaseResult]] = {-1: list(finished)}
    lost: list[int] = []
    investigations: list[Investigation] = []
    ran = {**Backends(engine).what_ran(generator.ops), "references": [], "interrupted": False}
    workers = _start_workers(cluster, count, config, log_path)
    ran["workers"] = workers.description
    replayed: dict[int, CaseResult] = {}
    try:
        # The known failing cases go first, all of them, before any random graph: a regression
        # shows at once, whatever the workers' order.
        replays = {workers.submit(_worker_replay, case, mode): k for k, case in enumerate(known)}
        what_ran = workers.submit(_worker_what_ran, generator)
        futures: dict[Future, int] = {}
        pending: set[Future] = set(replays) | {what_ran}
        while (pending or len(futures) < len(parts)) and not stop.is_set():
            if not set(replays) & pending and not futures:
                futures = {
                    workers.submit(_worker_audit, config.seed, part, generator, mode): k for k, part in enumerate(parts)
                }
                pending |= set(futures)
            completed, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in completed:
                try:
                    outcome = future.result()
                except workers.lost:
                    if future in futures:
                        lost += parts[futures[future]]
                    continue  # a known case that could not be replayed is reported as not replayed
                if future in replays:
                    replayed[replays[future]] = outcome
                    if on_replayed:
                        on_replayed(replays[future], outcome)
                    continue
                if future is what_ran:
                    ran = {**outcome, "workers": workers.description, "interrupted": False}
                    continue
                done[futures[future]] = outcome
                if on_finished:
                    on_finished(outcome)
                if progress:
                    progress(len(outcome))
        if not stop.is_set():
            targets = shrink_targets(_in_case_order(done), config.shrink_limit)
            try:
                shrinking = [
                    workers.submit(_worker_investigate, config.seed, index, generator, finding, budget)
                    for index, finding in targets
                ]
            except workers.lost:  # a broken pool takes no more work: the report says what was lost
                shrinking = []
            waiting = set(shrinking)
            while waiting and not stop.is_set():
                _, waiting = wait(waiting, timeout=0.2)
            if not stop.is_set():
                investigations = [f.result() for f in shrinking if not isinstance(f.exception(), workers.lost)]
    finally:
        if stop.is_set():
            ran["interrupted"] = True
            workers.kill()
        else:
            workers.close()
    ran["replayed"] = replayed
    results = _in_case_order(done)
    if lost and not stop.is_set():
        lost.sort()
        crash = Finding("crash", None, None, None, workers.lost_cases(lost))
        results.append(CaseResult(lost[0], {}, [], 0, 0.0, [crash], {}, lost=True))
        results.sort(key=lambda result: result.index)
        ran["incomplete"] = len(lost)
    return results, ran, investigations


def _start_workers(cluster: str | None, count: int, config: AuditConfig, log_path: str | None) -> Workers:
    if cluster is None:
        return ProcessPool(count, config, log_path)
    from .cluster import DaskWorkers  # Dask is an optional extra

    return DaskWorkers(cluster, count, config, log_path)


def describe_cases(indices: list[int]) -> str:
    """`indices` (in order) for a message: "cases 4..9", or "7 cases from 4 to 99" when some between are not."""
    first, last = indices[0], indices[-1]
    if len(indices) == last - first + 1:
        return f"case {first}" if first == last else f"cases {first}..{last}"
    return f"{len(indices)} cases from {first} to {last}"


def _in_case_order(done: dict[int, list[CaseResult]]) -> list[CaseResult]:
    return sorted((result for part in done.values() for result in part), key=lambda result: result.index)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
