"""Comparison: the error model and the checks (blame by majority is in blame.py).

Error model (stated once, used everywhere)
------------------------------------------
Two AD results `a` and `b` of one quantity (the output value, or one input's VJP) are
compared norm-wise: error = max|a - b|, and they agree when

    error <= rtol[dtype] * (max(|a|_inf, |b|_inf) + scale)

`scale` is the case's own magnitude for that kind of quantity: for values, the largest
magnitude among all intermediate values of the graph (rounding in a subtraction is
relative to its operands, not to its small result); for gradients, the largest magnitude
among all inputs' VJPs of the case and the cotangent (adjoints that cancel leave an absolute
error of that size: div(x, x), or a softmax of a row broadcast from one value, has a true
gradient of exactly 0 and computed ones of order eps |v|). rtol is far above one rounding
per op and far below any wrong rule, whose error is of the order of the quantity itself:

    float64: 1e-9    float32: 2e-3   (eps = 2.2e-16 and 1.2e-7; graphs of up to ~30 ops)

Ops that condition differently from mult stay inside that budget because of their domains
(ops/table.py): exp amplifies its operand's relative error by |a| <= 6.5; log, sqrt, div and
pow's base have derivatives of size 1/a with |a| >= 0.1, at most tenfold; and the fused ops
(softmax, log_softmax, logsumexp) subtract their operand's maximum, so their rounding is
relative to that operand (up to ~710 when shifted past exp's overflow), not to their results
near 1: `scale`, the largest intermediate of the graph, is that operand. var and std subtract
each slice's mean too, but their results and gradients are of the size of the slice's spread,
not of the operand: x - mean rounds by eps |x|, so their relative error is eps times the slice's
condition |x|_inf / spread, times what the graph does after. In float32 the generator keeps
that condition at most 100 (generate/values.py, CENTERING_CONDITION): a slice [705.7, 703.9],
condition 810, gave a correct float32 engine a gradient 0.6% off behind an einsum. In float64,
values of at most 1e3 round by 2e-13, far below rtol whatever the spread.

Far out and tiny (the third op wave). Saturating functions get operands far from zero part of
the time: softplus, log_sigmoid, logaddexp, sigmoid, tanh and the fused ops up to |a| = 800 in
float64 and 100 in float32 (ops/delicate.py, ops/fused.py). The model holds there because it
is absolute at the case's own scale, not relative to each element:
- a true gradient that underflows is compared as the number it is. sigmoid'(-800) is 0 in
  float64, and sigmoid'(-100) = 3.7e-44 is subnormal in float32, where a backend that flushes
  subnormals returns 0. Either answer is off by at most 4e-44, against a tolerance of at least
  rtol |cotangent|_inf (the gradient scale includes the cotangent). A rule that is unstable
  there gives NaN or Inf (exp(-a) / (1 + exp(-a)) ** 2 is inf / inf below -709.8), which is a
  finding of its own, or a gradient of the size of the cotangent, which is far past rtol;
- a value far out carries rounding relative to its operand, up to 800: the value scale is the
  case's largest intermediate, which includes that operand (softplus(800) = 800 exactly, and
  log_sigmoid(800) = -exp(-800) = -0 against 1e-9 * 800);
- the generator keeps such values (sigmoid(-100) = 4e-44 is not redrawn): no op divides by an
  operand or takes its log without a margin from 0 in its domain, so nothing amplifies the
  flush-to-zero difference past those 4e-44.
log1p and expm1 get tiny operands (about 1e-9), where log(1 + a) and exp(a) - 1 lose every
digit: a graph whose values are all that small has a value scale of 1e-9, so the naive forms'
error of about eps = 2e-16 is 100 times the tolerance there, while the stable ones stay within
a few ulps of 1e-9.

The numeric oracle is judged by its own error bound (see backends/numeric_backend.py):
an AD result agrees with it when

    |<vjp, d> - estimate| <= 4 * bound + rtol_fd * (|vjp|_2 + sqrt(size) * scale)

(d is a unit vector, so |vjp|_2 bounds |<vjp, d>|, and the second term is the AD side's
own rounding, as above, seen through d) with rtol_fd = 1e-6 in float64, and
rtol[float32] when the AD side ran in float32: a float32 gradient differs from the
float64 truth by its own rounding, however right its rules are. Its forward value is the op table's numpy
forward in float64, compared like an AD value.

Finite differences far out. The step is h = eps^(1/3) max(1, |x|_inf), up to 4.7e-3 for an
input with an element at 800, and it moves every element of the input. It never crosses a
point where an op is not smooth: every such point (a kink, a tie, the zero spread of std, the
zero vector of norm, atan2's branch cut) is kept at least a margin of 0.05 away, ten times the
largest step (1e3 eps^(1/3) = 6e-3). Where the function still varies faster than h resolves
(a saturating function's knee, seen from a step of 4.7e-3, is smooth; sin(exp(u)) with exp(u)
in the thousands is not), the two step sizes disagree with the h^2 law and the estimate is
dropped (numeric_backend._asymptotic): finite differences then judge nothing, and the AD
references still do. A tiny operand of log1p (1e-9) is stepped by 6e-6: log1p is smooth there,
and a > -0.9 keeps the step far from its pole.

Forward mode and second order (check/modes.py). A JVP J t and an HVP H t are compared by the
same rule, each with its own case-wide scale, for the same reason as above (cancellation leaves
an absolute error of the size of the largest term, not of the small result). Tangents t are
standard normal per element, so |t|_inf is a few units.
- JVP: scale = the largest tangent of any intermediate of the graph along t, which the case
  measures by a central difference of the op table's numpy forward over every node (a scale,
  not a check: its own error of order h^2 does not matter), and the answers' own |J t|_inf. A
  forward-mode rule adds one rounding per op to a tangent made of its operands' tangents times
  local derivatives, exactly as a VJP is made of adjoints: the domains that bound those
  derivatives for first order bound them here.
- HVP: the derivative along t of the VJP at a fixed cotangent v. Its terms are adjoints times
  second derivatives times tangents, and adjoint tangents; the scale is the largest of the
  answers' |H t|_inf, the gradient scale times |t|_inf, and |v|_inf times the JVP scale.
  div(x, x) has H t = 0 exactly and computed terms of order eps |v| |t| / x^2, with |x| >= 0.1:
  at most 100 eps |v| |t|, far below rtol times the scale.
- Finite differences of a JVP (the forward along t) and of a VJP (a reference's, in float64,
  along t) carry the bound of numeric_backend, times NUMERIC_BOUND_FACTOR, added to rtol's term.
- The identities inside the engine compare two inner products of the same quantity, each a
  sum of products: |<a, b>| has rounding of at most rtol |a|_2 (|b|_2 + sqrt(size) scale) when
  b carries an absolute error of rtol scale per element. So <v, J t> = <J^T v, t> is checked
  with tolerance rtol (|v|_2 (|J t|_2 + sqrt(n) jvp scale) + sum_i |t_i|_2 (|g_i|_2 +
  sqrt(n_i) gradient scale)), and <t2, H t1> = <t1, H t2> likewise with the HVP scale. A wrong
  rule breaks them by the size of the quantity itself, not by a rounding.

Every check records its margin = error / tolerance: below 1 passes, and a margin of 0.5
is a near miss worth seeing. Reports show the worst margins.

Blame by majority: see blame.py.

Dtype
-----
A case is computed and answered in its dtype. A backend whose value or any VJP comes back in
another dtype (float64 for a float32 case: the engine upcast, so its float32 path went
unchecked) has a `dtype` finding, however close its numbers are. Its numbers are still compared.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..crash import DIED, TIMED_OUT, Crash
from ..kinds import Kind
from .blame import blame
from .results import Check, Evaluation, Finding, NumericResult, Verdict

RTOL = {"float64": 1e-9, "float32": 2e-3}
RTOL_FINITE_DIFFERENCES = 1e-6
NUMERIC_BOUND_FACTOR = 4.0


def as_array(x) -> np.ndarray | None:
    """`x` as an array of real numbers, or None: strings, objects and complex numbers (whose
    imaginary part a cast to float64 would silently drop) are a malformed result."""
    try:
        array = np.asarray(x)
    except Exception:
        return None
    return array if array.dtype.kind in "iuf" else None


def _finite(x: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(x)))


def inf_norm(x: np.ndarray) -> float:
    return float(np.max(np.abs(x), initial=0.0))


def _float_kind(array: np.ndarray) -> str:
    return "float32" if array.dtype == np.float32 else "float64"


def compare(
    case_dtype: str,
    output_shape: tuple,
    input_shapes: dict[str, tuple],
    value_scale: float,
    evaluations: list[Evaluation],
    numeric: NumericResult | None,
    cotangent_scale: float = 0.0,
) -> Verdict:
    """Check every backend against every other, for the value and for each input's VJP."""
    findings: list[Finding] = []
    checks: list[Check] = []
    roles = {e.backend: e.role for e in evaluations}
    if numeric is not None:
        roles["numeric"] = "reference"

    # 1. Crashes and shapes: a backend that fails them drops out of that quantity's vote.
    values: dict[str, np.ndarray] = {}
    gradients: dict[str, dict[str, np.ndarray]] = {name: {} for name in input_shapes}
    for e in evaluations:
        if e.crash is not None:
            findings.append(crash_finding(e.backend, e.crash))
            continue
        value = as_array(e.value)
        if value is None or value.shape != output_shape:
            got = "not an array of real numbers" if value is None else f"of shape {list(value.shape)}"
            findings.append(
                Finding(Kind.SHAPE, e.backend, "value", None, f"value {got}, expected shape {list(output_shape)}")
            )
        else:
            values[e.backend] = value
        returned = e.gradients if isinstance(e.gradients, dict) else {}
        for name, shape in input_shapes.items():
            gradient = as_array(returned.get(name)) if name in returned else None
            if gradient is None or gradient.shape != shape:
                got = "missing or not real numbers" if gradient is None else f"of shape {list(gradient.shape)}"
                findings.append(
                    Finding(
                        Kind.SHAPE, e.backend, "gradient", name, f"gradient for {name!r} {got}, expected {list(shape)}"
                    )
                )
            else:
                gradients[name][e.backend] = gradient
    for e in evaluations:
        if e.crash is None:
            findings += _dtype_findings(e, case_dtype, values, gradients)
    if numeric is not None:
        if numeric.crash is not None:
            findings.append(crash_finding("numeric", numeric.crash))
            numeric = None
        else:
            values["numeric"] = np.asarray(numeric.value)

    # 2. Each quantity: NaN/Inf, pairwise agreement, blame.
    gradient_scale = max(
        [inf_norm(g) for per_input in gradients.values() for g in per_input.values() if _finite(g)] + [cotangent_scale]
    )
    judge("value", None, values, None, value_scale, case_dtype, roles, checks, findings)
    for name, per_backend in gradients.items():
        projection = None
        if numeric is not None and name in numeric.estimates:
            projection = (numeric.directions[name], *numeric.estimates[name])
        judge("gradient", name, per_backend, projection, gradient_scale, case_dtype, roles, checks, findings)
    return Verdict(checks, findings)


