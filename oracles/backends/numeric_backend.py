"""Finite differences as a reference: one random direction per input, two step sizes.

This oracle shares no code with any AD backend: it differentiates the op table's
plain-numpy forward (`reference_values`), always in float64.

For input x_i and a random unit direction d_i (other inputs held), the quantity
checked is the directional derivative of f(x) = sum(v * output(x)) along d_i, which every
AD backend's VJP must reproduce as <vjp_i, d_i>. It costs four forward evaluations per
input (steps h and 2h), not 2n.

Error model. The central difference D(h) = (f(x + h d) - f(x - h d)) / 2h has
- a truncation error c h^2; D(h) - D(2h) = -3 c h^2 + O(h^4), so |D(h) - D(2h)| / 3 estimates it;
- a rounding error of at most about (n_ops + 2) eps sum_k |v_k| max|output_k| / h, from
  each output element carrying a few ulps per op, differenced and divided by 2h.
h = eps^(1/3) max(1, |x|_inf) balances the two. The returned bound is the truncation
estimate plus the rounding bound; the comparison adds a small relative floor.

The truncation estimate holds only where h is small for the function, so that c h^2 is the
error's leading term; there, D(2h) - D(4h) is four times D(h) - D(2h), and both are small. A
function that varies faster than h resolves (sin(exp(u)) with exp(u) in the thousands, found
in a 100,000-graph audit) breaks that pattern, and its two differences can be small by chance
while the estimate is far off. Such an input gets no estimate: finite differences cannot judge
it (as at a kink), and the AD references still do.

Forward mode and second order. `jvp_estimate` differences the output itself along the tangents
t (all inputs moved together): D(h) = (out(x + h t) - out(x - h t)) / 2h estimates J t, each
element with the truncation error above; the rounding bound of an element is
(n_ops + 2) eps max|out| / h (no cotangent sums elements here). `hvp_estimate` differences a
given VJP function g(x) = vjp(x) the same way: D(h) = (g(x + h t) - g(x - h t)) / 2h estimates
H t, input by input, with a rounding bound of (2 n_ops + 2) eps_g max|g| / h, the forward and
the backward pass each carrying a few ulps per op, where eps_g is the machine epsilon of the
dtype the VJP returns (float32's for a VJP computed in float32), and h is chosen with the
epsilon of the values' dtype (so a float32 VJP gets a step that float32 resolves). Both take
the same steps h, 2h, 4h (h from the largest |x| over all inputs, for one displacement of them
all; the tangents are meant to be of order one, as a unit direction is); the truncation
estimate |D(h) - D(2h)| / 3 and the c h^2 test (`_asymptotic`) are taken on inf-norms over the
elements, and the bound of an estimate is its truncation estimate plus its rounding bound.
Where the differences do not behave as c h^2, finite differences judge nothing: jvp_estimate
returns None, and hvp_estimate leaves that input out (None when it leaves out every input).
"""

from __future__ import annotations

import numpy as np

from ..format import reference_values
from ..ops import OPS

name = "numeric"
ops = OPS.keys()  # it differentiates the op table's own numpy forward, so it covers every op, live
unsupported: dict[str, str] = {}

EPS = np.finfo(np.float64).eps


def forward_value(graph, values) -> np.ndarray:
    """The output by the op table's numpy forward, in float64."""
    as_float64 = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
    return reference_values(graph, as_float64)[graph["output"]]


def directional_derivatives(graph, values, cotangent, directions) -> dict[str, tuple[float, float]]:
    """{input: (estimate of <vjp_input, direction>, error bound of the estimate)}."""
    base = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
    v = np.asarray(cotangent, dtype=np.float64)
    n_ops = len(graph["nodes"])
    results = {}
    for input_name, direction in directions.items():
        x = base[input_name]
        h = np.cbrt(EPS) * max(1.0, float(np.max(np.abs(x), initial=0.0)))
        estimates = []
        largest_output = 0.0
        for step in (h, 2 * h, 4 * h):
            plus = forward_value(graph, {**base, input_name: x + step * direction})
            minus = forward_value(graph, {**base, input_name: x - step * direction})
            # Difference elementwise before the dot product: rounding stays relative to what moved.
            estimates.append(float(np.sum(v * (plus - minus))) / (2 * step))
            largest_output = max(largest_output, float(np.max(np.abs(plus), initial=0.0)))
            largest_output = max(largest_output, float(np.max(np.abs(minus), initial=0.0)))
        near, far = estimates[0] - estimates[1], estimates[1] - estimates[2]
        rounding = (n_ops + 2) * EPS * float(np.sum(np.abs(v))) * largest_output / h
        if not _asymptotic(estimates[0], near, far, rounding):
            continue
        results[input_name] = (estimates[0], abs(near) / 3 + rounding)
    return results


