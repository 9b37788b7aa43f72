"""Numerical gradients: the notebook's `ngrad`, for tensors, returning arrays.

`ngrad` and `ngrad_directional` estimate the vector-Jacobian product v^T J (v = the
cotangent, ones by default) of the run's single output, by central differences of
f(x) = sum(v * output(x)). `ngrad_jvp` differences the output itself along a direction t
(J t), and `ngrad_hvp` differences the engine's own VJP along t (the Hessian-vector product
of f): the counterparts of `run_jvp` and `run_hvp`.

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

from .nodes import GraphError, NodeInput, shape_of
from .run import forward, outputs_of, run


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


def _along(feed, tangents):
    """(x + h t and x - h t for every fed input x, and h), with t = 0 for an input given no tangent.

    h is `ngrad_directional`'s step, eps^(1/3) max(1, |x|), divided by the largest |t|: the
    inputs move by that step whatever the size of t."""
    base = {node: _float_array(value) for node, value in feed.items()}
    directions = {}
    for node, tangent in tangents.items():
        if node not in base:
            raise GraphError(f"tangents key {node!r} is not a fed input")
        directions[node] = t = np.asarray(tangent, dtype=np.float64)
        if t.shape != base[node].shape:
            raise GraphError(f"input {node.name!r}: tangent of shape {t.shape}, expected {base[node].shape}")
    scale = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in base.values()])
    size = max([0.0] + [float(np.max(np.abs(t), initial=0.0)) for t in directions.values()]) or 1.0
    dtype = np.result_type(*base.values()) if base else np.float64
    h = float(np.cbrt(np.finfo(dtype).eps)) * scale / size
    plus, minus = dict(base), dict(base)
    for node, t in directions.items():
        x = base[node]
        plus[node], minus[node] = (x + h * t).astype(x.dtype), (x - h * t).astype(x.dtype)
    return plus, minus, h


def ngrad_jvp(feed, tangents, nodes=None) -> np.ndarray:
    """The derivative of the single output along `tangents` ({input node: array}), J t, by one
    central difference: (output(x + h t) - output(x - h t)) / 2h, in float64, of the output's
    shape. 2 evaluations; the step and its error are the module docstring's. Leaves the nodes
    holding the values of `feed`."""
    plus, minus, h = _along(feed, tangents)
    value_plus, _, nodes = _output(plus, nodes, None)
    value_minus, _, nodes = _output(minus, nodes, None)
    forward(feed, nodes)
    return (value_plus - value_minus) / (2 * h)


def ngrad_hvp(feed, tangents, nodes=None, cotangent=None) -> dict:
    """The Hessian-vector product of f(x) = sum(v * output(x)) along `tangents`, by a central
    difference of the engine's own VJP (from `run`, the cotangent v held fixed):
    {input node: (grad f(x + h t) - grad f(x - h t)) / 2h}, each in its input's float dtype.

    A difference of first derivatives has the error model of one of values: truncation
    h^2/6 times the third derivative of grad f, against rounding eps |grad f| / h. The same
    step h = eps^(1/3) (times the inputs' size) balances them, for an error of order
    eps^(2/3) relative. It checks `run_hvp`'s dual numbers, not the backward() rules both
    differentiate (`ngrad` checks those). Costs 2 runs; leaves the nodes as
    `run(feed, nodes, cotangent)` does."""
    plus, minus, h = _along(feed, tangents)
    nodes = run(plus, nodes, cotangent)
    inputs = [node for node in nodes if isinstance(node, NodeInput)]
    gradients_plus = {x: np.asarray(x.gradients[x], dtype=np.float64) for x in inputs}
    run(minus, nodes, cotangent)
    hvps = {}
    for x in inputs:
        change = (gradients_plus[x] - np.asarray(x.gradients[x], dtype=np.float64)) / (2 * h)
        hvps[x] = change.astype(_float_array(x.value).dtype).reshape(shape_of(x.value))
    run(feed, nodes, cotangent)
    return hvps
