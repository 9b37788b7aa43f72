"""The check core: the backends of an audit as one object, and `check_case`, which evaluates one
case with every one of them and compares the results.

`check_case` never raises for anything a backend does: an exception inside a backend is
recorded as a crash finding. Everything that checks a case (the audit, shrinking, triage,
replay, reproducers and the pytest plugin) calls it with a `Backends`.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ..backends import (
    DERIVATIVE_MODES,
    REFERENCES,
    Backend,
    Unavailable,
    launch_isolated_engine,
    load_engine,
    load_reference,
)  # fmt: skip
from ..backends import numeric_backend as numeric
from ..backends.isolation import EngineFailed
from ..crash import Crash
from ..engines import reference_twin
from ..format import Case, case_to_json, infer_shapes, reference_values
from ..kinds import Kind
from ..ops.kinks import case_kinks
from .compare import Evaluation, Finding, NumericResult, array_check, compare
from .modes import MODE_OF_QUANTITY, ModeAnswer, check_modes


@dataclass
class Backends:
    """What an audit runs: the engine under test, the AD references, finite differences (a
    reference of its own kind: directional estimates, not VJPs), and the references that
    could not be loaded here, with why."""

    engine: Backend
    references: list[Backend] = field(default_factory=list)
    numeric: Backend | None = None
    unavailable: list[Unavailable] = field(default_factory=list)
    # The derivative modes to check (DERIVATIVE_MODES); jvp and hvp only where the engine has them.
    modes: frozenset[str] = frozenset({"vjp"})

    @property
    def checked_modes(self) -> list[str]:
        """The modes this audit checks: those asked for that the engine has, in report order."""
        return [m for m in DERIVATIVE_MODES if m in self.modes and m in self.engine.modes]

    @property
    def reference_names(self) -> list[str]:
        return [r.name for r in self.references] + (["numeric"] if self.numeric else [])

    def fast(self) -> Backends:
        """For checks that run many times (shrinking, triage): all but JAX, when another AD
        reference remains. JAX compiles once per new shape, and shrinking makes new shapes."""
        others = [r for r in self.references if r.name != "jax"]
        return dataclasses.replace(self, references=others or self.references)


# Why a reference is not among the judges of its own library (`--engine torch`): it would agree with itself.
LEFT_OUT = "left out: the engine under test ({engine}) is this reference's own library, which cannot judge itself"


def load_backends(
    engine_spec: str, oracles=REFERENCES, timeout: float | None = None, log_path: str | None = None,
    isolate: bool = True, modes=DERIVATIVE_MODES,
) -> Backends:  # fmt: skip
    """The engine named by `engine_spec` and the references named in `oracles`. The engine runs
    in a child process of its own (backends/isolation.py) unless `isolate` is False, with
    `timeout` seconds per evaluation and its output in `log_path`. `modes` are the derivative
    modes to check, of those the engine has."""
    # The engine's process imports the engine while this one imports the references.
    engine_ready = launch_isolated_engine(engine_spec, timeout, log_path) if isolate else None
    twin = reference_twin(engine_spec)
    loaded = {
        name: Unavailable(name, LEFT_OUT.format(engine=engine_spec)) if name == twin else load_reference(name)
        for name in oracles
    }
    engine = engine_ready() if engine_ready is not None else load_engine(engine_spec)
    numeric = loaded.get("numeric")
    return Backends(
        engine=engine,
        references=[b for n, b in loaded.items() if isinstance(b, Backend) and n != "numeric"],
        numeric=numeric if isinstance(numeric, Backend) else None,
        unavailable=[b for b in loaded.values() if isinstance(b, Unavailable)],
        modes=frozenset(modes),
    )


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
    redraws: int = 0  # values the generator rebuilt to keep a domain
    kink_nodes: list[str] = field(default_factory=list)  # nodes whose operands sit exactly on a kink
    kinks: list[dict] = field(default_factory=list)  # what each backend answers there (diagnosis fills it in)
    features: list[str] = field(default_factory=list)  # the graph features the case exercised (coverage)
    op_pairs: list[str] = field(default_factory=list)  # producer>consumer op pairs in the case
    jax: str | None = None  # tiered mode: why JAX saw this case ("disagreement", "kink", "sample"), or None
    lost: bool = False  # a placeholder for cases that could not be audited (its finding says why)
    mode_checks: dict[str, int] = field(default_factory=dict)  # derivative mode -> checks made in it
    mode_margins: dict[str, float] = field(default_factory=dict)  # derivative mode -> the engine's worst margin
    mode_answers: list[ModeAnswer] | None = None  # jvp and hvp answers, kept only when asked


def evaluate(backend: Backend, case: Case) -> Evaluation:
    """One backend's answer to `case`; whatever the backend does becomes the Evaluation's crash."""
    # The engine gets its own copies: a buggy engine that writes into its inputs must not change
    # what the references see. (The references are the project's own and write into nothing.)
    graph = copy.deepcopy(case.graph) if backend.role == "engine" else case.graph
    values = {name: value.copy() for name, value in case.values.items()}
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            value, gradients = backend.evaluate(graph, values, case.cotangent.copy())
        evaluation = Evaluation(backend.name, backend.role, value=value, gradients=gradients)
    except EngineFailed as error:  # the isolated engine raised, died or ran out of time
        evaluation = Evaluation(backend.name, backend.role, crash=error.crash)
    except Exception as error:  # a backend's exception is a finding, never the harness's crash
        evaluation = Evaluation(backend.name, backend.role, crash=Crash.raised(error))
    except SystemExit as error:
        evaluation = Evaluation(backend.name, backend.role, crash=Crash.exited(error.code))
    evaluation.seconds = time.perf_counter() - start
    return evaluation


ASKED_AGAIN = 2  # times a failing case is put to the engine again: an answer that changes one call in five shows


def answer_again(case: Case, backends: Backends, first: Evaluation) -> Finding | None:
    """Ask the engine the same case again (ASKED_AGAIN times): a `nondeterministic` finding if its
    answer changed (beyond the rounding the error model allows, judged relative to the answers
    themselves), with the spread seen; None if it answered the same every time."""
    for _ in range(ASKED_AGAIN):
        changed = _changed(case, backends, first, evaluate(backends.engine, case))
        if changed is not None:
            return changed
    return None


def _changed(case: Case, backends: Backends, first: Evaluation, second: Evaluation) -> Finding | None:
    if (first.crash is None) != (second.crash is None):
        calls = [f"it raised {e.crash.describe()}" if e.crash else "it answered" for e in (first, second)]
        return _nondeterministic(backends.engine.name, f"one call {calls[0]}, the other {calls[1]}", None)
    if first.crash is not None and second.crash is not None:
        same = first.crash == second.crash  # the same cause, type, message and place
        return None if same else _nondeterministic(backends.engine.name, "two calls crashed differently", None)
    spreads = []
    pairs = [("value", first.value, second.value)]
    before, after = (g if isinstance(g, dict) else {} for g in (first.gradients, second.gradients))
    pairs += [(f"gradient for {name!r}", before.get(name), after.get(name)) for name in sorted(before)]
    for what, a, b in pairs:
        try:
            a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # not an array of numbers: the comparison has judged that already
        if a64.shape != b64.shape:
            spreads.append((np.inf, f"{what} changed shape"))
            continue
        if np.array_equal(a64, b64, equal_nan=True):
            continue  # the same answer, NaN where it was NaN before
        check = array_check("value", None, "first", a64, "second", b64, 0.0, case.dtype)
        if not check.passed:
            relative = check.error / max(float(np.max(np.abs(a64), initial=0.0)), np.finfo(np.float64).tiny)
            spreads.append((check.margin, f"{what} differs by up to {check.error:.3g} (relative {relative:.3g})"))
    if not spreads:
        return None
    margin, worst = max(spreads, key=lambda spread: spread[0])
    return _nondeterministic(backends.engine.name, worst, margin)


def _nondeterministic(engine: str, spread: str, margin: float | None) -> Finding:
    detail = f"{engine} answered this case differently when asked again: {spread}"
    return Finding(Kind.NONDETERMINISTIC, engine, None, None, detail, margin=margin)


def _numeric(case: Case, value: np.ndarray, gradients: bool = True) -> tuple[NumericResult, float]:
    """The finite-difference oracle; `value` is its forward value, already computed by the
    op table's numpy forward in float64. Without `gradients`, it estimates no VJP."""
    start = time.perf_counter()
    if not gradients:
        return NumericResult(value, {}, {}), time.perf_counter() - start
    # Directions come from the case's own seed, so a replay checks the same directions.
    rng = np.random.default_rng([*(case.seed or [0, 0]), 1])
    directions = numeric.random_directions(case.values, rng)
    try:
        with np.errstate(all="ignore"):
            estimates = numeric.directional_derivatives(case.graph, case.values, case.cotangent, directions)
        result = NumericResult(value, directions, estimates)
    except Exception as error:
        result = NumericResult(np.zeros(()), directions, {}, crash=Crash.raised(error))
    return result, time.perf_counter() - start


