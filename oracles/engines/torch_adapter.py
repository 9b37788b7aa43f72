"""PyTorch (CPU) as an engine under test, behind the plug-in protocol: the graph in eager PyTorch
on tensors that require grad, the VJP by `torch.autograd.grad(output, inputs, grad_outputs=
cotangent, allow_unused=True)` (an input the output does not reach gets zeros). Every op is
PyTorch's own, as its users write it: `torch.cumprod`, `torch.prod`, `torch.pow`, `F.softplus`
(with its default threshold of 20: above it, softplus is the identity), `F.logsigmoid`,
`torch.logaddexp`, `torch.special.erf`, `torch.var` / `torch.std` with `correction=ddof`,
`torch.linalg.vector_norm`, `torch.amax` / `torch.amin` (ties split evenly), `torch.einsum`,
`F.conv1d`, `F.max_pool1d`. `torch.logsumexp` takes no `dim=None`: every axis is spelled out
(`dim=()` is no substitute: with keepdim=False its forward raises on any operand that is not a
scalar); `torch.prod` takes one dim or none, so the product of every element is reshaped for
keepdims. `take` is `torch.index_select`, which takes indices in [0, n) only: negative ones are
spelled from the start. PyTorch slicing takes no negative step: such an axis is flipped first.

This adapter is written fresh against PyTorch's public API, not from the harness's PyTorch
reference (backends/torch_backend.py), which differentiates cumprod, prod and pow in special forms
because PyTorch's own double backward is wrong there: here they are the natural ops, so that an
audit of PyTorch as an engine finds those bugs. When PyTorch is the engine, the torch
reference is left out (check/core.py): it would judge PyTorch by itself. `--engine torch` is judged
by JAX and finite differences.

`jvp` is PyTorch's forward mode, `torch.func.jvp` (each op's own forward-mode formula); `hvp` is
double backward: `torch.autograd.grad` of <VJP, t>, the VJP made with `create_graph=True`.
No op is unsupported."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np
import torch
import torch.nn.functional as F

from .compose import plug_in

name = f"torch-{version('torch')}"


def _dims(a, axis):
    # torch.logsumexp takes no dim=None: every axis is spelled out.
    return tuple(range(a.dim())) if axis is None else axis


def _prod(a, attrs):
    # torch.prod takes one dim, or none (every element, to a scalar): keepdims then by reshape.
    if attrs["axis"] is not None:
        return torch.prod(a, dim=attrs["axis"], keepdim=attrs["keepdims"])
    total = torch.prod(a)
    return total.reshape((1,) * a.dim()) if attrs["keepdims"] else total


def _take(a, indices, axis):
    length = a.shape[axis]
    return torch.index_select(a, axis, torch.tensor([index % length for index in indices], dtype=torch.int64))


def _slice(a, attrs):
    # PyTorch slicing takes no negative step: a step < 0 is a flip, then the positive-step slice of it.
    index = []
    flips = []
    for axis, (start, stop, step) in enumerate(zip(attrs["starts"], attrs["stops"], attrs["steps"])):
        length = a.shape[axis]
        start, stop, step = slice(start, stop, step).indices(length)
        if step > 0:
            index.append(slice(start, stop, step))
        else:
            # Elements start, start + step, ... (> stop): in the flipped axis (i -> length - 1 - i)
            # they are length - 1 - start, ... with step -step.
            flips.append(axis)
            index.append(slice(length - 1 - start, length - 1 - stop, -step))
    return (torch.flip(a, flips) if flips else a)[tuple(index)]


def _transpose(a, axes):
    return torch.permute(a, tuple(reversed(range(a.dim()))) if axes is None else tuple(axes))


def _conv1d(x, w, attrs):
    return F.conv1d(x, w, stride=attrs["stride"], padding=attrs["padding"], dilation=attrs["dilation"],
                    groups=attrs["groups"])  # fmt: skip


def _max_pool1d(a, attrs):
    return F.max_pool1d(a, attrs["kernel"], stride=attrs["stride"] or attrs["kernel"])


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: torch.add(a, b),
    "subtract": lambda a, b, attrs: torch.sub(a, b),
    "mult": lambda a, b, attrs: torch.mul(a, b),
    "power": lambda a, attrs: torch.pow(a, attrs["exponent"]),
    "reduce_sum": lambda a, attrs: torch.sum(a, dim=attrs["axis"], keepdim=attrs["keepdims"]),
    "dot": lambda a, b, attrs: torch.matmul(a, b),
    "sigmoid": lambda a, attrs: torch.sigmoid(a),
    "neg": lambda a, attrs: torch.neg(a),
    "exp": lambda a, attrs: torch.exp(a),
    "log": lambda a, attrs: torch.log(a),
    "sqrt": lambda a, attrs: torch.sqrt(a),
    "tanh": lambda a, attrs: torch.tanh(a),
    "sin": lambda a, attrs: torch.sin(a),
    "cos": lambda a, attrs: torch.cos(a),
    "relu": lambda a, attrs: torch.relu(a),
    "abs": lambda a, attrs: torch.abs(a),
    "div": lambda a, b, attrs: torch.div(a, b),
    "maximum": lambda a, b, attrs: torch.maximum(a, b),
    "pow": lambda a, b, attrs: torch.pow(a, b),
    "reduce_mean": lambda a, attrs: torch.mean(a, dim=attrs["axis"], keepdim=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: torch.amax(a, dim=attrs["axis"], keepdim=attrs["keepdims"]),
    "transpose": lambda a, attrs: _transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: torch.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: torch.broadcast_to(a, tuple(attrs["shape"])),
    "softmax": lambda a, attrs: torch.softmax(a, dim=attrs["axis"]),
    "log_softmax": lambda a, attrs: F.log_softmax(a, dim=attrs["axis"]),
    "logsumexp": lambda a, attrs: torch.logsumexp(a, dim=_dims(a, attrs["axis"]), keepdim=attrs["keepdims"]),
    "reduce_prod": _prod,
    "cumsum": lambda a, attrs: torch.cumsum(a, dim=attrs["axis"]),
    "cumprod": lambda a, attrs: torch.cumprod(a, dim=attrs["axis"]),
    "minimum": lambda a, b, attrs: torch.minimum(a, b),
    "reduce_min": lambda a, attrs: torch.amin(a, dim=attrs["axis"], keepdim=attrs["keepdims"]),
    "clip": lambda a, attrs: torch.clamp(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: torch.where(torch.tensor(np.asarray(attrs["mask"], dtype=bool)), a, b),
    "take": lambda a, attrs: _take(a, attrs["indices"], attrs["axis"]),
    "slice": _slice,
    "concatenate": lambda *args: torch.cat(args[:-1], dim=args[-1]["axis"]),
    "stack": lambda *args: torch.stack(args[:-1], dim=args[-1]["axis"]),
    "softplus": lambda a, attrs: F.softplus(a),
    "log_sigmoid": lambda a, attrs: F.logsigmoid(a),
    "log1p": lambda a, attrs: torch.log1p(a),
    "expm1": lambda a, attrs: torch.expm1(a),
    "logaddexp": lambda a, b, attrs: torch.logaddexp(a, b),
    "erf": lambda a, attrs: torch.special.erf(a),
    "atan2": lambda a, b, attrs: torch.atan2(a, b),
    "var": lambda a, attrs: torch.var(a, dim=attrs["axis"], correction=attrs["ddof"], keepdim=attrs["keepdims"]),
    "std": lambda a, attrs: torch.std(a, dim=attrs["axis"], correction=attrs["ddof"], keepdim=attrs["keepdims"]),
    "norm": lambda a, attrs: torch.linalg.vector_norm(a, ord=2, dim=attrs["axis"], keepdim=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: torch.matmul(a, b),
    "einsum": lambda *args: torch.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {}


def _numpy(tensor, dtype):
    # force=True: a derivative that is zero by construction (abs's second derivative, say) comes back
    # from torch.autograd.grad as a ZeroTensor, which a plain .numpy() refuses (pytorch#89034).
    return tensor.detach().numpy(force=True).astype(dtype, copy=False)


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `torch.autograd.grad(output, inputs, grad_outputs=cotangent,
    allow_unused=True)`: None (an input the output does not reach) is zeros."""
    dtype = np.asarray(cotangent).dtype
    inputs = [torch.tensor(np.asarray(a), requires_grad=True) for a in arrays]
    output = function(*inputs)
    gradients = torch.autograd.grad(output, inputs, grad_outputs=torch.tensor(np.asarray(cotangent)),
                                    allow_unused=True)  # fmt: skip
    return _numpy(output, dtype), [
        np.zeros(np.shape(a), dtype) if g is None else _numpy(g, dtype) for a, g in zip(arrays, gradients)
    ]


