"""The audit: generate cases, take each through the pipeline, shrink what fails, and return one
`AuditRun`.

`run_audit` spreads the cases over workers (each loads the backends once, and runs the engine
in a child process of its own: backends/isolation.py) and gathers the results in case order,
so a report does not depend on the number or kind of workers. The workers are a process pool
on this machine (`workers.ProcessPool`, the default) or a Dask cluster (oracles/cluster.py).
A stop (a signal, or the time budget spent) kills the workers at once and returns what was
finished. `AuditConfig` holds the audit's defaults, once: the CLI and the pytest plugin read them.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

from .backends import DEFAULT_ENGINE, DERIVATIVE_MODES, REFERENCES, Backend, probe_engine
from .backends.isolation import DEFAULT_TIMEOUT, ENGINE_LOG
from .campaign import CampaignError, CampaignStore
from .check import Backends, CaseResult, CheckMode, Finding, load_backends
from .diagnose import Investigation, Target
from .failures import FailureDatabaseRun, KnownFailures
from .format import validate_case
from .generate import GeneratorConfig, generate_case
from .kinds import Kind
from .pipeline import Budget, run_case, shrink_case
from .workers import BackendsUnavailable, ClusterError, ProcessPool, Workers, left_running, run_with_backends


class AuditConfigError(ValueError):
    """An audit that cannot run as configured (say, the engine supports none of --ops)."""


@dataclass(frozen=True)
class AuditConfig:
    # What is audited (a campaign store keeps these, and --resume takes them up):
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
    modes: tuple[str, ...] = DERIVATIVE_MODES  # derivative modes to check, of those the engine has
    # How this run goes (not kept by a campaign: a resumed run says its own):
    cluster: str | None = None  # a Dask scheduler's address, or "local"; None: a process pool here
    time_budget: float | None = None  # seconds, after which the audit stops and reports what it has
    engine_log: Path | None = None  # where the engine's own output goes (None: nowhere, never the harness's)

    def to_json(self) -> dict:
        """What is audited, as a campaign store keeps it (how this run goes is left out)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in RUN_ONLY}
        generator = {**dataclasses.asdict(self.generator), "ops": list(self.generator.ops)}
        return {**fields, "report": str(self.report), "oracles": list(self.oracles), "generator": generator,
                "modes": list(self.modes)}  # fmt: skip

    @classmethod
    def from_json(cls, fields: dict, where: str) -> AuditConfig:
        """The configuration `to_json` wrote; CampaignError (one line, naming `where`) if it is not one."""
        try:
            generator = GeneratorConfig(**{**fields["generator"], "ops": tuple(fields["generator"]["ops"])})
            extra = sorted(set(fields) & set(RUN_ONLY))
            if extra:
                raise TypeError(f"unexpected {extra[0]!r}")
            # A store written before forward mode checked first order only.
            modes = tuple(fields.get("modes", ("vjp",)))
            return cls(**{**fields, "generator": generator, "oracles": tuple(fields["oracles"]),
                          "report": Path(fields["report"]), "modes": modes})  # fmt: skip
        except (KeyError, TypeError, ValueError) as error:
            raise CampaignError(f"{where}: not a campaign store ({type(error).__name__})") from None

    @property
    def budget(self) -> Budget:
        return Budget(self.shrink_steps, self.shrink_seconds)

    @property
    def check_mode(self) -> CheckMode:
        return CheckMode.named(self.mode, self.jax_sample)


RUN_ONLY = ("cluster", "time_budget", "engine_log")  # AuditConfig's fields that a campaign does not keep

FINISHED, SIGNAL, TIME_BUDGET = "finished", "signal", "time budget"  # why an audit stopped