def _engine_margins(checks, engine: str) -> list[float]:
    """The engine's margin for each quantity: against every reference, or, where the references
    disagree among themselves (valid conventions at a kink), against the nearest one."""
    by_quantity: dict[tuple, list] = {}
    for check in checks:
        by_quantity.setdefault((check.quantity, check.input), []).append(check)
    margins = []
    for group in by_quantity.values():
        mine = [c.margin for c in group if engine in c.backends]
        references_agree = all(c.passed for c in group if engine not in c.backends)
        if mine:
            margins.append(max(mine) if references_agree else min(mine))
    return margins


def check_case(case: Case, backends: Backends, index: int = 0, keep: bool = False) -> CaseResult:
    """Evaluate one case with the engine and every reference, and compare them."""
    shapes = infer_shapes(case.graph)
    input_shapes = {entry["name"]: tuple(entry["shape"]) for entry in case.graph["inputs"]}
    with np.errstate(all="ignore"):
        intermediate = reference_values(case.graph, {n: v.astype(np.float64) for n, v in case.values.items()})
    value_scale = max(float(np.max(np.abs(v), initial=0.0)) for v in intermediate.values())
    evaluations = [evaluate(backend, case) for backend in (backends.engine, *backends.references)]
    seconds = {e.backend: e.seconds for e in evaluations}
    numeric_result = None
    kinks = case_kinks(case.graph, intermediate)
    checked = backends.checked_modes
    if backends.numeric is not None:
        # Across a kink, a central difference sees the mean of the two one-sided slopes,
        # which is no backend's convention: there, only its value is compared.
        numeric_result, seconds["numeric"] = _numeric(
            case, intermediate[case.graph["output"]], gradients=not kinks and "vjp" in checked
        )
    verdict = compare(
        case.graph["dtype"], shapes[case.graph["output"]], input_shapes, value_scale, evaluations, numeric_result,
        cotangent_scale=float(np.max(np.abs(case.cotangent), initial=0.0)),
    )  # fmt: skip
    checks, findings = verdict.checks, verdict.findings
    if "vjp" not in checked:  # the value is checked in every mode; the VJPs only in this one
        checks = [c for c in checks if c.quantity != "gradient"]
        findings = [f for f in findings if f.quantity != "gradient"]
    modes = check_modes(
        case, backends, checked, evaluations, intermediate, at_kink=bool(kinks), first_findings=findings
    )
    checks, findings = checks + modes.checks, findings + modes.findings
    for backend, spent in modes.seconds.items():
        seconds[backend] = seconds.get(backend, 0.0) + spent
    for answer in modes.answers:
        seconds[answer.backend] = seconds.get(answer.backend, 0.0) + answer.seconds
    by_mode: dict[str, list] = {}
    for check in checks:
        by_mode.setdefault(MODE_OF_QUANTITY.get(check.quantity, "vjp"), []).append(check)
    engine_margins = _engine_margins(checks, backends.engine.name)
    return CaseResult(
        index=index,
        case=case_to_json(case),
        ops=sorted({node["op"] for node in case.graph["nodes"]}),
        checks=len(checks),
        engine_margin=max(engine_margins, default=0.0),
        findings=findings,
        seconds=seconds,
        evaluations=evaluations if keep else None,
        redraws=case.redraws,
        kink_nodes=[name for name, _ in kinks],
        mode_checks={mode: len(group) for mode, group in by_mode.items()},
        mode_margins={
            mode: max(_engine_margins(group, backends.engine.name), default=0.0) for mode, group in by_mode.items()
        },
        mode_answers=modes.answers if keep else None,
    )


