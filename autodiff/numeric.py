"""Numerical gradients: the notebook's `ngrad`, for tensors, returning arrays.

Both functions estimate the vector-Jacobian product v^T J (v = the cotangent, ones by
default) of the run's single output, by central differences of f(x) = sum(v * output(x)).

Step size and error. For a step h, the central difference (f(x+h) - f(x-h)) / 2h differs
from f'(x) by a truncation error h^2/6 |f'''| plus a rounding error of about eps |f| / h
(eps = the dtype's machine epsilon). h = eps^(1/3) balances the two, so the error is of
order eps^(2/3) times the size of f and its derivatives: about 4e-11 relative in float64,
2.4e-5 in float32. The step is scaled by max(1, |x|) so that it stays above the spacing of
floats around x, and the step actually taken ((x+h) - (x-h) after rounding) is the one
divided by.
"""

from __future__ import annotations

import numpy as np

from .nodes import GraphError
from .run import forward, outputs_of


def _float_array(value) -> np.ndarray:
    # float32 stays float32 (its own step and error); anything else is measured in float64.
    array = np.asarray(value)
    return array.astype(array.dtype if array.dtype == np.float32 else np.float64)


def _output(feed, nodes, cotangent):
    """Returns the single output's value (float64), the cotangent v, and the node order."""
    nodes = forward(feed, nodes)
    outputs = outputs_of(nodes)
    if len(outputs) != 1:
        raise GraphError(f"a numerical gradient needs one output, found {sorted(n.name for n in outputs)}")
    value = np.asarray(outputs[0].value, dtype=np.float64)
    v = np.ones_like(value) if cotangent is None else np.asarray(cotangent, dtype=np.float64)
    if v.shape != value.shape:
        raise GraphError(f"output {outputs[0].name!r}: cotangent of shape {v.shape}, expected {value.shape}")
    return value, v, nodes


def _difference(feed_plus, feed_minus, nodes, cotangent):
    """v . (output(plus) - output(minus)). Differencing elementwise before the dot product
    keeps the rounding error proportional to the outputs that moved, not to all of f."""
    plus, v, nodes = _output(feed_plus, nodes, cotangent)
    minus, _, nodes = _output(feed_minus, nodes, cotangent)
    return float(np.sum(v * (plus - minus))), nodes


def _step(x: np.ndarray) -> np.ndarray:
    return np.cbrt(np.finfo(x.dtype).eps) * np.maximum(1.0, np.abs(x))


def ngrad(feed, nodes=None, cotangent=None) -> dict:
    """Central differences for every element of every fed input: {input node: array}.

    Costs 2 evaluations per element. Leaves the nodes holding the values of `feed`.
    """
    base = {node: _float_array(value) for node, value in feed.items()}
    gradients = {}
    for node, x in base.items():
        gradient = np.zeros(x.shape, dtype=x.dtype)
        h = _step(x)
        for index in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[index] += h[index]
            minus[index] -= h[index]
            change, nodes = _difference({**base, node: plus}, {**base, node: minus}, nodes, cotangent)
            gradient[index] = change / (float(plus[index]) - float(minus[index]))
        gradients[node] = gradient
    forward(feed, nodes)
    return gradients


def ngrad_directional(feed, nodes=None, cotangent=None, directions=None, seed=None):
    """One directional derivative of f along `directions` (random if omitted): 2 evaluations.

    Returns (estimate, directions). The exact value it estimates is
    sum over inputs x of sum(gradient_x * directions[x]), so one call checks every
    input's gradient at once, in any direction a bug could hide in.
    """
    base = {node: _float_array(value) for node, value in feed.items()}
    if directions is None:
        rng = np.random.default_rng(seed)
        directions = {node: rng.standard_normal(x.shape).astype(x.dtype) for node, x in base.items()}
    scale = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in base.values()])
    dtype = np.result_type(*base.values()) if base else np.float64
    h = float(np.cbrt(np.finfo(dtype).eps)) * scale
    plus = {node: x + h * directions[node] for node, x in base.items()}
    minus = {node: x - h * directions[node] for node, x in base.items()}
    change, nodes = _difference(plus, minus, nodes, cotangent)
    forward(feed, nodes)
    return change / (2 * h), directions
