"""The audit: generate cases, check each against every backend, diagnose what fails, shrink it.

`run_audit` spreads the cases over worker processes (each loads the backends once, and runs
the engine in a child process of its own: backends/isolation.py) and gathers the results in
case order, so a report does not depend on the number of workers. A stop (a signal) kills
the workers at once and returns what was finished.
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
from .check import Backends, CaseResult, Finding, check_case, load_backends
from .diagnose import NOT_A_DISCREPANCY, Investigation, Target, accepted, diagnose_case, investigate
from .format import case_to_json
from .generate import GeneratorConfig, case_features, generate_case, op_pairs


class AuditConfigError(ValueError):
    """An audit that cannot run as configured (say, the engine supports none of --ops)."""


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


ENGINE_LOG = "engine.log"  # in the report folder: whatever the engine prints


def _audit_case(seed: int, index: int, generator: GeneratorConfig, backends: Backends) -> CaseResult:
    """Generate case `index`, check it, and diagnose each finding against the engine."""
    case = generate_case(seed, index, generator)
    reason = accepted(backends.engine, case.graph)
    if reason:
        ops = sorted({node["op"] for node in case.graph["nodes"]})
        return CaseResult(index, case_to_json(case), ops, 0, 0.0, [], {}, skipped=reason, redraws=case.redraws)
    result = check_case(case, backends, index)
    diagnose_case(case, result, backends)
    result.features, result.op_pairs = sorted(case_features(case)), sorted(op_pairs(case))
    return result


def _investigate_case(seed, index, generator, finding: Finding, backends: Backends, budget) -> Investigation:
    case = generate_case(seed, index, generator)
    return investigate(case, index, finding, backends, max_steps=budget[0], max_seconds=budget[1])


# Each worker process loads the backends once; they stay in these globals for its life.
_worker_state: dict = {}


def _exit_worker() -> None:
    os._exit(1)  # the audit is gone: so is this worker (its engine host follows it)


def _worker_start(engine_spec: str, oracles: tuple[str, ...], timeout: float, log_path: str | None, parent: int):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the audit's main process decides when to stop
    threading.Thread(target=watch_parent, args=(parent, _exit_worker), daemon=True).start()
    _worker_state["backends"] = load_backends(engine_spec, oracles, timeout=timeout, log_path=log_path)


def _worker_what_ran(generator: GeneratorConfig) -> dict:
    return _worker_state["backends"].what_ran(generator.ops)


def _worker_audit(seed: int, indices: list[int], generator: GeneratorConfig) -> list[CaseResult]:
    return [_audit_case(seed, i, generator, _worker_state["backends"]) for i in indices]


def _worker_investigate(seed, index, generator, finding, budget) -> Investigation:
    return _investigate_case(seed, index, generator, finding, _worker_state["backends"], budget)


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
            if group in groups_here or not result.case or taken.get(group, 0) >= limit:
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
) -> tuple[list[CaseResult], dict, list[Investigation]]:
    """Run the audit: check every case, then shrink and triage the failing ones.

    Cases run in `config.workers` worker processes, each of which runs the engine in a child
    process of its own. Returns the per-case results (in case order), what ran, and the
    investigations. `progress(n)` is called as cases complete. When `stop` is set (a signal),
    the workers are killed at once and what was finished is returned, with `ran["interrupted"]`.
    `engine` is the engine as `probe_engine` read it, if the caller has it. The engine's own
    output goes to `engine_log` when given (the CLI's is the report folder's ENGINE_LOG).
    `finished` are cases a resumed campaign has already (they are not redone), and
    `on_finished(results)` is called with each batch of cases as it completes (the campaign store).
    """
    stop = stop or threading.Event()
    budget = (config.shrink_steps, config.shrink_seconds)
    engine = engine or probe_engine(config.engine)
    generator = _restricted(config.generator, engine)
    workers = max(1, min(config.workers, config.graphs))
    log_path = str(engine_log) if engine_log is not None else None
    already = {result.index for result in finished}
    remaining = [index for index in range(config.graphs) if index not in already]
    # Small chunks keep the progress bar moving, both cores busy to the end, and a stop quick.
    chunk = max(1, min(25, len(remaining) // (workers * 8)))
    parts = [remaining[k : k + chunk] for k in range(0, len(remaining), chunk)]
    done: dict[int, list[CaseResult]] = {-1: list(finished)}
    if progress and finished:
        progress(len(finished))
    investigations: list[Investigation] = []
    ran = {**Backends(engine).what_ran(generator.ops), "references": [], "interrupted": False}
    # spawn, not fork: JAX and PyTorch hold threads that fork would copy half-alive.
    pool = ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_worker_start,
        initargs=(config.engine, config.oracles, config.timeout, log_path, os.getpid()),
    )  # fmt: skip
    try:
        what_ran = pool.submit(_worker_what_ran, generator)
        futures = {pool.submit(_worker_audit, config.seed, part, generator): k for k, part in enumerate(parts)}
        pending: set[Future] = set(futures) | {what_ran}
        while pending and not stop.is_set():
            completed, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in completed:
                if future is what_ran:
                    ran = {**future.result(), "interrupted": False}
                    continue
                done[futures[future]] = future.result()
                if on_finished:
                    on_finished(done[futures[future]])
                if progress:
                    progress(len(done[futures[future]]))
        results = _in_case_order(done)
        if not stop.is_set():
            targets = shrink_targets(results, config.shrink_limit)
            shrinking = [pool.submit(_worker_investigate, config.seed, i, generator, f, budget) for i, f in targets]
            waiting = set(shrinking)
            while waiting and not stop.is_set():
                _, waiting = wait(waiting, timeout=0.2)
            if not stop.is_set():
                investigations = [future.result() for future in shrinking]
    except BrokenProcessPool:
        results = _in_case_order(done)
        audited = {result.index for result in results}
        missing = [index for index in range(config.graphs) if index not in audited]
        crash = Finding(
            "crash", None, None, None,
            f"a worker process died or could not start, so cases {missing[0]}..{missing[-1]} were not audited: "
            "a crash below Python (a segfault, running out of memory) in a reference, or backends that failed to "
            "load there; the engine runs apart, so not the engine",
        )  # fmt: skip
        results.append(CaseResult(missing[0], {}, [], 0, 0.0, [crash], {}))
        ran["incomplete"] = len(missing)
    finally:
        if stop.is_set():
            ran["interrupted"] = True
            kill_pool(pool)
        else:
            pool.shutdown(wait=True, cancel_futures=True)
    if stop.is_set():
        results = _in_case_order(done)
    return results, ran, investigations


def _in_case_order(done: dict[int, list[CaseResult]]) -> list[CaseResult]:
    return sorted((result for part in done.values() for result in part), key=lambda result: result.index)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
