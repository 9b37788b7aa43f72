"""Forward mode and second order: the checks of an engine's `jvp` and `hvp` (graph-format.md).

Each case gets two tangents per input, drawn from the case's own seed, so a replay checks the
same ones. With "jvp" among the modes:
- J t1 by every backend that has a jvp and by finite differences of the op table's forward
  (numeric_backend.jvp_estimate), compared like a value and blamed by majority: kind `jvp`;
- the transpose identity <v, J t1> = <J^T v, t1> inside the engine: its forward mode against
  its own reverse mode, with no reference and no finite-difference noise: `mode-mismatch`.
With "hvp":
- H t1 by every backend that has an hvp and by a central difference of the first AD
  reference's VJP (in float64), blamed by majority for each input: kind `hvp`;
- inside the engine, symmetry <t2, H t1> = <t1, H t2>, and, where no AD reference judged H t1,
  H t1 against a central difference of its own VJP (its second order against its first):
  `mode-mismatch`.
A mode-mismatch is reported only where the references found nothing against the engine in
that mode, and an identity with the VJP only where the VJP was not blamed: a wrong rule they
blame breaks the identities too, and one finding says it. For the same reason second order is
not judged where the engine's value or VJP is blamed: the derivative of a wrong VJP is wrong.

At a kink (kink mode), second order is not judged: across a kink the second derivative is a
delta, which no finite answer matches. Forward mode there is judged by the transpose identity
alone, which asks the engine's forward mode for the very convention of its reverse mode, and
that convention is judged by the kink rules (ops/kinks.py) as before.

The tolerances are the error model's (compare.py, "Forward mode and second order").
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from ..backends import Backend
from ..backends import numeric_backend as numeric
from ..backends.isolation import EngineFailed
from ..crash import Crash
from ..format import Case, reference_values
from ..kinds import Kind
from .compare import RTOL, as_array, crash_finding, inf_norm, judge
from .results import Check, Evaluation, Finding

TANGENT_STREAM = 3  # the case seed's stream for tangents (1: finite-difference directions, 2: JAX's sample)
FORWARD_MODES = ("jvp", "hvp")


def case_tangents(case: Case, which: int) -> dict[str, np.ndarray]:
    """Tangent `which` (0 or 1) for every input: standard normal, in the case's dtype."""
    rng = np.random.default_rng([*(case.seed or [0, 0]), TANGENT_STREAM, which])
    return {name: rng.standard_normal(np.shape(value)).astype(case.dtype) for name, value in case.values.items()}


@dataclass
class ModeAnswer:
    """What one backend returned to one forward-mode or second-order call."""

    backend: str
    role: str
    mode: str  # "jvp" or "hvp"
    answer: object = None  # jvp: (value, J t); hvp: {input: H t}
    crash: Crash | None = None
    seconds: float = 0.0


@dataclass
class ModeVerdict:
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    answers: list[ModeAnswer] = field(default_factory=list)


def call(backend: Backend, mode: str, case: Case, *arguments) -> ModeAnswer:
    """One backend's `jvp` or `hvp` on `case`; whatever it does becomes the answer's crash."""
    graph = copy.deepcopy(case.graph) if backend.role == "engine" else case.graph
    values = {name: value.copy() for name, value in case.values.items()}
    arguments = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in arguments)
    start = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            answer = ModeAnswer(backend.name, backend.role, mode, getattr(backend, mode)(graph, values, *arguments))
    except EngineFailed as error:
        answer = ModeAnswer(backend.name, backend.role, mode, crash=error.crash)
    except Exception as error:
        answer = ModeAnswer(backend.name, backend.role, mode, crash=Crash.raised(error))
    except SystemExit as error:
        answer = ModeAnswer(backend.name, backend.role, mode, crash=Crash.exited(error.code))
    answer.seconds = time.perf_counter() - start
    return answer


def _l2(x: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(x, dtype=np.float64).ravel()))


def _inner(a: dict, b: dict) -> float:
    return float(sum(np.sum(np.asarray(a[n], dtype=np.float64) * np.asarray(b[n], dtype=np.float64)) for n in a))


