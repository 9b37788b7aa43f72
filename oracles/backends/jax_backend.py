"""JAX as a reference: the whole graph as one function, differentiated by `jax.vjp` (and by
`jax.jvp` for forward mode, and over its VJP for Hessian-vector products).

float64 is enabled once, here at import, so that a float64 graph is computed in float64.

Where the time goes: eager JAX runs every primitive (forward, JVP and transpose) as a kernel
compiled once per new combination of shapes, and random graphs keep meeting new ones. Plain
JAX traces and lowers each kernel to MLIR again in every new process (about 9 ms, a third of
it making a fresh MLIR context) before it can look in its persistent cache. The kernel store
of jax_kernels.py keys each eager kernel before lowering and keeps the compiled executables,
and of the jitted functions JAX runs inside a VJP (softmax, jnp's reductions), so a warm
process loads them (about 1 ms) instead of lowering them. What is still lowered is lowered in
one MLIR context per thread. The store lives in `kernels/` of `$AUTODIFF_AUDIT_JAX_CACHE`,
default `~/.cache/autodiff-oracles/jax`; when it is not used, JAX's own persistent cache is
there instead; `off` keeps nothing on disk. `note` is one line for the user when the store is
not used (see jax_kernels.install).
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

_cache = os.environ.get("AUTODIFF_AUDIT_JAX_CACHE", str(Path.home() / ".cache" / "autodiff-oracles" / "jax"))

from . import jax_kernels  # noqa: E402

# One line for the user when the kernel store is not used (see jax_kernels.py), else None.
note = jax_kernels.install(Path(_cache) if _cache != "off" else None)
if _cache != "off" and jax_kernels.installed() is None:
    # Plain JAX: its own persistent cache, then, of the compiled kernels (not of the lowering).
    # Never beside the store: an executable JAX loads from its cache, saved again in the store,
    # loads there without its code (jax 0.10.2: "Function ... not found" when it runs).
    jax.config.update("jax_compilation_cache_dir", _cache)
    # Every kernel here compiles in milliseconds; keep them all, however small.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

import jax.numpy as jnp  # noqa: E402
import jax.scipy.special  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

try:  # jnp.logaddexp's custom JVP itself; jnp.logaddexp wraps it in a jit (see logaddexp below)
    from jax._src.lax.other import logaddexp as _logaddexp
except ImportError:  # another JAX: the same rule through jnp, compiled again in each process
    _logaddexp = jnp.logaddexp

name = "jax"


def broadcast_to(x, shape):
    """numpy's broadcast_to, spelled in lax (jnp's implicit broadcasting compiles extra wrappers)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    lead = len(shape) - x.ndim
    kept = [axis for axis, size in enumerate(x.shape) if size == shape[lead + axis]]
    if len(kept) != x.ndim:  # drop the size-1 axes that get stretched
        x = lax.reshape(x, tuple(x.shape[axis] for axis in kept))
    return lax.broadcast_in_dim(x, shape, tuple(lead + axis for axis in kept))


def broadcast(a, b):
    """numpy broadcasting of two operands, in lax."""
    shape = np.broadcast_shapes(a.shape, b.shape)
    return broadcast_to(a, shape), broadcast_to(b, shape)


def _reduce(reducer, a, axis, keepdims):
    axes = tuple(range(a.ndim)) if axis is None else (axis % a.ndim,)
    total = reducer(a, axes)
    if keepdims:
        total = lax.reshape(total, tuple(1 if k in axes else size for k, size in enumerate(a.shape)))
    return total


def reduce_sum(a, axis, keepdims):
    return _reduce(lax.reduce_sum, a, axis, keepdims)


def reduce_mean(a, axis, keepdims):
    count = a.size if axis is None else a.shape[axis]
    return lax.div(reduce_sum(a, axis, keepdims), np.array(count, a.dtype))


def transpose(a, axes):
    return lax.transpose(a, tuple(reversed(range(a.ndim))) if axes is None else tuple(axes))


def where(a, b, mask):
    mask = np.asarray(mask, dtype=bool)
    shape = np.broadcast_shapes(mask.shape, a.shape, b.shape)
    return lax.select(np.broadcast_to(mask, shape), broadcast_to(a, shape), broadcast_to(b, shape))


def take(a, indices, axis):
    # Indices normalised here: the reference answers numpy's meaning, whatever jnp.take's mode.
    return jnp.take(a, np.asarray(indices) % a.shape[axis], axis=axis)


