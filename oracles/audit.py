"""The audit: generate cases, evaluate each with every backend, compare, collect findings.

One case is evaluated by `check_case`, which never raises for anything a backend does:
an exception inside a backend is recorded as a crash finding. `run_audit` spreads the
cases over worker processes (each loads the backends once) and gathers the results in
case order, so a report does not depend on the number of workers.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np

from .backends import DEFAULT_ENGINE, Backend, Unavailable, load_engine, load_reference
from .backends import numeric_backend as numeric
from .compare import Evaluation, Finding, NumericResult, compare
from .generate import GeneratorConfig, generate_case
from .graph import Case, case_to_json, infer_shapes, reference_values
from .investigate import Investigation, accepted, investigate, op_of


class AuditConfigError(ValueError):
    """An audit that cannot run as configured (say, the engine supports none of --ops)."""


@dataclass
class AuditConfig:
    graphs: int = 500
    seed: int = 0
    engine: str = DEFAULT_ENGINE
    oracles: tuple[str, ...] = ("jax", "torch", "numeric")
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    workers: int = 1
    shrink_limit: int = 3  # failing graphs shrunk per (kind, backend, op) group; 0 = none
    shrink_seconds: float = 5.0  # budget of one shrink
    shrink_steps: int = 400  # candidates one shrink may try


@dataclass
class CaseResult:
    index: int
    case: dict  # graph-format case JSON
    ops: list[str]
    checks: int
    engine_margin: float  # worst margin of a check that involves the engine (0 if none)
    findings: list[Finding]
    seconds: dict[str, float]  # backend -> seconds spent on this case
    evaluations: list[Evaluation] | None = None  # kept only when asked (replay prints them)
    skipped: str | None = None  # the engine's reason for declining the graph (its `accepts` hook)


def _describe(error: BaseException) -> str:
    frame = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" (at {frame[0].filename}:{frame[0].lineno})" if frame else ""
    return f"{type(error).__name__}: {error}{where}"


def _evaluate(backend: Backend, case: Case) -> Evaluation:
    # Each backend gets its own copies: a buggy engine that writes into its inputs must
    # not change what the next backend sees.
    graph = copy.deepcopy(case.graph)
    values = {name: value.copy() for name, value in case.values.items()}
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            value, gradients = backend.evaluate(graph, values, case.cotangent.copy())
        evaluation = Evaluation(backend.name, backend.role, value=value, gradients=gradients)
    except Exception as error:  # an engine's exception is a finding, never the harness's crash
        evaluation = Evaluation(backend.name, backend.role, crash=_describe(error))
    except SystemExit as error:
        evaluation = Evaluation(backend.name, backend.role, crash=f"SystemExit: {error.code}")
    evaluation.seconds = time.perf_counter() - start
    return evaluation


def _numeric(case: Case, value: np.ndarray) -> tuple[NumericResult, float]:
    """The finite-difference oracle; `value` is its forward value, already computed by the
    op table's numpy forward in float64."""
    start = time.perf_counter()
    # Directions come from the case's own seed, so a replay checks the same directions.
    rng = np.random.default_rng([*(case.seed or [0, 0]), 1])
    directions = numeric.random_directions(case.values, rng)
    try:
        with np.errstate(all="ignore"):
            estimates = numeric.directional_derivatives(case.graph, case.values, case.cotangent, directions)
        result = NumericResult(value, directions, estimates)
    except Exception as error:
        result = NumericResult(np.zeros(()), directions, {}, crash=_describe(error))
    return result, time.perf_counter() - start


def check_case(
    case: Case, engine: Backend, references: list[Backend], use_numeric: bool, index: int = 0, keep: bool = False
) -> CaseResult:
    """Evaluate one case with the engine and every reference, and compare them."""
    shapes = infer_shapes(case.graph)
    input_shapes = {entry["name"]: tuple(entry["shape"]) for entry in case.graph["inputs"]}
    with np.errstate(all="ignore"):
        intermediate = reference_values(case.graph, {n: v.astype(np.float64) for n, v in case.values.items()})
    value_scale = max(float(np.max(np.abs(v), initial=0.0)) for v in intermediate.values())
    evaluations = [_evaluate(backend, case) for backend in (engine, *references)]
    seconds = {e.backend: e.seconds for e in evaluations}
    numeric_result = None
    if use_numeric:
        numeric_result, seconds["numeric"] = _numeric(case, intermediate[case.graph["output"]])
    verdict = compare(
        case.graph["dtype"], shapes[case.graph["output"]], input_shapes, value_scale, evaluations, numeric_result
    )
    engine_margins = [c.margin for c in verdict.checks if engine.name in c.backends]
    return CaseResult(
        index=index,
        case=case_to_json(case),
        ops=sorted({node["op"] for node in case.graph["nodes"]}),
        checks=len(verdict.checks),
        engine_margin=max(engine_margins, default=0.0),
        findings=verdict.findings,
        seconds=seconds,
        evaluations=evaluations if keep else None,
    )


def load_backends(engine_spec: str, oracles) -> tuple[Backend, list[Backend], bool, list[Unavailable]]:
    """The engine, the loaded AD references, whether numeric runs, and the unavailable references."""
    engine = load_engine(engine_spec)
    references: list[Backend] = []
    unavailable: list[Unavailable] = []
    use_numeric = False
    for name in oracles:
        if name == "numeric":
            use_numeric = True
            continue
        loaded = load_reference(name)
        if isinstance(loaded, Unavailable):
            unavailable.append(loaded)
        else:
            references.append(loaded)
    return engine, references, use_numeric, unavailable