MODES = ("full", "tiered")


@dataclass(frozen=True)
class CheckMode:
    """How many references check each case.

    Full mode checks every case with every reference. Tiered mode checks every case with the
    cheap ones (all but JAX, which costs most of an audit's time), and again with every
    reference where anything disagrees (so a finding is confirmed and blamed by the same
    majority as in full mode), at a kink (where the verdict weighs every convention), and on a
    random `jax_sample` of the rest, which keeps the references honest with each other.
    """

    tiered: bool = False
    jax_sample: float = 0.05

    @classmethod
    def named(cls, mode: str, jax_sample: float) -> CheckMode:
        """The mode called `mode` (one of MODES) on the command line."""
        return cls(tiered=mode == "tiered", jax_sample=jax_sample)

    def samples(self, case: Case) -> bool:
        # Drawn from the case's own seed: the same cases are sampled whatever the workers.
        return bool(np.random.default_rng([*(case.seed or [0, 0]), 2]).random() < self.jax_sample)


def check_in_mode(case: Case, backends: Backends, index: int, mode: CheckMode, keep: bool = False) -> CaseResult:
    """`check_case` with every reference (full mode), or in tiers (see CheckMode)."""
    cheap = backends.fast()
    if not mode.tiered or len(cheap.references) == len(backends.references):  # no JAX here
        return check_case(case, backends, index, keep)
    if mode.samples(case):
        reason = "sample"
    else:
        first = check_case(case, cheap, index, keep)
        if not first.findings and not first.kink_nodes:
            return first
        reason = "disagreement" if first.findings else "kink"
    return dataclasses.replace(check_case(case, backends, index, keep), jax=reason)


__all__ = [
    "MODES", "Backends", "CaseResult", "CheckMode", "answer_again", "check_case", "check_in_mode", "evaluate",
    "load_backends",
]  # fmt: skip