@dataclass(frozen=True)
class WhatRan:
    engine: str  # the engine's name
    references: tuple[str, ...]  # the references that checked it
    unavailable: dict[str, str]  # references that could not be loaded here -> why
    ops: tuple[str, ...]  # the ops the random graphs were drawn from
    workers: str  # where the cases ran
    # A reference's one line about how it ran, by name (the JAX reference: plain JAX, and why).
    notes: dict[str, str] = field(default_factory=dict)
    engine_modes: tuple[str, ...] = ("vjp",)  # the derivative modes the engine has
    modes: tuple[str, ...] = ("vjp",)  # those checked: asked for (--modes) and the engine's

    @classmethod
    def of(cls, backends: Backends, ops, workers: str) -> WhatRan:
        unavailable = {u.name: u.reason for u in backends.unavailable}
        notes = {r.name: r.plugin.note for r in backends.references if isinstance(getattr(r.plugin, "note", None), str)}
        return cls(
            backends.engine.name, tuple(backends.reference_names), unavailable, tuple(ops), workers, notes,
            tuple(m for m in DERIVATIVE_MODES if m in backends.engine.modes), tuple(backends.checked_modes),
        )  # fmt: skip


@dataclass(frozen=True)
class AuditRun:
    """Everything an audit did, for the report to read."""

    config: AuditConfig
    ran: WhatRan
    results: tuple[CaseResult, ...]  # in case order; a lost stretch of cases has one placeholder with a crash
    investigations: tuple[Investigation, ...]  # the shrunk failing cases
    stopped: str  # FINISHED, SIGNAL or TIME_BUDGET
    lost: tuple[int, ...]  # cases that could not be audited (their workers were lost)
    failure_database: FailureDatabaseRun | None  # the known failing cases replayed first, and those kept
    wall_seconds: float
    # Processes the engine (or a reference) started that outlived every kill, "pid 123 (name)":
    # stuck in the kernel (a frozen cgroup, a dead device), or not the harness's to signal.
    left_running: tuple[str, ...] = ()


# The worker side: each task runs with the backends its worker loaded for the audit named.


def _worker_what_ran(name: str, ops: tuple[str, ...], workers: str) -> WhatRan:
    return run_with_backends(name, lambda backends: WhatRan.of(backends, ops, workers))


def _worker_audit(name: str, indices: list[int], seed: int, generator: GeneratorConfig, mode) -> list[CaseResult]:
    def audit(backends: Backends) -> list[CaseResult]:
        results = []
        for index in indices:
            result = run_case(generate_case(seed, index, generator), backends, index, mode).result
            # (seed, index) makes the case again; only a case with a finding is written out. This keeps
            # a passing case's result (in memory and in the campaign store) a tenth of its size.
            results.append(result if result.findings else dataclasses.replace(result, case={}))
        return results

    return run_with_backends(name, audit)


def _worker_replay(name: str, case_json: dict, mode) -> CaseResult:
    return run_with_backends(name, lambda backends: run_case(validate_case(case_json), backends, -1, mode).result)


def _worker_shrink(name: str, seed, index, generator, finding: Finding, budget: Budget) -> Investigation:
    case = generate_case(seed, index, generator)
    return run_with_backends(name, lambda backends: shrink_case(case, index, finding, backends, budget))


def close_backends(backends: Backends) -> None:
    backends.engine.plugin.close()


def backends_loader(config: AuditConfig) -> Callable[[], Backends]:
    """What a worker calls to load the audit's backends (picklable, for a pool or a Dask plugin)."""
    log = str(config.engine_log) if config.engine_log is not None else None
    return functools.partial(
        load_backends, config.engine, config.oracles, timeout=config.timeout, log_path=log, modes=config.modes
    )


def restricted_generator(generator: GeneratorConfig, engine: Backend) -> GeneratorConfig:
    """`generator` restricted to the ops the engine has (a plug-in's `ops`); AuditConfigError,
    one line, if that leaves no op or no graph these flags can build."""
    ops = tuple(op for op in generator.ops if op in engine.ops)
    if not ops:
        raise AuditConfigError(f"engine {engine.name!r} supports none of the ops {', '.join(generator.ops)}")
    restricted = generator if ops == tuple(generator.ops) else dataclasses.replace(generator, ops=ops)
    try:  # before any worker starts: flags that make no graph are the user's to change
        generate_case(0, 0, restricted)
    except ValueError as error:
        raise AuditConfigError(str(error)) from None
    return restricted


