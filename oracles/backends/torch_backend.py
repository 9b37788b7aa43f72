"""PyTorch as a reference: eager forward, then `torch.autograd.grad` with `grad_outputs`; forward
mode by `torch.func.jvp`, Hessian-vector products by double backward."""

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# One thread: the audit runs one worker per core, and tiny tensors gain nothing from more.
torch.set_num_threads(1)

name = "torch"
DTYPES = {"float64": torch.float64, "float32": torch.float32}

# op name -> (operands, attrs) -> torch value. One line per op of the table.
OPS: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "reduce_sum": lambda a, attrs: _reduce(torch.sum, a, attrs["axis"], attrs["keepdims"]),
    "dot": lambda a, b, attrs: a @ b,
    "sigmoid": lambda a, attrs: torch.sigmoid(a),
    "neg": lambda a, attrs: -a,
    "exp": lambda a, attrs: torch.exp(a),
    "log": lambda a, attrs: torch.log(a),
    "sqrt": lambda a, attrs: torch.sqrt(a),
    "tanh": lambda a, attrs: torch.tanh(a),
    "sin": lambda a, attrs: torch.sin(a),
    "cos": lambda a, attrs: torch.cos(a),
    "relu": lambda a, attrs: torch.relu(a),
    "abs": lambda a, attrs: torch.abs(a),
    "div": lambda a, b, attrs: a / b,
    "maximum": lambda a, b, attrs: torch.maximum(a, b),
    "pow": lambda a, b, attrs: torch.pow(a, b),
    "reduce_mean": lambda a, attrs: _reduce(torch.mean, a, attrs["axis"], attrs["keepdims"]),
    "reduce_max": lambda a, attrs: _reduce(torch.amax, a, attrs["axis"], attrs["keepdims"]),
    "transpose": lambda a, attrs: torch.permute(
        a, tuple(reversed(range(a.dim())) if attrs["axes"] is None else attrs["axes"])
    ),
    "reshape": lambda a, attrs: a.reshape(attrs["shape"]),
    "broadcast_to": lambda a, attrs: torch.broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: torch.softmax(a, dim=attrs["axis"]),
    "log_softmax": lambda a, attrs: torch.log_softmax(a, dim=attrs["axis"]),
    "logsumexp": lambda a, attrs: _reduce(torch.logsumexp, a, attrs["axis"], attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: _reduce(torch.prod, a, attrs["axis"], attrs["keepdims"]),
    "cumsum": lambda a, attrs: torch.cumsum(a, dim=attrs["axis"]),
    "cumprod": lambda a, attrs: torch.cumprod(a, dim=attrs["axis"]),
    "minimum": lambda a, b, attrs: torch.minimum(a, b),
    "reduce_min": lambda a, attrs: _reduce(torch.amin, a, attrs["axis"], attrs["keepdims"]),
    "clip": lambda a, attrs: torch.clamp(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: torch.where(torch.tensor(np.asarray(attrs["mask"], dtype=bool)), a, b),
    "take": lambda a, attrs: torch.index_select(
        a, attrs["axis"], torch.tensor(np.asarray(attrs["indices"]) % a.shape[attrs["axis"]])
    ),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *operands: torch.cat(operands[:-1], dim=operands[-1]["axis"]),
    "stack": lambda *operands: torch.stack(operands[:-1], dim=operands[-1]["axis"]),
    # Not F.softplus: above its threshold (20) it answers a, and a gradient of exactly 1 that is off
    # by exp(-a) (2e-9 at 20), twice float64's rtol of a gradient near 1. logaddexp(a, 0) is exact.
    "softplus": lambda a, attrs: torch.logaddexp(a, torch.zeros_like(a)),
    "log_sigmoid": lambda a, attrs: F.logsigmoid(a),
    "log1p": lambda a, attrs: torch.log1p(a),
    "expm1": lambda a, attrs: torch.expm1(a),
    "logaddexp": lambda a, b, attrs: torch.logaddexp(a, b),
    "erf": lambda a, attrs: torch.erf(a),
    "atan2": lambda a, b, attrs: torch.atan2(a, b),
    "var": lambda a, attrs: _reduce(_statistic(torch.var, attrs), a, attrs["axis"], attrs["keepdims"]),
    "std": lambda a, attrs: _reduce(_statistic(torch.std, attrs), a, attrs["axis"], attrs["keepdims"]),
    "norm": lambda a, attrs: _reduce(torch.linalg.vector_norm, a, attrs["axis"], attrs["keepdims"]),
    "matmul": lambda a, b, attrs: torch.matmul(a, b),
    "einsum": lambda *operands: torch.einsum(operands[-1]["subscripts"], *operands[:-1]),
    "conv1d": lambda x, w, attrs: F.conv1d(
        x, w, stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"], groups=attrs["groups"]
    ),
    "max_pool1d": lambda a, attrs: F.max_pool1d(a, attrs["kernel"], attrs["stride"]),  # stride None: the kernel
}
ops = OPS.keys()  # a live view: an op added to the map is supported at once
unsupported: dict[str, str] = {}  # op -> why not; with `ops`, this covers the op table


def _logaddexp_by_logsumexp(a, b):
    """logaddexp(a, b) as torch.logsumexp of the stacked operands: the same function, whose
    backward grad * exp(a - out) has a derivative that does not overflow."""
    return torch.logsumexp(torch.stack(torch.broadcast_tensors(a, b)), dim=0)


def _running_product(a, axis):
    """cumprod as a chain of multiplications, whose derivatives are products again: exact."""
    factors = torch.unbind(a, dim=axis)
    products = [factors[0]]
    for factor in factors[1:]:
        products.append(products[-1] * factor)
    return torch.stack(products, dim=axis)


def _product(a, axis, keepdims):
    """prod over one axis, or all of them (axis None), as the last of a running product."""
    if axis is None:
        total = _running_product(a.reshape(-1), 0)[-1] if a.dim() else a
        return total.reshape([1] * a.dim()) if keepdims else total
    total = _running_product(a, axis).select(axis, -1)
    return total.unsqueeze(axis) if keepdims else total


# What hvp differentiates twice, where it differs from OPS (first order keeps OPS):
# - torch.logaddexp's backward, grad / (1 + exp(b - a)), differentiates to inf / inf = NaN once
#   |a - b| passes ~709, and the generator takes softplus and logaddexp to +-800;
# - torch.cumprod's and torch.prod's backwards divide by the operand where it has no zero, and
#   the derivative of that quotient cancels terms of size 1 / a^2: with the generator's tiny
#   operands (log1p and expm1 at 1e-9) the HVP loses 8 digits (cumprod in 10 of 5,000 float64
#   graphs, prod in 1 of 2,000 float32 ones, JAX and finite differences agreeing with each other);
# - torch.pow's backward for the base masks the exponent 0 with a where(), so its derivative in
#   the exponent is 0 there instead of 1 / a (an exponent made by a cumprod with a zero: 2 of
#   5,000 graphs). pow's base is positive (its domain), where a ** b = exp(b log a).
SECOND_ORDER: dict[str, Callable[..., Any]] = {
    "pow": lambda a, b, attrs: torch.exp(b * torch.log(a)),
    "softplus": lambda a, attrs: _logaddexp_by_logsumexp(a, torch.zeros_like(a)),
    "logaddexp": lambda a, b, attrs: _logaddexp_by_logsumexp(a, b),
    "cumprod": lambda a, attrs: _running_product(a, attrs["axis"]),
    "reduce_prod": lambda a, attrs: _product(a, attrs["axis"], attrs["keepdims"]),
}


def _slice(a, attrs):
    """numpy's basic slicing; PyTorch has no negative steps, so such an axis is sliced upwards, then flipped."""
    for axis, bounds in enumerate(zip(attrs["starts"], attrs["stops"], attrs["steps"])):
        kept = range(*slice(*bounds).indices(a.shape[axis]))
        upwards = [slice(None)] * a.dim()
        upwards[axis] = slice(min(kept), max(kept) + 1, abs(kept.step))
        a = a[tuple(upwards)]
        if kept.step < 0:
            a = torch.flip(a, (axis,))
    return a


def _statistic(reducer, attrs):
    """torch.var or torch.std with the op's ddof, called as _reduce calls a reducer."""
    return lambda a, dim, keepdim=False: reducer(a, dim=dim, correction=attrs["ddof"], keepdim=keepdim)


def _reduce(reducer, a, axis, keepdims):
    """`reducer(a, dim, keepdim)` over one axis, or over all of them when `axis` is None."""
    if axis is None:  # all elements; keepdims keeps every axis, at size 1
        total = reducer(a.reshape(-1), dim=0) if a.dim() else reducer(a.reshape(1), dim=0)
        return total.reshape([1] * a.dim()) if keepdims else total
    return reducer(a, dim=axis, keepdim=keepdims)


def _composed(graph, ops=OPS) -> tuple[list[str], Callable[..., Any]]:
    """The graph's input names, and the graph as one function of their tensors, in that order:
    what evaluate, jvp and hvp all differentiate, with `ops` mapping op names to torch."""
    names = [entry["name"] for entry in graph["inputs"]]

    def function(*tensors):
        computed = dict(zip(names, tensors))
        for node in graph["nodes"]:
            computed[node["name"]] = ops[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
        return computed[graph["output"]]

    return names, function


def _tensors(graph, names, arrays, requires_grad=False) -> list[torch.Tensor]:
    """One tensor per name, in the case's dtype."""
    dtype = DTYPES[graph["dtype"]]
    return [torch.tensor(np.asarray(arrays[n]), dtype=dtype, requires_grad=requires_grad) for n in names]


def _arrays(graph, names, values, gradients) -> dict[str, np.ndarray]:
    """numpy arrays by input name; None (an input that the derivative does not reach) -> zeros."""
    # clone(): a double backward (of abs through stack) can give a zero tensor with a storage offset
    # but no storage, whose .numpy() reads address 0x10 and segfaults (PyTorch 2.13).
    return {
        n: np.zeros(np.shape(values[n]), dtype=graph["dtype"]) if g is None else g.detach().clone().numpy(force=True)
        for n, g in zip(names, gradients)
    }


def evaluate(graph, values, cotangent):
    names, function = _composed(graph)
    leaves = _tensors(graph, names, values, requires_grad=True)
    output = function(*leaves)
    grad_output = torch.tensor(np.asarray(cotangent), dtype=DTYPES[graph["dtype"]])
    # allow_unused: an input that does not reach the output has gradient None -> zeros.
    gradients = torch.autograd.grad(output, leaves, grad_outputs=grad_output, allow_unused=True)
    return output.detach().numpy(), _arrays(graph, names, values, gradients)


def jvp(graph, values, tangents):
    """The output's value and J t by forward-mode AD (torch.func.jvp): every op of the table has
    a forward-mode formula in PyTorch 2.13 (tests/test_reference_modes.py runs each one)."""
    names, function = _composed(graph)
    primals, directions = _tensors(graph, names, values), _tensors(graph, names, tangents)
    with warnings.catch_warnings():
        # The first forward-mode call in a process loads PyTorch's JVP decompositions through
        # torch.jit.script, which warns, 18 times, that it is deprecated: PyTorch's own business.
        warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated", DeprecationWarning)
        value, derivative = torch.func.jvp(function, tuple(primals), tuple(directions))
    return value.numpy(force=True), derivative.numpy(force=True)


def hvp(graph, values, cotangent, tangents):
    """Reverse over reverse: g = the VJP, kept differentiable (create_graph), then the gradient of
    sum_i <g_i, t_i>. That is t^T H for the Hessian H of s = <cotangent, output>, which is
    symmetric, so it is the forward-over-reverse H t of the protocol. SECOND_ORDER replaces
    what PyTorch cannot differentiate twice everywhere."""
    names, function = _composed(graph, {**OPS, **SECOND_ORDER})
    leaves = _tensors(graph, names, values, requires_grad=True)
    output = function(*leaves)
    grad_output = torch.tensor(np.asarray(cotangent), dtype=DTYPES[graph["dtype"]])
    gradients = torch.autograd.grad(output, leaves, grad_outputs=grad_output, create_graph=True, allow_unused=True)
    directions = _tensors(graph, names, tangents)
    # A VJP that is None, or that does not depend on the inputs (no grad_fn: a linear graph),
    # has no derivative: it adds nothing, and with no term at all every product is zeros.
    terms = [torch.sum(g * t) for g, t in zip(gradients, directions) if g is not None and g.requires_grad]
    if not terms:
        return _arrays(graph, names, values, [None] * len(names))
    products = torch.autograd.grad(torch.stack(terms).sum(), leaves, allow_unused=True)
    return _arrays(graph, names, values, products)