def stack(operands, axis):
    axis %= operands[0].ndim + 1
    return lax.concatenate([lax.expand_dims(operand, (axis,)) for operand in operands], axis)


def _slices(attrs):
    return tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def logaddexp(a, b):
    """jnp.logaddexp (promote, then its custom JVP: exp(a - out), stable far out) without the jit
    around it, whose jaxpr holds that JVP as a function: the kernel store could not key it, and
    every process would compile it again. As jax.nn.softplus (logaddexp(a, 0)) and log_sigmoid."""
    return _logaddexp(*broadcast(a, b))


def variance(a, axis, keepdims, ddof):
    """jnp.var's own composition (mean, centre, square, sum, divide by n - ddof), in lax."""
    count = a.size if axis is None else a.shape[axis]
    centered = lax.sub(a, broadcast_to(reduce_mean(a, axis, True), a.shape))
    return lax.div(reduce_sum(lax.square(centered), axis, keepdims), np.array(count - ddof, a.dtype))


def norm(a, axis, keepdims):
    """jnp.linalg.norm's own composition for the 2-norm (multiply, sum, sqrt), without its jit."""
    return lax.sqrt(reduce_sum(lax.mul(a, a), axis, keepdims))


def conv1d(x, w, attrs):
    return lax.conv_general_dilated(
        x, w, window_strides=(attrs["stride"],), padding=((attrs["padding"], attrs["padding"]),),
        rhs_dilation=(attrs["dilation"],), dimension_numbers=("NCH", "OIH", "NCH"),
        feature_group_count=attrs["groups"],
    )  # fmt: skip


def max_pool1d(x, kernel, stride):
    """Max over windows along the last axis: reduce_window with max, as JAX's own pooling is written."""
    stride = kernel if stride is None else stride
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, 1, kernel), (1, 1, stride), "VALID")


# op name -> (operands, attrs) -> jax value. One line per op of the table. These are the
# lax primitives that jnp's functions reduce to: the same JAX differentiation rules,
# without jnp's per-call jit wrappers, each of which compiles once per shape.
OPS: dict[str, Callable[..., Any]] = {
    "add": lambda a, b, attrs: lax.add(*broadcast(a, b)),
    "subtract": lambda a, b, attrs: lax.sub(*broadcast(a, b)),
    "mult": lambda a, b, attrs: lax.mul(*broadcast(a, b)),
    "power": lambda a, attrs: lax.integer_pow(a, attrs["exponent"]),
    "reduce_sum": lambda a, attrs: reduce_sum(a, attrs["axis"], attrs["keepdims"]),
    "dot": lambda a, b, attrs: lax.dot(a, b),
    "sigmoid": lambda a, attrs: lax.logistic(a),
    "neg": lambda a, attrs: lax.neg(a),
    "exp": lambda a, attrs: lax.exp(a),
    "log": lambda a, attrs: lax.log(a),
    "sqrt": lambda a, attrs: lax.sqrt(a),
    "tanh": lambda a, attrs: lax.tanh(a),
    "sin": lambda a, attrs: lax.sin(a),
    "cos": lambda a, attrs: lax.cos(a),
    "relu": lambda a, attrs: jax.nn.relu(a),  # not lax.max(a, 0), whose derivative at a tie is 1/2
    "abs": lambda a, attrs: lax.abs(a),
    "div": lambda a, b, attrs: lax.div(*broadcast(a, b)),
    "maximum": lambda a, b, attrs: lax.max(*broadcast(a, b)),
    "pow": lambda a, b, attrs: lax.pow(*broadcast(a, b)),
    "reduce_mean": lambda a, attrs: reduce_mean(a, attrs["axis"], attrs["keepdims"]),
    "reduce_max": lambda a, attrs: _reduce(lax.reduce_max, a, attrs["axis"], attrs["keepdims"]),
    "transpose": lambda a, attrs: transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: lax.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: jax.nn.softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: jax.nn.log_softmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: jax.scipy.special.logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: _reduce(lax.reduce_prod, a, attrs["axis"], attrs["keepdims"]),
    "cumsum": lambda a, attrs: lax.cumsum(a, axis=attrs["axis"] % a.ndim),
    "cumprod": lambda a, attrs: lax.cumprod(a, axis=attrs["axis"] % a.ndim),
    "minimum": lambda a, b, attrs: lax.min(*broadcast(a, b)),
    "reduce_min": lambda a, attrs: _reduce(lax.reduce_min, a, attrs["axis"], attrs["keepdims"]),
    # jnp.clip's own composition (1/2 on a bound, as its users get), without its jit to trace on every call.
    "clip": lambda a, attrs: lax.min(lax.full_like(a, attrs["hi"]), lax.max(lax.full_like(a, attrs["lo"]), a)),
    "where": lambda a, b, attrs: where(a, b, attrs["mask"]),
    "take": lambda a, attrs: take(a, attrs["indices"], attrs["axis"] % a.ndim),
    "slice": lambda a, attrs: a[_slices(attrs)],
    "concatenate": lambda *operands: lax.concatenate(operands[:-1], operands[-1]["axis"] % operands[0].ndim),
    "stack": lambda *operands: stack(operands[:-1], operands[-1]["axis"]),
    "softplus": lambda a, attrs: logaddexp(a, np.zeros(a.shape, a.dtype)),  # jax.nn.softplus
    "log_sigmoid": lambda a, attrs: lax.neg(logaddexp(lax.neg(a), np.zeros(a.shape, a.dtype))),  # jax.nn's
    "log1p": lambda a, attrs: lax.log1p(a),
    "expm1": lambda a, attrs: lax.expm1(a),
    "logaddexp": lambda a, b, attrs: logaddexp(a, b),
    "erf": lambda a, attrs: lax.erf(a),
    "atan2": lambda a, b, attrs: lax.atan2(*broadcast(a, b)),
    "var": lambda a, attrs: variance(a, attrs["axis"], attrs["keepdims"], attrs["ddof"]),
    "std": lambda a, attrs: lax.sqrt(variance(a, attrs["axis"], attrs["keepdims"], attrs["ddof"])),  # as jnp.std
    "norm": lambda a, attrs: norm(a, attrs["axis"], attrs["keepdims"]),
    "matmul": lambda a, b, attrs: jnp.matmul(a, b),
    "einsum": lambda *operands: jnp.einsum(operands[-1]["subscripts"], *operands[:-1]),
    "conv1d": lambda x, w, attrs: conv1d(x, w, attrs),
    "max_pool1d": lambda a, attrs: max_pool1d(a, attrs["kernel"], attrs["stride"]),
}
ops = OPS.keys()  # a live view: an op added to the map is supported at once
unsupported: dict[str, str] = {}  # op -> why not; with `ops`, this covers the op table