def shrink_targets(results: list[CaseResult], limit: int) -> list[tuple[int, Finding]]:
    """Which failing graphs to shrink, and for which finding: the first `limit` graphs of each
    (kind, backend, op) group, in case order, so the choice does not depend on the number of
    workers. A graph in two groups is shrunk once for each."""
    taken: dict[tuple, int] = {}
    targets = []
    for result in results:
        groups_here = set()
        for finding in result.findings:
            if not finding.kind.rule.shrunk:
                continue
            group = Target.of(finding).group()
            if group in groups_here or result.lost or taken.get(group, 0) >= limit:
                continue
            groups_here.add(group)
            taken[group] = taken.get(group, 0) + 1
            targets.append((result.index, finding))
    return targets


def _start_workers(config: AuditConfig, count: int) -> Workers:
    if config.cluster is None:
        return ProcessPool(count, backends_loader(config))
    # Dask is an optional extra, and importing it takes about 0.6 s: only an audit on a cluster pays that.
    from .cluster import DaskWorkers

    return DaskWorkers(config.cluster, count, backends_loader(config), close_backends)


class _Audit:
    """One audit while its workers run: which cases are left, what has come back, and whether to stop."""

    def __init__(self, config: AuditConfig, engine: Backend, campaign: CampaignStore | None, stop: threading.Event):
        self.config, self.campaign, self.signalled = config, campaign, stop
        self.generator = restricted_generator(config.generator, engine)
        self.mode = config.check_mode
        finished = list(campaign.finished) if campaign else []
        already = {result.index for result in finished}
        remaining = [index for index in range(config.graphs) if index not in already]
        self.count = max(1, min(config.workers, len(remaining) or 1))
        # Small chunks keep the progress bar moving, every core busy to the end, and a stop quick.
        chunk = max(1, min(25, len(remaining) // (self.count * 8)))
        self.parts = [remaining[k : k + chunk] for k in range(0, len(remaining), chunk)]
        self.done: dict[int, list[CaseResult]] = {-1: finished}
        self.lost: list[int] = []
        self.budget_spent = threading.Event()
        self.stopping = threading.Event()  # a signal, or the time budget: once set, it stays set

    def stopped(self) -> bool:
        if self.signalled.is_set() or self.budget_spent.is_set():
            self.stopping.set()
        return self.stopping.is_set()

    def check_every_case(self, workers: Workers, known: KnownFailures | None, progress, ran: WhatRan) -> WhatRan:
        """Replay the known failing cases, then check every case left; returns what ran, as a worker saw it."""
        # The known failing cases go first, all of them, before any random graph: a regression
        # shows at once, whatever the workers' order.
        cases = known.cases if known else []
        replays = {workers.submit(_worker_replay, case, self.mode): k for k, case in enumerate(cases)}
        what_ran = workers.submit(_worker_what_ran, self.generator.ops, workers.description)
        futures: dict[Future, int] = {}
        pending: set[Future] = set(replays) | {what_ran}
        while (pending or len(futures) < len(self.parts)) and not self.stopped():
            if not set(replays) & pending and not futures:
                arguments = (self.config.seed, self.generator, self.mode)
                futures = {workers.submit(_worker_audit, part, *arguments): k for k, part in enumerate(self.parts)}
                pending |= set(futures)
            completed, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in completed:
                try:
                    outcome = future.result()
                except workers.lost:
                    if future in futures:
                        self.lost += self.parts[futures[future]]
                    continue  # a known case that could not be replayed is reported as not replayed
                if future in replays:
                    assert known is not None
                    known.replayed(replays[future], outcome)
                elif future is what_ran:
                    ran = outcome
                else:
                    self.done[futures[future]] = outcome
                    if self.campaign:
                        self.campaign.append(outcome)
                    if progress:
                        progress(outcome)
        return ran

    def shrink(self, workers: Workers) -> list[Investigation]:
        """The failing cases `shrink_targets` picks, shrunk (a shrink whose worker was lost says
        so); none if a stop came first."""
        config = self.config
        targets = shrink_targets(self.in_case_order(), config.shrink_limit)
        shrinking: list[Future | BaseException] = []
        for index, finding in targets:
            try:
                job = (config.seed, index, self.generator, finding, config.budget)
                shrinking.append(workers.submit(_worker_shrink, *job))
            except workers.lost as broken:  # a broken pool takes no more work
                shrinking.append(broken)
        waiting = {f for f in shrinking if isinstance(f, Future)}
        while waiting and not self.stopped():
            _, waiting = wait(waiting, timeout=0.2)
        if self.stopped():
            return []
        investigations = []
        for (index, finding), future in zip(targets, shrinking):
            lost = future if isinstance(future, BaseException) else future.exception()
            if isinstance(lost, workers.lost):
                # The report says the shrink was lost and why, not that it was never tried.
                case = generate_case(config.seed, index, self.generator)
                why = f"the worker shrinking it was lost ({type(lost).__name__}: {lost})"
                investigations.append(Investigation.unfinished(case, index, finding, why))
            else:
                investigations.append(future.result())
        return investigations

    def in_case_order(self) -> list[CaseResult]:
        return sorted((result for part in self.done.values() for result in part), key=lambda result: result.index)

    def results(self, workers: Workers) -> list[CaseResult]:
        """Every result in case order; a stretch of lost cases gets one placeholder, whose crash says why."""
        results = self.in_case_order()
        if self.lost and not self.stopping.is_set():
            self.lost.sort()
            crash = Finding(Kind.CRASH, None, None, None, workers.lost_cases(self.lost))
            results.append(CaseResult(self.lost[0], {}, [], 0, 0.0, [crash], {}, lost=True))
            results.sort(key=lambda result: result.index)
        return results


def run_audit(
    config: AuditConfig,
    *,
    engine: Backend | None = None,
    known: KnownFailures | None = None,
    campaign: CampaignStore | None = None,
    progress: Callable[[list[CaseResult]], None] | None = None,
    stop: threading.Event | None = None,
) -> AuditRun:
    """Run the audit: check every case, then shrink the failing ones.

    `engine` is the engine as `probe_engine` read it, if the caller has it. `known` are the
    failure database's cases of this engine, replayed before the first random graph; the new
    minimal cases are kept there at the end. `campaign` is the store each batch of finished
    cases is appended to as it completes; the cases it holds already (a resumed campaign) are
    not redone. `progress(batch)` is called with each batch of cases as it completes. When `stop` is set (a signal), or
    `config.time_budget` is spent, the workers are stopped at once and what was finished is
    returned.
    """
    start = time.perf_counter()
    engine = engine or probe_engine(config.engine)
    audit = _Audit(config, engine, campaign, stop or threading.Event())
    workers = _start_workers(config, audit.count)
    has = tuple(m for m in DERIVATIVE_MODES if m in engine.modes)
    ran = WhatRan(
        engine.name, (), {}, tuple(audit.generator.ops), workers.description, {}, has,
        tuple(m for m in has if m in config.modes),
    )  # fmt: skip
    investigations: list[Investigation] = []
    timer = threading.Timer(config.time_budget, audit.budget_spent.set) if config.time_budget else None
    try:
        if timer:
            timer.daemon = True
            timer.start()
        ran = audit.check_every_case(workers, known, progress, ran)
        if not audit.stopped():
            investigations = audit.shrink(workers)
    finally:
        if timer:
            timer.cancel()
        if audit.stopping.is_set():
            workers.kill()
        else:
            workers.close()
    results = audit.results(workers)
    if known is not None:
        known.keep(investigations)
    why = FINISHED if not audit.stopping.is_set() else SIGNAL if audit.signalled.is_set() else TIME_BUDGET
    return AuditRun(
        config=config, ran=ran, results=tuple(results), investigations=tuple(investigations), stopped=why,
        lost=tuple(audit.lost), failure_database=known.summary() if known else None,
        wall_seconds=time.perf_counter() - start,
        left_running=tuple(f"pid {process.pid} ({process.name})" for process in left_running()),
    )  # fmt: skip


__all__ = [
    "ENGINE_LOG", "FINISHED", "SIGNAL", "TIME_BUDGET", "AuditConfig", "AuditConfigError", "AuditRun",
    "BackendsUnavailable", "ClusterError", "WhatRan", "restricted_generator", "run_audit", "shrink_targets",
]  # fmt: skip