def jvp_of(function, arrays, tangents):
    """The value and its derivative along `tangents`, by PyTorch's forward mode, `torch.func.jvp`."""
    dtype = np.asarray(arrays[0]).dtype if arrays else np.float64
    value, derivative = torch.func.jvp(
        function,
        tuple(torch.tensor(np.asarray(a)) for a in arrays),
        tuple(torch.tensor(np.asarray(t)) for t in tangents),
    )
    return _numpy(value, dtype), _numpy(derivative, dtype)


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, by double
    backward: the VJP by `torch.autograd.grad(..., create_graph=True)`, then `torch.autograd.grad`
    of <VJP, t>. A VJP that does not depend on the inputs (s linear) has H t = 0."""
    dtype = np.asarray(cotangent).dtype
    inputs = [torch.tensor(np.asarray(a), requires_grad=True) for a in arrays]
    output = function(*inputs)
    gradients = torch.autograd.grad(output, inputs, grad_outputs=torch.tensor(np.asarray(cotangent)),
                                    allow_unused=True, create_graph=True)  # fmt: skip
    terms = [
        torch.sum(g * torch.tensor(np.asarray(t)))
        for g, t in zip(gradients, tangents)
        if g is not None and g.requires_grad
    ]
    if not terms:
        return [np.zeros(np.shape(a), dtype) for a in arrays]
    products = torch.autograd.grad(torch.stack(terms).sum(), inputs, allow_unused=True)
    return [np.zeros(np.shape(a), dtype) if p is None else _numpy(p, dtype) for a, p in zip(arrays, products)]


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
