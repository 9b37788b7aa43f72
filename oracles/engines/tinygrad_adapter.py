"""tinygrad (its CPU device, which compiles kernels with clang) behind the plug-in protocol: the
graph in tinygrad Tensors, the VJP by `output.gradient(*inputs, gradient=cotangent)`.
`conv1d` and `max_pool1d` are tinygrad's `conv2d` and `max_pool2d`, which take any number of
spatial axes (here one). tinygrad has no log1p, expm1 or atan2, and no norm: `norm` is
`sqrt(sum(a * a))` in tinygrad's own ops. `hvp` is a gradient of the gradient (`Tensor.gradient`
twice); tinygrad has no forward mode, so the adapter has no `jvp`. The layout of the module is
compose.py's."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from tinygrad import Tensor

from .compose import plug_in

name = f"tinygrad-{version('tinygrad')}"


def _broadcast_to(a, shape):
    # numpy's broadcast_to adds leading axes; tinygrad's expand needs them spelled as size 1 first.
    shape = tuple(shape)
    return a.reshape((1,) * (len(shape) - len(a.shape)) + tuple(a.shape)).expand(shape)


def _take(a, indices, axis):
    # numpy's take(a, indices, axis) is a[:, ..., indices] with `indices` at `axis`: tinygrad's indexing.
    return a[(slice(None),) * (axis % a.ndim) + (list(indices),)]


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a.pow(attrs["exponent"]),
    "reduce_sum": lambda a, attrs: a.sum(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "dot": lambda a, b, attrs: a.dot(b),
    "sigmoid": lambda a, attrs: a.sigmoid(),
    "neg": lambda a, attrs: -a,
    "exp": lambda a, attrs: a.exp(),
    "log": lambda a, attrs: a.log(),
    "sqrt": lambda a, attrs: a.sqrt(),
    "tanh": lambda a, attrs: a.tanh(),
    "sin": lambda a, attrs: a.sin(),
    "cos": lambda a, attrs: a.cos(),
    "relu": lambda a, attrs: a.relu(),
    "abs": lambda a, attrs: a.abs(),
    "div": lambda a, b, attrs: a / b,
    "maximum": lambda a, b, attrs: a.maximum(b),
    "pow": lambda a, b, attrs: a.pow(b),
    "reduce_mean": lambda a, attrs: a.mean(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: a.max(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "transpose": lambda a, attrs: a.permute(attrs["axes"] or tuple(reversed(range(len(a.shape))))),
    "reshape": lambda a, attrs: a.reshape(tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: _broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: a.softmax(axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: a.log_softmax(axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: a.logsumexp(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: a.prod(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "cumsum": lambda a, attrs: a.cumsum(axis=attrs["axis"]),
    "cumprod": lambda a, attrs: a.cumprod(axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: a.minimum(b),
    "reduce_min": lambda a, attrs: a.min(axis=attrs["axis"], keepdim=attrs["keepdims"]),
    "clip": lambda a, attrs: a.clip(attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: Tensor(np.asarray(attrs["mask"], dtype=bool)).where(a, b),
    "take": lambda a, attrs: _take(a, attrs["indices"], attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: args[0].cat(*args[1:-1], dim=args[-1]["axis"]),
    "stack": lambda *args: args[0].stack(*args[1:-1], dim=args[-1]["axis"]),
    "softplus": lambda a, attrs: a.softplus(),
    "log_sigmoid": lambda a, attrs: a.logsigmoid(),
    "logaddexp": lambda a, b, attrs: a.logaddexp(b),
    "erf": lambda a, attrs: a.erf(),
    "var": lambda a, attrs: a.var(axis=attrs["axis"], keepdim=attrs["keepdims"], correction=attrs["ddof"]),
    "std": lambda a, attrs: a.std(axis=attrs["axis"], keepdim=attrs["keepdims"], correction=attrs["ddof"]),
    "norm": lambda a, attrs: (a * a).sum(axis=attrs["axis"], keepdim=attrs["keepdims"]).sqrt(),
    "matmul": lambda a, b, attrs: a.matmul(b),
    "einsum": lambda *args: Tensor.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": lambda x, w, attrs: x.conv2d(
        w, groups=attrs["groups"], stride=attrs["stride"], dilation=attrs["dilation"], padding=attrs["padding"]
    ),
    "max_pool1d": lambda a, attrs: a.max_pool2d(
        kernel_size=(attrs["kernel"],), stride=attrs["stride"] or attrs["kernel"]
    ),
}
ops = set(OPS)
_MISSING = "tinygrad 0.14.0 has no {}: written out (as {}) it would audit the adapter, not tinygrad"
unsupported: dict[str, str] = {
    "log1p": _MISSING.format("log1p", "log(1 + a), which loses every digit at a ~ 1e-9"),
    "expm1": _MISSING.format("expm1", "exp(a) - 1, which loses every digit at a ~ 1e-9"),
    "atan2": _MISSING.format("atan2", "atan(a / b) put in its quadrant by hand"),
}


def _leaf(value) -> Tensor:
    """An input as a tensor of its own buffer. tinygrad makes a 0-d array a constant, and equal constants
    are one node: two scalar inputs of the same value would share their gradient. A 0-d input is
    therefore a one-element buffer, reshaped."""
    array = np.array(value, order="C")
    return Tensor(array.reshape(1)).reshape(()) if array.ndim == 0 else Tensor(array)


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `output.gradient(*inputs, gradient=cotangent)`, asked for every input.
    tinygrad 0.14.0's `Tensor.gradient` finds itself the inputs the output reaches (its walk from the
    output goes only down the paths to the targets): one it does not reach gets zeros (`const_like(0)`),
    and an input that is the output itself gets the cotangent (the gradient it starts from)."""
    inputs = [_leaf(a) for a in arrays]
    output = function(*inputs)
    gradients = output.gradient(*inputs, gradient=Tensor(np.array(cotangent, order="C")))
    return output.numpy(), [g.numpy() for g in gradients]


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, as a gradient of a
    gradient (tinygrad has no forward mode): the VJPs g_i = `output.gradient(*inputs, gradient=cotangent)`
    are tinygrad Tensors built of differentiable ops, so `sum_i (g_i * t_i).sum()` is differentiated once
    more with `Tensor.gradient`, which gives H t (the Hessian of s is symmetric). An input the output does
    not reach has g_i = 0, and one that is the output has g_i = cotangent, reaching no input: H t is 0."""
    inputs = [_leaf(a) for a in arrays]
    output = function(*inputs)
    first = output.gradient(*inputs, gradient=Tensor(np.array(cotangent, order="C")))
    along = sum((g * _leaf(t)).sum() for g, t in zip(first, tangents))
    return [h.numpy() for h in along.gradient(*inputs)]


# No `jvp` at all (not None): graph-format.md's optional modes are the functions a plug-in defines.
evaluate, _, hvp = plug_in(OPS, vjp_of, None, hvp_of)
