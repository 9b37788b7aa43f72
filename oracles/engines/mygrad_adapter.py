"""mygrad behind the plug-in protocol: the graph in mygrad tensors, the VJP by
`output.backward(cotangent)` and each input's `.grad`. mygrad has no `take` function: `take` is
mygrad's own (advanced) indexing along the axis, and `slice` its basic indexing. `conv1d` is
mygrad's `conv_nd`, once per group; `max_pool1d` its `max_pool`. mygrad has no erf, and neither
forward mode nor a second order: the adapter has no `jvp` nor `hvp`. The layout of the module is
compose.py's."""

from collections.abc import Callable
from importlib.metadata import version

import mygrad as mg
import numpy as np
from mygrad.nnet.activations import logsoftmax, relu, sigmoid, softmax
from mygrad.nnet.layers import conv_nd, max_pool

from .compose import plug_in

name = f"mygrad-{version('mygrad')}"


def _logsumexp(a, axis, keepdims):
    # mygrad has no logsumexp: log of a sum of exponentials shifted by the maximum, all in mygrad.
    top = mg.max(a, axis=axis, keepdims=True)
    total = mg.log(mg.sum(mg.exp(a - top), axis=axis, keepdims=True)) + top
    if keepdims:
        return total
    return mg.reshape(total, ()) if axis is None else mg.squeeze(total, axis=axis)


def _take(a, indices, axis):
    # numpy's take(a, indices, axis) is a[:, ..., indices] with `indices` at `axis`: mygrad's indexing.
    return a[(slice(None),) * (axis % a.ndim) + (np.asarray(indices, dtype=np.int64),)]


def _clip(a, lo, hi):
    # The bounds in the operand's dtype: mygrad makes a Python float a float64 array, and float64
    # wins over float32 (mg.clip(float32, -0.5, 0.75) is float64, numpy's clip float32).
    return mg.clip(a, np.asarray(lo, dtype=a.dtype), np.asarray(hi, dtype=a.dtype))


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _zero(a):
    # 0 in the operand's dtype: a Python 0.0 would be a float64 array to mygrad (see _clip).
    return np.zeros((), dtype=a.dtype)


def _conv1d(x, w, attrs):
    # mygrad's conv_nd takes only windows that tile the (padded) input exactly, and has no groups:
    # the input is zero-padded here (mygrad's concatenate) and cut to the part the windows cover,
    # and each group is a conv_nd of its own, joined along the channels.
    stride, pad, dilation, groups = attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"]
    if pad:
        zeros = np.zeros((*x.shape[:-1], pad), dtype=x.dtype)
        x = mg.concatenate([zeros, x, zeros], axis=-1)
    span = dilation * (w.shape[-1] - 1) + 1
    x = x[..., : (x.shape[-1] - span) // stride * stride + span]
    outs, ins = w.shape[0] // groups, x.shape[1] // groups
    parts = [
        conv_nd(x[:, g * ins : (g + 1) * ins], w[g * outs : (g + 1) * outs], stride=stride, dilation=dilation)
        for g in range(groups)
    ]
    return mg.concatenate(parts, axis=1) if groups > 1 else parts[0]


def _max_pool1d(a, attrs):
    kernel = attrs["kernel"]
    stride = attrs["stride"] or kernel
    # mygrad's max_pool takes only windows that tile the input exactly: cut to the part they cover.
    return max_pool(a[..., : (a.shape[-1] - kernel) // stride * stride + kernel], (kernel,), stride)


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: mg.add(a, b),
    "subtract": lambda a, b, attrs: mg.subtract(a, b),
    "mult": lambda a, b, attrs: mg.multiply(a, b),
    "power": lambda a, attrs: mg.power(a, np.asarray(attrs["exponent"], dtype=a.dtype)),  # dtype: see _clip
    "reduce_sum": lambda a, attrs: mg.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: mg.matmul(a, b),
    "sigmoid": lambda a, attrs: sigmoid(a),
    "neg": lambda a, attrs: mg.negative(a),
    "exp": lambda a, attrs: mg.exp(a),
    "log": lambda a, attrs: mg.log(a),
    "sqrt": lambda a, attrs: mg.sqrt(a),
    "tanh": lambda a, attrs: mg.tanh(a),
    "sin": lambda a, attrs: mg.sin(a),
    "cos": lambda a, attrs: mg.cos(a),
    "relu": lambda a, attrs: relu(a),
    "abs": lambda a, attrs: mg.absolute(a),
    "div": lambda a, b, attrs: mg.divide(a, b),
    "maximum": lambda a, b, attrs: mg.maximum(a, b),
    "pow": lambda a, b, attrs: mg.power(a, b),
    "reduce_mean": lambda a, attrs: mg.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: mg.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: mg.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: mg.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: mg.broadcast_to(a, tuple(attrs["shape"])),
    "softmax": lambda a, attrs: softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: logsoftmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: _logsumexp(a, attrs["axis"], attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: mg.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: mg.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: mg.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: mg.minimum(a, b),
    "reduce_min": lambda a, attrs: mg.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: _clip(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: mg.where(np.asarray(attrs["mask"], dtype=bool), a, b),
    "take": lambda a, attrs: _take(a, attrs["indices"], attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: mg.concatenate(args[:-1], axis=args[-1]["axis"]),
    "stack": lambda *args: mg.stack(args[:-1], axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: mg.logaddexp(_zero(a), a),
    "log_sigmoid": lambda a, attrs: mg.negative(mg.logaddexp(_zero(a), mg.negative(a))),
    "log1p": lambda a, attrs: mg.log1p(a),
    "expm1": lambda a, attrs: mg.expm1(a),
    "logaddexp": lambda a, b, attrs: mg.logaddexp(a, b),
    "atan2": lambda a, b, attrs: mg.arctan2(a, b),
    "var": lambda a, attrs: mg.var(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "std": lambda a, attrs: mg.std(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "norm": lambda a, attrs: mg.linalg.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: mg.matmul(a, b),
    "einsum": lambda *args: mg.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {"erf": "mygrad 2.5.0 has no erf (nor any special function)"}


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `output.backward(cotangent)`, read off each input's `.grad`: None where
    the output does not depend on the input (zeros then). An output that is no mygrad Tensor is made one,
    so that `backward` runs all the same."""
    inputs = [mg.tensor(a, dtype=a.dtype) for a in arrays]
    output = function(*inputs)
    if not isinstance(output, mg.Tensor):
        output = mg.tensor(output)
    output.backward(cotangent)
    return output.data, [t.grad if t.grad is not None else np.zeros_like(a) for t, a in zip(inputs, arrays)]


# No `jvp` nor `hvp` at all (not None): graph-format.md's optional modes are the functions a plug-in defines.
evaluate, _, _ = plug_in(OPS, vjp_of)
