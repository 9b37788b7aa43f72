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
    values that vary at random pass both tests rarely; a real c h^2 passes them always."""
    if max(abs(near), abs(far)) <= 10 * rounding:
        return True
    return near != 0 and 3 <= far / near <= 5 and abs(near) <= 0.01 * abs(estimate)


def random_directions(values, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random unit direction (2-norm 1) for each input, in float64."""
    directions = {}
    for input_name, value in values.items():
        d = rng.standard_normal(np.shape(value))
        norm = float(np.linalg.norm(d))
        directions[input_name] = d / norm if norm > 0 else np.ones_like(d)
    return directions