def crash_finding(backend: str, crash: Crash) -> Finding:
    if crash.cause == TIMED_OUT:
        return Finding(Kind.TIMEOUT, backend, None, None, f"{backend}: {crash.describe()}", crash=crash)
    verb = "crashed:" if crash.cause == DIED else "raised"
    return Finding(Kind.CRASH, backend, None, None, f"{backend} {verb} {crash.describe()}", crash=crash)


def _dtype_findings(e: Evaluation, case_dtype: str, values: dict, gradients: dict) -> list[Finding]:
    """One `dtype` finding for a backend that answered in another dtype than the case's."""
    wrong = []
    if e.backend in values and values[e.backend].dtype != np.dtype(case_dtype):
        wrong.append(f"value in {values[e.backend].dtype}")
    for name, per_backend in gradients.items():
        if e.backend in per_backend and per_backend[e.backend].dtype != np.dtype(case_dtype):
            wrong.append(f"gradient for {name!r} in {per_backend[e.backend].dtype}")
    if not wrong:
        return []
    detail = f"{e.backend} answered a {case_dtype} case with {', '.join(wrong)}"
    return [Finding(Kind.DTYPE, e.backend, None, None, detail, expected=case_dtype)]


LABELS = {"value": "value", "gradient": "gradient", "jvp": "JVP", "hvp": "HVP"}  # how a finding names its quantity