def _asymptotic(estimate: float, near: float, far: float, rounding: float) -> bool:
    """Whether the differences D(h) - D(2h) and D(2h) - D(4h) behave as c h^2 predicts: a ratio
    near 4 (3 to 5), and small against the estimate (1%: an h that resolves the function leaves
    far less). Differences within the rounding noise say the truncation is negligible. Three
    values that vary at random pass both tests rarely; a real c h^2 passes them always. A NaN or
    an infinity anywhere passes neither."""
    if not np.all(np.isfinite([estimate, near, far, rounding])):
        return False
    if max(abs(near), abs(far)) <= 10 * rounding:
        return True
    return near != 0 and 3 <= far / near <= 5 and abs(near) <= 0.01 * abs(estimate)


STEPS = (1, 2, 4)  # D(h), D(2h), D(4h)


def _largest(array) -> float:
    """The inf-norm of an array (0 for an empty one)."""
    return float(np.max(np.abs(array), initial=0.0))


def _step(values, eps: float) -> float:
    """h = eps^(1/3) max(1, max |x| over all inputs): one displacement moves them all."""
    return float(np.cbrt(eps)) * max(1.0, *(_largest(v) for v in values))


def _judged(differences: list[np.ndarray], rounding: float) -> tuple[np.ndarray, float] | None:
    """(D(h), its bound) from D(h), D(2h), D(4h), or None if they do not behave as c h^2."""
    near, far = _largest(differences[0] - differences[1]), _largest(differences[1] - differences[2])
    if not _asymptotic(_largest(differences[0]), near, far, rounding):
        return None
    return differences[0], near / 3 + rounding


def jvp_estimate(graph, values, tangents) -> tuple[np.ndarray, float] | None:
    """(estimate of J t, its error bound) by central differences of the op table's forward, in
    float64, along the tangents; None where finite differences cannot judge."""
    x = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
    t = {n: np.asarray(tangents[n], dtype=np.float64) for n in x}
    h = _step(x.values(), EPS)
    differences, largest = [], 0.0
    for step in (k * h for k in STEPS):
        plus = forward_value(graph, {n: x[n] + step * t[n] for n in x})
        minus = forward_value(graph, {n: x[n] - step * t[n] for n in x})
        differences.append((plus - minus) / (2 * step))
        largest = max(largest, _largest(plus), _largest(minus))
    return _judged(differences, (len(graph["nodes"]) + 2) * EPS * largest / h)


def hvp_estimate(vjp, values, tangents, n_ops: int = 1) -> tuple[dict, dict] | None:
    """({input: estimate of H t}, {input: its error bound}) by central differences of
    `vjp(values) -> {input: array}` (a VJP at a fixed cotangent) along the tangents; `n_ops`
    is the graph's node count, for the rounding bound. Inputs where finite differences cannot
    judge are left out; None if that is all of them. The moved values keep each value's dtype."""
    given = {n: np.asarray(v) for n, v in values.items()}
    dtypes = {n: v.dtype if np.issubdtype(v.dtype, np.floating) else np.dtype(np.float64) for n, v in given.items()}
    x = {n: v.astype(np.float64) for n, v in given.items()}
    t = {n: np.asarray(tangents[n], dtype=np.float64) for n in x}
    h = _step(x.values(), max(float(np.finfo(d).eps) for d in dtypes.values()))
    differences: dict[str, list] = {}
    largest: dict[str, float] = {}
    eps = 0.0  # of the dtype the VJP returns
    for step in (k * h for k in STEPS):
        plus, minus = ({n: (x[n] + sign * step * t[n]).astype(dtypes[n]) for n in x} for sign in (1, -1))
        plus, minus = vjp(plus), vjp(minus)
        for n in plus:
            eps = max(eps, float(np.finfo(np.asarray(plus[n]).dtype).eps))
            differences.setdefault(n, []).append(
                (np.asarray(plus[n], dtype=np.float64) - np.asarray(minus[n], dtype=np.float64)) / (2 * step)
            )
            largest[n] = max(largest.get(n, 0.0), _largest(plus[n]), _largest(minus[n]))
    judged = {n: _judged(d, (2 * n_ops + 2) * eps * largest[n] / h) for n, d in differences.items()}
    kept = {n: found for n, found in judged.items() if found is not None}
    if not kept:
        return None
    return {n: found[0] for n, found in kept.items()}, {n: found[1] for n, found in kept.items()}


def random_directions(values, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random unit direction (2-norm 1) for each input, in float64."""
    directions = {}
    for input_name, value in values.items():
        d = rng.standard_normal(np.shape(value))
        norm = float(np.linalg.norm(d))
        directions[input_name] = d / norm if norm > 0 else np.ones_like(d)
    return directions