def _composed(graph) -> tuple[list[str], Callable[..., Any]]:
    """The graph's input names, and the graph as one function of their arrays, in that order:
    what evaluate, jvp and hvp all differentiate."""
    names = [entry["name"] for entry in graph["inputs"]]

    def function(*arrays):
        computed = dict(zip(names, arrays))
        for node in graph["nodes"]:
            computed[node["name"]] = OPS[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
        return computed[graph["output"]]

    return names, function


def _on_device(graph, names, arrays) -> list:
    """One array per name, in the case's dtype, on the device."""
    dtype = np.dtype(graph["dtype"])
    return [jax.device_put(np.asarray(arrays[n], dtype=dtype)) for n in names]


def evaluate(graph, values, cotangent):
    names, function = _composed(graph)
    value, vjp = jax.vjp(function, *_on_device(graph, names, values))
    gradients = vjp(jax.device_put(np.asarray(cotangent, dtype=value.dtype)))
    return np.asarray(value), {n: np.asarray(g) for n, g in zip(names, gradients)}


def jvp(graph, values, tangents):
    """The output's value and J t, by `jax.jvp` of the same function, eagerly."""
    names, function = _composed(graph)
    value, derivative = jax.jvp(function, _on_device(graph, names, values), _on_device(graph, names, tangents))
    return np.asarray(value), np.asarray(derivative)


def hvp(graph, values, cotangent, tangents):
    """Forward over reverse: the JVP along `tangents` of x -> vjp(x)(cotangent), the cotangent
    held fixed. jax.vjp gives zeros (not None) to an input the output does not reach, and
    their tangents are zeros too."""
    names, function = _composed(graph)

    def gradients(*arrays):
        value, vjp = jax.vjp(function, *arrays)
        return vjp(jax.device_put(np.asarray(cotangent, dtype=value.dtype)))

    _, products = jax.jvp(gradients, _on_device(graph, names, values), _on_device(graph, names, tangents))
    return {n: np.asarray(p) for n, p in zip(names, products)}