class _Reader:
    """Turns the answers of one mode into arrays, with a finding for each malformed one."""

    def __init__(self, case: Case, verdict: ModeVerdict):
        self.case, self.verdict = case, verdict

    def jvp(self, answer: ModeAnswer, output_shape: tuple) -> np.ndarray | None:
        if self._crashed(answer):
            return None
        pair = answer.answer
        tangent = as_array(pair[1]) if isinstance(pair, (tuple, list)) and len(pair) == 2 else None
        if tangent is None or tangent.shape != output_shape:
            got = "not a (value, tangent) pair of real arrays" if tangent is None else f"of shape {list(tangent.shape)}"
            self._malformed(answer, None, f"JVP {got}, expected shape {list(output_shape)}")
            return None
        self._dtype(answer, None, tangent)
        return tangent

    def hvp(self, answer: ModeAnswer, input_shapes: dict) -> dict[str, np.ndarray] | None:
        if self._crashed(answer):
            return None
        given = answer.answer if isinstance(answer.answer, dict) else {}
        products = {}
        for name, shape in input_shapes.items():
            product = as_array(given.get(name)) if name in given else None
            if product is None or product.shape != shape:
                got = "missing or not real numbers" if product is None else f"of shape {list(product.shape)}"
                self._malformed(answer, name, f"HVP for {name!r} {got}, expected {list(shape)}")
            else:
                self._dtype(answer, name, product)
                products[name] = product
        return products if len(products) == len(input_shapes) else None

    def _crashed(self, answer: ModeAnswer) -> bool:
        if answer.crash is None:
            return False
        finding = crash_finding(answer.backend, answer.crash)
        finding.quantity = answer.mode
        finding.detail = f"{finding.detail} (in its {answer.mode})"
        self.verdict.findings.append(finding)
        return True

    def _malformed(self, answer: ModeAnswer, input_name, detail: str) -> None:
        self.verdict.findings.append(Finding(Kind.SHAPE, answer.backend, answer.mode, input_name, detail))

    def _dtype(self, answer: ModeAnswer, input_name, array: np.ndarray) -> None:
        if array.dtype != self.case.dtype:
            what = "JVP" if input_name is None else f"HVP for {input_name!r}"
            detail = f"{answer.backend} answered a {self.case.dtype} case with its {what} in {array.dtype}"
            self.verdict.findings.append(
                Finding(Kind.DTYPE, answer.backend, answer.mode, input_name, detail, expected=str(self.case.dtype))
            )