def label_of(quantity: str, input_name: str | None) -> str:
    return LABELS.get(quantity, quantity) + ("" if input_name is None else f" for {input_name!r}")


def judge(quantity, input_name, results, projection, scale, case_dtype, roles, checks, findings, allowance=None):
    """Compare one quantity across backends; append checks and findings. `allowance` gives a
    finite-difference participant's own error bound ({backend: bound}), added, times
    NUMERIC_BOUND_FACTOR, to the tolerance of every pair it is in."""
    label = label_of(quantity, input_name)
    finite = {b: r for b, r in results.items() if _finite(r)}
    if projection is not None and not np.isfinite(projection[1]):
        projection = None
    for backend in results:
        if backend not in finite and (finite or projection is not None):
            findings.append(
                Finding(
                    Kind.NAN_INF,
                    backend,
                    quantity,
                    input_name,
                    f"{label} has NaN/Inf where others are finite",
                    actual=results[backend].tolist(),
                )
            )
    if not finite and results:
        findings.append(Finding(Kind.NAN_INF, None, quantity, input_name, f"{label} is NaN/Inf in every backend"))
        return

    agree: dict[frozenset, Check] = {}
    names = sorted(finite)
    for a, b in itertools.combinations(names, 2):
        check = array_check(quantity, input_name, a, finite[a], b, finite[b], scale, case_dtype)
        for estimated in {a, b} & set(allowance or ()):
            check.tolerance += NUMERIC_BOUND_FACTOR * allowance[estimated]
        checks.append(check)
        agree[frozenset((a, b))] = check
    if projection is not None:
        direction, estimate, bound = projection
        for a in names:
            check = _projection_check(input_name, a, finite[a], direction, estimate, bound, scale, case_dtype)
            checks.append(check)
            agree[frozenset((a, "numeric"))] = check
        names = [*names, "numeric"]
    if all(check.passed for check in agree.values()):
        return
    blame(quantity, input_name, label, names, agree, finite, projection, roles, findings)


