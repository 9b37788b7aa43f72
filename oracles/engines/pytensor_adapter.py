"""PyTensor behind the plug-in protocol. PyTensor (the symbolic engine under PyMC, Theano's heir)
builds a symbolic graph of `pytensor.tensor` variables, differentiates it symbolically and compiles
the result (`pytensor.function`, after its graph rewrites). Here the graph is traced once on symbolic
inputs of the case's static shapes and dtype; its VJP is `pytensor.gradient.pullback` (which is
`grad(cost=None, known_grads={output: cotangent})`: the cotangent is a symbolic input, not a sum of
output * cotangent to differentiate), its JVP `pytensor.gradient.pushforward` (the successor of the
deprecated `Rop`, by default a pullback of the pullback) and its Hessian-vector products
`pytensor.gradient.hessian_vector_product` of sum(output * cotangent) (reverse over reverse). Each is
compiled with the value, the cotangent and the tangents as runtime inputs, never constants.

Delicate ops: `relu` is `pt.maximum(a, 0)` (PyTensor has no relu of its own); `log_sigmoid` is
`-pt.softplus(-a)` (there is no pt.log_sigmoid; PyTensor's own rewrite of log(sigmoid(a)) gives that
graph); `softmax`, `log_softmax` are `pt.special`'s, `logsumexp` and `logaddexp` PyTensor's stabilized
symbolic ops. `norm` is `pt.linalg.norm`, except over all axes of a tensor of rank 3, where PyTensor
documents a batch of matrix norms and the op is the 2-norm of the whole tensor: there it is the norm of
`a.flatten()`. `take` is `pt.take` (negative indices as numpy's). `conv1d` is
`pytensor.tensor.signal.convolve1d` (a true convolution, so the kernel goes in flipped), batched over
(batch, group, out channel, in channel) and summed over the in channels, the input zero-padded by
`pt.pad`, the kernel dilated by `pt.set_subtensor` into zeros, a stride as every stride-th output; its
static output shape, which convolve1d leaves unknown, is given back by `pt.specify_shape` (PyTensor
broadcasts only axes statically of length 1: "Runtime broadcasting not allowed" otherwise).
`max_pool1d` is `pt.max` over the window's taps, strided slices stacked. Python-float attrs (clip's
bounds) become constants of `floatX`, so a graph is traced and compiled with floatX set to its dtype:
a float32 graph computes in float32.

Compilation (`_MODE`): FAST_COMPILE, PyTensor's mode with few rewrites and Python/NumPy op
implementations (the inner graphs of its symbolic ops, logsumexp say, still run C thunks that g++
compiles once per machine into PyTensor's compiledir). Measured on this 2-core machine over the same
random graphs (vjp + jvp + hvp of one graph): FAST_COMPILE 3.8 s a graph with a warm compiledir (16 s
cold); C ("CVM", g++) 53 s a graph cold; the default FAST_RUN, whose linker is Numba's JIT in PyTensor 3,
more than 60 s a graph. The symbolic gradients are the same in every mode (each op's own `pullback`);
only the kernels that run them differ. Compiled functions are kept in `_COMPILED`, an LRU of 2,000
keyed on the traced graph's structure (`_key`: each node's op, which PyTensor compares by its
parameters, where its inputs come from, the constants' bytes, the inputs' types, and the derivative
kind), so a graph whose structure recurs (in shrinking, in the harness's repeated evaluations) is
compiled once.

Limitations, of PyTensor 3.0.7 (the newest for Python 3.11) as of 3.3.7 (every op of the table is
expressed, none is declined): prod has
no second derivative ("2nd derivatives of product(a) is not currently supported"), so neither the JVP
(a pullback of a pullback) nor the HVP of a graph with `reduce_prod` can be built: a crash. Real bugs
an audit finds: `pushforward` loses a tangent of `add` and `subtract` (x + y along (1, 2) is 2);
prod's gradient over a single element that is 0 is 0, not 1; cumprod's gradient is NaN at a zero
(it divides by x; pytensor PR 1911 fixes it after 3.3.7); `pt.linalg.norm` with an axis cannot be
differentiated on a matrix (`Real.grad` of a real tensor raises) nor built on a vector (`abs(x) ** None`);
`pt.einsum` with a repeated label ('ii,jki->ijk') loses its static shape, and a numpy broadcast of its
result then raises. At kinks (`--kinks`): max's and min's gradient at a tie gives every tied element the
whole cotangent (reduce_max, reduce_min, and max_pool1d through pt.max), which is no valid convention;
maximum, minimum and relu give a tie to their first operand (1 / 0), abs'(0) = 0, clip'(bound) = 1.
The layout of the module is compose.py's."""

from collections import OrderedDict
from collections.abc import Callable
from importlib.metadata import version

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import hessian_vector_product, pullback, pushforward
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.signal import convolve1d

from .compose import plug_in