def check_modes(
    case: Case, backends, modes, evaluations: list[Evaluation], intermediate: dict, at_kink: bool,
    first_findings: list[Finding] = (),
) -> ModeVerdict:  # fmt: skip
    """The forward-mode and second-order checks of `case` (see the module's docstring), for the
    modes among `modes` that the engine has. `evaluations` are the first-order answers, and
    `first_findings` what their comparison found."""
    verdict = ModeVerdict()
    engine = backends.engine
    wanted = [m for m in FORWARD_MODES if m in modes and m in engine.modes]
    if not wanted:
        return verdict
    graph, dtype = case.graph, case.graph["dtype"]
    rtol = RTOL[dtype]
    t1, t2 = case_tangents(case, 0), case_tangents(case, 1)
    input_shapes = {entry["name"]: tuple(entry["shape"]) for entry in graph["inputs"]}
    output_shape = tuple(np.shape(intermediate[graph["output"]]))
    first = {e.backend: e for e in evaluations if e.crash is None and isinstance(e.gradients, dict)}
    mine = first.get(engine.name)
    # The engine's VJP, unless the comparison blamed it: identities with a wrong VJP fail by that.
    blamed_first = any(f.backend == engine.name for f in first_findings)
    vjp = None if blamed_first else _first_order(mine, input_shapes, output_shape)
    cotangent = np.asarray(case.cotangent, dtype=np.float64)
    gradient_scale = max(
        [inf_norm(np.asarray(g, dtype=np.float64)) for e in first.values() for g in e.gradients.values()
         if as_array(g) is not None and np.all(np.isfinite(np.asarray(g, dtype=np.float64)))]
        + [inf_norm(cotangent)]
    )  # fmt: skip
    references = [] if at_kink else [r for r in backends.references]
    roles = {engine.name: "engine", **{r.name: "reference" for r in references}, "numeric": "reference"}
    reader = _Reader(case, verdict)
    jvp_scale = _intermediate_tangent_scale(graph, case.values, t1)

    if "jvp" in wanted:
        answers = [call(b, "jvp", case, t1) for b in (engine, *references) if "jvp" in b.modes]
        verdict.answers += answers
        results = {a.backend: t for a in answers if (t := reader.jvp(a, output_shape)) is not None}
        allowance = {}
        if backends.numeric is not None and not at_kink:
            start = time.perf_counter()
            estimate = _quietly(numeric.jvp_estimate, graph, case.values, t1)
            verdict.seconds["numeric"] = verdict.seconds.get("numeric", 0.0) + time.perf_counter() - start
            if estimate is not None:
                results["numeric"], allowance["numeric"] = estimate
        scale = max([jvp_scale] + [inf_norm(r) for r in results.values() if np.all(np.isfinite(r))])
        jvp_scale = scale
        if len(results) > 1:
            judge("jvp", None, results, None, scale, dtype, roles, verdict.checks, verdict.findings, allowance)
        tangent = results.get(engine.name)
        # With its jvp or its vjp blamed already, the identity between them says nothing more.
        if tangent is not None and vjp is not None and not _blamed(verdict, engine.name, ("jvp",)):
            lhs = float(np.sum(cotangent * tangent.astype(np.float64)))
            rhs = _inner(vjp, t1)
            tolerance = rtol * (
                _l2(cotangent) * (_l2(tangent) + np.sqrt(tangent.size) * scale)
                + sum(_l2(t1[n]) * (_l2(vjp[n]) + np.sqrt(np.size(vjp[n])) * gradient_scale) for n in vjp)
            )
            _identity(verdict, engine.name, "transpose identity", lhs, rhs, tolerance,
                      "<v, J t> (its jvp) = {lhs:.17g} but <J^T v, t> (its vjp) = {rhs:.17g}")  # fmt: skip

    # A wrong VJP has a wrong derivative: where the comparison blamed the engine's value or VJP,
    # its HVP is not judged (one finding says it, in the mode where the rule is wrong).
    if "hvp" in wanted and not at_kink and not blamed_first:
        answers = [call(b, "hvp", case, case.cotangent, t1) for b in (engine, *references) if "hvp" in b.modes]
        second = call(engine, "hvp", case, case.cotangent, t2)
        verdict.answers += [*answers, second]
        results = {a.backend: p for a in answers if (p := reader.hvp(a, input_shapes)) is not None}
        estimates = {}
        if backends.numeric is not None and references:
            estimates = _quietly(_reference_hvp_estimate, references, case, t1, verdict) or {}
        finite = [inf_norm(p) for r in results.values() for p in r.values() if np.all(np.isfinite(p))]
        tangent_scale = max(map(inf_norm, t1.values()), default=0.0)
        scale = max([*finite, gradient_scale * tangent_scale, inf_norm(cotangent) * jvp_scale])
        for name in input_shapes:
            per_backend = {b: r[name] for b, r in results.items()}
            allowance = {}
            if name in estimates:
                per_backend["numeric"], allowance["numeric"] = estimates[name]
            if len(per_backend) > 1:
                judge("hvp", name, per_backend, None, scale, dtype, roles, verdict.checks, verdict.findings, allowance)
        products = results.get(engine.name)
        products_2 = reader.hvp(second, input_shapes) if second.crash is None else None
        if products is not None and not _blamed(verdict, engine.name, ("hvp",)):
            if products_2 is not None:
                tolerance = rtol * sum(
                    _l2(t2[n]) * (_l2(products[n]) + np.sqrt(products[n].size) * scale)
                    + _l2(t1[n]) * (_l2(products_2[n]) + np.sqrt(products[n].size) * scale)
                    for n in products
                )
                _identity(verdict, engine.name, "symmetry", _inner(t2, products), _inner(t1, products_2), tolerance,
                          "<t2, H t1> = {lhs:.17g} but <t1, H t2> = {rhs:.17g}")  # fmt: skip
            # Where a reference judged H t and the VJPs, they said it all; where none did, the
            # engine's H t is held to a central difference of its own VJP.
            judged = any(name != engine.name and name != "numeric" for name in results)
            if backends.numeric is not None and vjp is not None and not judged:
                _self_consistency(verdict, engine, case, t1, products, scale, rtol)
    return verdict


def _first_order(evaluation: Evaluation | None, input_shapes: dict, output_shape: tuple) -> dict | None:
    """The engine's own VJP, if it gave a well-formed one."""
    if evaluation is None:
        return None
    vjp = {name: as_array(evaluation.gradients.get(name)) for name in input_shapes}
    if any(g is None or g.shape != input_shapes[n] or not np.all(np.isfinite(g)) for n, g in vjp.items()):
        return None
    return vjp


def _blamed(verdict: ModeVerdict, engine: str, quantities) -> bool:
    return any(f.backend == engine and f.quantity in quantities for f in verdict.findings)


def _identity(verdict: ModeVerdict, engine: str, which: str, lhs: float, rhs: float, tolerance: float, says: str):
    if not (np.isfinite(lhs) and np.isfinite(rhs)):
        return  # a NaN answer is a finding of the comparison with the references already
    check = Check(which, None, (engine, engine), abs(lhs - rhs), tolerance + np.finfo(np.float64).tiny)
    verdict.checks.append(check)
    if not check.passed:
        detail = f"{engine}'s {which} fails: " + says.format(lhs=lhs, rhs=rhs) + f" (margin {check.margin:.3g})"
        verdict.findings.append(
            Finding(Kind.MODE_MISMATCH, engine, which, None, detail, expected=rhs, actual=lhs, margin=check.margin)
        )