def array_check(quantity, input_name, a, x, b, y, scale, case_dtype) -> Check:
    # The looser dtype of the two decides: a float32 engine against float64 numpy is float32.
    dtype = "float32" if "float32" in (_float_kind(x), _float_kind(y), case_dtype) else "float64"
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    error = inf_norm(x64 - y64)
    tolerance = RTOL[dtype] * (max(inf_norm(x64), inf_norm(y64)) + scale)
    return Check(quantity, input_name, (a, b), error, tolerance)


def _projection_check(input_name, backend, gradient, direction, estimate, bound, scale, case_dtype) -> Check:
    g = gradient.astype(np.float64)
    rtol = RTOL["float32"] if "float32" in (_float_kind(gradient), case_dtype) else RTOL_FINITE_DIFFERENCES
    error = abs(float(np.sum(g * direction)) - estimate)
    # The AD side's own rounding, as in array_check, seen through a unit direction:
    # |<e, d>| <= |e|_2 <= sqrt(size) |e|_inf.
    ad_rounding = rtol * (float(np.linalg.norm(g)) + scale * np.sqrt(g.size))
    tolerance = NUMERIC_BOUND_FACTOR * bound + ad_rounding + np.finfo(np.float64).tiny
    return Check("gradient", input_name, (backend, "numeric"), error, tolerance)