def _audit_case(seed: int, index: int, generator: GeneratorConfig, backends) -> CaseResult:
    """Generate case `index`, check it, and name the op of each engine finding (triage)."""
    engine, references, use_numeric = backends
    case = generate_case(seed, index, generator)
    reason = accepted(engine, case.graph)
    if reason:
        ops = sorted({node["op"] for node in case.graph["nodes"]})
        return CaseResult(index, case_to_json(case), ops, 0, 0.0, [], {}, skipped=reason)
    result = check_case(case, engine, references, use_numeric, index)
    if any(f.backend == engine.name for f in result.findings):
        local_kind, op = op_of(case, engine, references, use_numeric, check_case)
        for finding in result.findings:
            if finding.backend == engine.name:
                finding.op = op
                if local_kind == "composition" and finding.kind in ("value", "gradient"):
                    finding.kind = "composition"
    return result


def _investigate_case(seed, index, generator, target, backends, budget) -> Investigation:
    engine, references, use_numeric = backends
    kind, backend, detail = target
    case = generate_case(seed, index, generator)
    try:
        return investigate(
            case, index, kind, backend, detail, engine, references, use_numeric, check_case,
            max_steps=budget[0], max_seconds=budget[1],
        )  # fmt: skip
    except Exception as error:  # a diagnosis that fails leaves the finding as it was found
        return Investigation(
            index=index, target=kind, kind=kind, backend=backend, op=None, node=None, minimal=None, confirmed=False,
            original_size=(0, 0), minimal_size=(0, 0), shrink_steps=0, shrink_seconds=0.0, error=_describe(error),
        )  # fmt: skip


# Each worker process loads the backends once; they stay in these globals for its life.
_worker_state: dict = {}


def _worker_start(engine_spec: str, oracles: tuple[str, ...]) -> None:
    _worker_state["loaded"] = loaded = load_backends(engine_spec, oracles)
    _worker_state["backends"] = loaded[:3]


def _worker_what_ran(generator: GeneratorConfig) -> dict:
    engine, references, use_numeric, unavailable = _worker_state["loaded"]
    return _what_ran(engine, references, use_numeric, unavailable, generator)


def _worker_audit(seed: int, indices: list[int], generator: GeneratorConfig) -> list[CaseResult]:
    return [_audit_case(seed, i, generator, _worker_state["backends"]) for i in indices]


def _worker_investigate(seed, index, generator, target, budget) -> Investigation:
    return _investigate_case(seed, index, generator, target, _worker_state["backends"], budget)


def _restricted(generator: GeneratorConfig, engine: Backend) -> GeneratorConfig:
    # A plug-in's `ops` restricts the generated graphs to those ops.
    ops = tuple(op for op in generator.ops if op in engine.ops)
    if not ops:
        raise AuditConfigError(f"engine {engine.name!r} supports none of the ops {', '.join(generator.ops)}")
    return generator if ops == tuple(generator.ops) else dataclasses.replace(generator, ops=ops)


def shrink_targets(results: list[CaseResult], limit: int) -> list[tuple[int, tuple[str, str | None, str]]]:
    """Which failing graphs to shrink: the first `limit` of each (kind, backend, op) group, in
    case order, so the choice does not depend on the number of workers."""
    taken: dict[tuple, int] = {}
    targets = []
    for result in results:
        backends_taken = set()  # one shrink per graph and backend: it keeps any finding of that kind
        for finding in result.findings:
            group = (finding.kind, finding.backend, finding.op)
            if finding.backend in backends_taken or not result.case or taken.get(group, 0) >= limit:
                continue
            backends_taken.add(finding.backend)
            taken[group] = taken.get(group, 0) + 1
            targets.append((result.index, (finding.kind, finding.backend, finding.detail)))
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
        engine, references, use_numeric, unavailable = load_backends(config.engine, config.oracles)
        generator = _restricted(config.generator, engine)
        backends = (engine, references, use_numeric)
        results: list[CaseResult] = []
        for i in range(config.graphs):
            results.append(_audit_case(config.seed, i, generator, backends))
            if progress:
                progress(1)
        investigations = [
            _investigate_case(config.seed, index, generator, target, backends, budget)
            for index, target in shrink_targets(results, config.shrink_limit)
        ]
        return results, _what_ran(engine, references, use_numeric, unavailable, generator), investigations

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
            shrinking = [pool.submit(_worker_investigate, config.seed, i, generator, t, budget) for i, t in targets]
            investigations = [future.result() for future in shrinking]
    except BrokenProcessPool:
        engine = load_engine(config.engine)
        ran = _what_ran(engine, [], "numeric" in config.oracles, [], generator)
        done = len(results)
        crash = Finding(
            "crash", engine.name, None, None,
            f"a worker process died while evaluating cases {done}..{config.graphs - 1} "
            "(a crash below Python, such as a segfault, in some backend)",
        )  # fmt: skip
        results.append(CaseResult(done, {}, [], 0, 0.0, [crash], {}))
    return results, ran, investigations


def _what_ran(engine, references, use_numeric, unavailable, generator) -> dict:
    return {
        "engine": engine.name,
        "references": [r.name for r in references] + (["numeric"] if use_numeric else []),
        "unavailable": {u.name: u.reason for u in unavailable},
        "ops": list(generator.ops),
    }


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