name = f"pytensor-{version('pytensor')}"


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _norm(a, attrs):
    # pt.linalg.norm over all axes of a rank-3 tensor is a batch of matrix norms (its documented
    # batching): numpy's norm of every element is that of the flattened tensor.
    if attrs["axis"] is None and a.ndim > 2:
        total = pt.linalg.norm(a.flatten())
        return pt.reshape(total, (1,) * a.ndim) if attrs["keepdims"] else total
    return pt.linalg.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"])


def _dilated(w, dilation):
    # The kernel with dilation - 1 zeros between its taps: (..., K) -> (..., dilation * (K - 1) + 1).
    if dilation == 1:
        return w
    spread = pt.zeros((w.shape[0], w.shape[1], dilation * (w.shape[2] - 1) + 1), dtype=w.dtype)
    return pt.set_subtensor(spread[..., ::dilation], w)


def _conv1d(x, w, attrs):
    pad, groups = attrs["padding"], attrs["groups"]
    x = pt.pad(x, ((0, 0), (0, 0), (pad, pad))) if pad else x
    w = _dilated(w, attrs["dilation"])[..., ::-1]  # convolve1d flips the kernel back: a cross-correlation
    # (N, C_in, W) -> (N, groups, 1, C_in / groups, W);
    # (C_out, C_in / groups, K) -> (1, groups, C_out / groups, C_in / groups, K)
    xs = pt.reshape(x, (x.shape[0], groups, 1, x.shape[1] // groups, x.shape[2]))
    ws = pt.reshape(w, (1, groups, w.shape[0] // groups, w.shape[1], w.shape[2]))
    out = convolve1d(xs, ws, mode="valid").sum(axis=3)  # (N, groups, C_out / groups, W')
    out = pt.reshape(out, (out.shape[0], -1, out.shape[3]))[..., :: attrs["stride"]]
    # convolve1d's static shape has no output length: given back, or a length of 1 would be "runtime
    # broadcasting", which PyTensor refuses (it broadcasts only axes statically of length 1).
    return pt.specify_shape(out, _conv1d_shape(xs.type.shape, ws.type.shape, attrs))


def _conv1d_shape(xs, ws, attrs):
    # The (N, C_out, W_out) of a conv1d from the static shapes of xs and ws (None where unknown).
    n, width, c, k = xs[0], xs[4], (None if None in (ws[1], ws[2]) else ws[1] * ws[2]), ws[4]
    out = None if None in (width, k) else (width - k) // attrs["stride"] + 1
    return (n, c, out)


def _max_pool1d(a, attrs):
    kernel = attrs["kernel"]
    stride = attrs["stride"] or kernel
    # Tap t of every window: a[..., t], a[..., t + stride], ... up to the last window's; stacked, then the max.
    taps = [a[..., t : (t - kernel + 1) or None : stride] for t in range(kernel)]
    return pt.max(pt.stack(taps, axis=-1), axis=-1)


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "reduce_sum": lambda a, attrs: pt.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: pt.dot(a, b),
    "sigmoid": lambda a, attrs: pt.sigmoid(a),
    "neg": lambda a, attrs: -a,
    "exp": lambda a, attrs: pt.exp(a),
    "log": lambda a, attrs: pt.log(a),
    "sqrt": lambda a, attrs: pt.sqrt(a),
    "tanh": lambda a, attrs: pt.tanh(a),
    "sin": lambda a, attrs: pt.sin(a),
    "cos": lambda a, attrs: pt.cos(a),
    "relu": lambda a, attrs: pt.maximum(a, 0),
    "abs": lambda a, attrs: pt.abs(a),
    "div": lambda a, b, attrs: a / b,
    "maximum": lambda a, b, attrs: pt.maximum(a, b),
    "pow": lambda a, b, attrs: a**b,
    "reduce_mean": lambda a, attrs: pt.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: pt.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: pt.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: pt.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: pt.broadcast_to(a, tuple(attrs["shape"])),
    "softmax": lambda a, attrs: pt.special.softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: pt.special.log_softmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: pt.logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: pt.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: pt.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: pt.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: pt.minimum(a, b),
    "reduce_min": lambda a, attrs: pt.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: pt.clip(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: pt.where(np.asarray(attrs["mask"], dtype=bool), a, b),
    "take": lambda a, attrs: pt.take(a, np.asarray(attrs["indices"], dtype=np.int64), axis=attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: pt.concatenate(list(args[:-1]), axis=args[-1]["axis"]),
    "stack": lambda *args: pt.stack(list(args[:-1]), axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: pt.softplus(a),
    "log_sigmoid": lambda a, attrs: -pt.softplus(-a),
    "log1p": lambda a, attrs: pt.log1p(a),
    "expm1": lambda a, attrs: pt.expm1(a),
    "logaddexp": lambda a, b, attrs: pt.logaddexp(a, b),
    "erf": lambda a, attrs: pt.erf(a),
    "atan2": lambda a, b, attrs: pt.arctan2(a, b),
    "var": lambda a, attrs: pt.var(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "std": lambda a, attrs: pt.std(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "norm": _norm,
    "matmul": lambda a, b, attrs: pt.matmul(a, b),
    "einsum": lambda *args: pt.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {}

# How every graph is compiled (see the module's docstring): "FAST_COMPILE" or PyTensor's default "FAST_RUN".
_MODE = "FAST_COMPILE"
# The compiled functions, least recently used first: {structure of the traced graph: function}.
_COMPILED: OrderedDict = OrderedDict()
_CAPACITY = 2000
_COUNTS = {"hits": 0, "misses": 0}


def _reference(variable, seen: dict):
    """How the key names a variable: an input or a node's output by position, a constant by value."""
    if variable in seen:
        return seen[variable]
    if isinstance(variable, Constant):
        data = variable.data
        if isinstance(data, np.ndarray | np.generic):
            return ("constant", variable.type, data.dtype.str, data.shape, data.tobytes())
        return ("constant", variable.type, variable.signature())
    raise ValueError(f"{variable} is neither an input, a node's output nor a constant")


def _key(kind, inputs, outputs) -> tuple:
    """The structure of the traced graph: each node's op (PyTensor's ops compare by their
    parameters) and where its inputs come from, in topological order, with the inputs' types."""
    seen = {variable: ("input", i) for i, variable in enumerate(inputs)}
    nodes = []
    for node in io_toposort(inputs, outputs):
        nodes.append((node.op, tuple(_reference(i, seen) for i in node.inputs)))
        for k, output in enumerate(node.outputs):
            seen[output] = ("node", len(nodes) - 1, k)
    return (kind, tuple(i.type for i in inputs), tuple(nodes), tuple(_reference(o, seen) for o in outputs))


def _compiled(kind, function, arrays, differentiate):
    """The compiled function of `kind` for this graph: traced on symbolic inputs of the arrays' static
    shapes and dtype, looked up by its structure, else differentiated (`differentiate(inputs, output)`
    gives the extra inputs and the outputs) and compiled."""
    inputs = [pt.tensor(dtype=str(a.dtype), shape=a.shape) for a in arrays]
    output = pt.as_tensor_variable(function(*inputs))
    key = _key(kind, inputs, [output])
    if key in _COMPILED:
        _COUNTS["hits"] += 1
        _COMPILED.move_to_end(key)
        return _COMPILED[key]
    _COUNTS["misses"] += 1
    extra, outputs = differentiate(inputs, output)
    compiled = pytensor.function([*inputs, *extra], outputs, mode=_MODE, on_unused_input="ignore")
    _COMPILED[key] = compiled
    if len(_COMPILED) > _CAPACITY:
        _COMPILED.popitem(last=False)
    return compiled


def _dtype(arrays) -> str:
    return str(arrays[0].dtype) if arrays else pytensor.config.floatX


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `pytensor.gradient.pullback(output, inputs, cotangent)` (PyTensor's
    `grad(cost=None, known_grads={output: cotangent})`: the cotangent is a symbolic input, not a sum
    of output * cotangent to differentiate); an input the output does not reach gets zeros
    (`disconnected_inputs="ignore"`)."""

    def differentiate(inputs, output):
        v = pt.tensor(dtype=output.dtype, shape=output.type.shape)
        return [v], [output, *pullback(output, inputs, v, disconnected_inputs="ignore")]

    arrays = [np.asarray(a) for a in arrays]
    with pytensor.config.change_flags(floatX=_dtype(arrays)):
        compiled = _compiled("vjp", function, arrays, differentiate)
        value, *gradients = compiled(*arrays, np.asarray(cotangent, dtype=_dtype(arrays)))
    return value, gradients


def jvp_of(function, arrays, tangents):
    """The value and its derivative along `tangents` by `pytensor.gradient.pushforward` (PyTensor's
    default: the pullback of the pullback, a transposition of the ops' own gradients)."""

    def differentiate(inputs, output):
        along = [pt.tensor(dtype=i.dtype, shape=i.type.shape) for i in inputs]
        return along, [output, pushforward(output, inputs, along, disconnected_outputs="ignore")]

    arrays = [np.asarray(a) for a in arrays]
    with pytensor.config.change_flags(floatX=_dtype(arrays)):
        compiled = _compiled("jvp", function, arrays, differentiate)
        value, derivative = compiled(*arrays, *(np.asarray(t, dtype=_dtype(arrays)) for t in tangents))
    return value, derivative


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, by
    `pytensor.gradient.hessian_vector_product(s, inputs, tangents)`: reverse over reverse, the gradient
    of sum(grad(s) * tangents). An input that s, or its gradient, does not reach gets zeros."""

    def differentiate(inputs, output):
        v = pt.tensor(dtype=output.dtype, shape=output.type.shape)
        along = [pt.tensor(dtype=i.dtype, shape=i.type.shape) for i in inputs]
        s = pt.sum(output * v)
        return [v, *along], hessian_vector_product(s, inputs, along, disconnected_inputs="ignore")

    arrays = [np.asarray(a) for a in arrays]
    with pytensor.config.change_flags(floatX=_dtype(arrays)):
        compiled = _compiled("hvp", function, arrays, differentiate)
        dtype = _dtype(arrays)
        return compiled(*arrays, np.asarray(cotangent, dtype=dtype), *(np.asarray(t, dtype=dtype) for t in tangents))


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
