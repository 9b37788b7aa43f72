"""The audit: generate cases, check each against every backend, diagnose what fails, shrink it.

`run_audit` spreads the cases over worker processes (each loads the backends once) and
gathers the results in case order, so a report does not depend on the number of workers.
`AuditConfig` holds the audit's defaults, once: the CLI and the pytest plugin read them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .backends import DEFAULT_ENGINE, REFERENCES, Backend, load_engine
from .check import Backends, CaseResult, Finding, check_case, load_backends
from .diagnose import NOT_A_DISCREPANCY, Investigation, Target, accepted, diagnose_case, investigate
from .format import case_to_json
from .generate import GeneratorConfig, generate_case


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


def _audit_case(seed: int, index: int, generator: GeneratorConfig, backends: Backends) -> CaseResult:
    """Generate case `index`, check it, and diagnose each finding against the engine."""
    case = generate_case(seed, index, generator)
    reason = accepted(backends.engine, case.graph)
    if reason:
        ops = sorted({node["op"] for node in case.graph["nodes"]})
        return CaseResult(index, case_to_json(case), ops, 0, 0.0, [], {}, skipped=reason, redraws=case.redraws)
    result = check_case(case, backends, index)
    diagnose_case(case, result, backends)
    return result


def _investigate_case(seed, index, generator, finding: Finding, backends: Backends, budget) -> Investigation:
    case = generate_case(seed, index, generator)
    return investigate(case, index, finding, backends, max_steps=budget[0], max_seconds=budget[1])


# Each worker process loads the backends once; they stay in these globals for its life.
_worker_state: dict = {}


def _worker_start(engine_spec: str, oracles: tuple[str, ...]) -> None:
    _worker_state["backends"] = load_backends(engine_spec, oracles)


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


def shrink_targets(results: list[CaseResult], limit: int) -> list[tuple[int, Finding]]:
    """Which failing graphs to shrink, and for which finding: the first `limit` graphs of each
    (kind, backend, op) group, in case order, so the choice does not depend on the number of
    workers. A graph in two groups is shrunk once for each."""
    taken: dict[tuple, int] = {}
    targets = []
    for result in results:
        groups_here = set()
        for finding in result.findings:
            group = Target.of(finding).group()
            if finding.kind in NOT_A_DISCREPANCY:
                continue
            if group in groups_here or not result.case or taken.get(group, 0) >= limit:
                continue
            groups_here.add(group)
            taken[group] = taken.get(group, 0) + 1
            targets.append((result.index, finding))
    return targets


def run_audit(
    config: AuditConfig, progress: Callable[[int], None] | None = None
) -> tuple[list[CaseResult], dict, list[Investigation]]:
    """Run the audit: check every case, then shrink and triage the failing ones.

    Returns the per-case results (in case order), what ran, and the investigations.
    `progress(n)` is called as cases complete, with how many completed since the last call.
    """
    budget = (config.shrink_steps, config.shrink_seconds)
    if config.workers <= 1:
        backends = load_backends(config.engine, config.oracles)
        generator = _restricted(config.generator, backends.engine)
        results: list[CaseResult] = []
        for i in range(config.graphs):
            results.append(_audit_case(config.seed, i, generator, backends))
            if progress:
                progress(1)
        investigations = [
            _investigate_case(config.seed, index, generator, finding, backends, budget)
            for index, finding in shrink_targets(results, config.shrink_limit)
        ]
        return results, backends.what_ran(generator.ops), investigations

    generator = _restricted(config.generator, load_engine(config.engine))
    indices = list(range(config.graphs))
    # Small chunks keep the progress bar moving and both cores busy to the end.
    chunk = max(1, min(25, config.graphs // (config.workers * 8)))
    chunks = [indices[k : k + chunk] for k in range(0, len(indices), chunk)]
    results = []
    investigations = []
    # spawn, not fork: JAX and PyTorch hold threads that fork would copy half-alive.
    context = get_context("spawn")
    try:
        with ProcessPoolExecutor(
            config.workers, mp_context=context, initializer=_worker_start, initargs=(config.engine, config.oracles)
        ) as pool:
            # What ran is what the workers loaded: this process never imports JAX or PyTorch, so
            # it leaves both cores to the workers while they start.
            what_ran = pool.submit(_worker_what_ran, generator)
            futures = [pool.submit(_worker_audit, config.seed, part, generator) for part in chunks]
            ran = what_ran.result()
            for future in futures:
                part = future.result()
                results.extend(part)
                if progress:
                    progress(len(part))
            targets = shrink_targets(results, config.shrink_limit)
            shrinking = [pool.submit(_worker_investigate, config.seed, i, generator, f, budget) for i, f in targets]
            investigations = [future.result() for future in shrinking]
    except BrokenProcessPool:
        engine = load_engine(config.engine)
        ran = Backends(engine).what_ran(generator.ops)
        done = len(results)
        crash = Finding(
            "crash", engine.name, None, None,
            f"a worker process died while evaluating cases {done}..{config.graphs - 1} "
            "(a crash below Python, such as a segfault, in some backend)",
        )  # fmt: skip
        results.append(CaseResult(done, {}, [], 0, 0.0, [crash], {}))
    return results, ran, investigations


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