def _self_consistency(verdict, engine: Backend, case: Case, t1, products, scale: float, rtol: float) -> None:
    """The engine's H t1 against a central difference of its own VJP along t1."""

    def engine_vjp(values):
        # Anything the engine does on a step (it raises, dies, times out) leaves the difference undone.
        graph = copy.deepcopy(case.graph)
        moved = {n: v.astype(case.dtype) for n, v in values.items()}
        _, gradients = engine.evaluate(graph, moved, case.cotangent.copy())
        return {n: np.asarray(gradients[n]) for n in case.values}

    start = time.perf_counter()
    estimates = _quietly(numeric.hvp_estimate, engine_vjp, case.values, t1, len(case.graph["nodes"]))
    verdict.seconds[engine.name] = verdict.seconds.get(engine.name, 0.0) + time.perf_counter() - start
    if not estimates:
        return
    estimate, bounds = estimates
    for name, product in products.items():
        if name not in estimate:
            continue
        mine, differenced = product.astype(np.float64), np.asarray(estimate[name], dtype=np.float64)
        error = inf_norm(mine - differenced)
        tolerance = rtol * (max(inf_norm(mine), inf_norm(differenced)) + scale) + 4 * bounds[name]
        check = Check("own vjp", name, (engine.name, engine.name), error, tolerance + np.finfo(np.float64).tiny)
        verdict.checks.append(check)
        if not check.passed:
            detail = (
                f"{engine.name}'s HVP for {name!r} is not the derivative of its own VJP along the tangent "
                f"(margin {check.margin:.3g})"
            )
            verdict.findings.append(
                Finding(Kind.MODE_MISMATCH, engine.name, "own vjp", name, detail,
                        expected=differenced.tolist(), actual=mine.tolist(), margin=check.margin)
            )  # fmt: skip


def _reference_hvp_estimate(references, case: Case, t1, verdict: ModeVerdict):
    """A central difference, in float64, of the first AD reference's VJP along t1 (not JAX's
    when another is here: JAX compiles once per shape). {input: (estimate, bound)}."""
    # A recorded reference (a reproducer's) answers for the recorded point only: no difference of it.
    live = [r for r in references if not getattr(r.plugin, "recorded", False)]
    if not live:
        return {}
    reference = next((r for r in live if r.name != "jax"), live[0])
    graph64 = {**case.graph, "dtype": "float64"}
    cotangent64 = np.asarray(case.cotangent, dtype=np.float64)

    def reference_vjp(values):
        _, gradients = reference.evaluate(graph64, {n: np.asarray(v, dtype=np.float64) for n, v in values.items()},
                                          cotangent64)  # fmt: skip
        return {n: np.asarray(g) for n, g in gradients.items()}

    start = time.perf_counter()
    values64 = {n: v.astype(np.float64) for n, v in case.values.items()}
    tangents64 = {n: t.astype(np.float64) for n, t in t1.items()}
    answer = numeric.hvp_estimate(reference_vjp, values64, tangents64, len(case.graph["nodes"]))
    verdict.seconds["numeric"] = verdict.seconds.get("numeric", 0.0) + time.perf_counter() - start
    if answer is None:
        return {}
    estimate, bounds = answer
    return {name: (estimate[name], bounds[name]) for name in estimate}


def _intermediate_tangent_scale(graph: dict, values: dict, tangents: dict) -> float:
    """The largest tangent of any node along `tangents`, by a central difference of the op
    table's forward in float64: a scale for the error model, not a check."""
    base = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
    h = 1e-6 * max([1.0] + [inf_norm(x) for x in base.values()])
    with np.errstate(all="ignore"):
        plus = reference_values(graph, {n: x + h * tangents[n] for n, x in base.items()})
        minus = reference_values(graph, {n: x - h * tangents[n] for n, x in base.items()})
    largest = [inf_norm((plus[n] - minus[n]) / (2 * h)) for n in plus]
    return max([x for x in largest if np.isfinite(x)], default=0.0)


def _quietly(function, *arguments):
    """A finite-difference estimate, or None if it cannot be had (a step out of the domain, a
    reference that raises there): finite differences then judge nothing, as at a kink."""
    try:
        with np.errstate(all="ignore"):
            return function(*arguments)
    except (Exception, SystemExit):
        return None


MODE_OF_QUANTITY = {
    "value": "vjp", "gradient": "vjp", "jvp": "jvp", "transpose identity": "jvp",
    "hvp": "hvp", "symmetry": "hvp", "own vjp": "hvp",
}  # fmt: skip


def mode_of(finding: Finding) -> str:
    """The derivative mode a finding is about: a crash or a shape in `evaluate` (no quantity, or
    the value and VJPs) is reverse mode's."""
    return MODE_OF_QUANTITY.get(finding.quantity or "", "vjp")
