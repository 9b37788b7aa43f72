"""JAX as a reference: the whole graph as one function, differentiated by `jax.vjp`.

float64 is enabled once, here at import, so that a float64 graph is computed in float64.

Where the time goes: eager JAX compiles every primitive once per new combination of
shapes (about 25-30 ms each on this machine), and random graphs keep meeting new
combinations, so a cold audit spends most of its JAX time in XLA's compiler; a warm
call costs about 3.5 ms per graph. The compiled kernels are therefore kept in JAX's
persistent compilation cache, shared by the audit's worker processes and by later runs:
`$AUTODIFF_AUDIT_JAX_CACHE`, default `~/.cache/autodiff-oracles/jax`; set it to `off` to
disable.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)

_cache = os.environ.get("AUTODIFF_AUDIT_JAX_CACHE", str(Path.home() / ".cache" / "autodiff-oracles" / "jax"))
if _cache != "off":
    jax.config.update("jax_compilation_cache_dir", _cache)
    # Every kernel here compiles in milliseconds; keep them all, however small.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

name = "jax"


def broadcast(a, b):
    """numpy broadcasting, spelled in lax (jnp's implicit broadcasting compiles extra wrappers)."""
    shape = np.broadcast_shapes(a.shape, b.shape)

    def stretch(x):
        if x.shape == shape:
            return x
        lead = len(shape) - x.ndim
        kept = [axis for axis, size in enumerate(x.shape) if size == shape[lead + axis]]
        if len(kept) != x.ndim:  # drop the size-1 axes that get stretched
            x = lax.reshape(x, tuple(x.shape[axis] for axis in kept))
        return lax.broadcast_in_dim(x, shape, tuple(lead + axis for axis in kept))

    return stretch(a), stretch(b)


def reduce_sum(a, axis, keepdims):
    axes = tuple(range(a.ndim)) if axis is None else (axis % a.ndim,)
    total = lax.reduce(a, np.array(0, a.dtype), lax.add, axes)
    if keepdims:
        total = lax.reshape(total, tuple(1 if k in axes else size for k, size in enumerate(a.shape)))
    return total


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
}
ops = OPS.keys()  # a live view: an op added to the map is supported at once
unsupported: dict[str, str] = {}  # op -> why not; with `ops`, this covers the op table


def evaluate(graph, values, cotangent):
    names = [entry["name"] for entry in graph["inputs"]]

    def function(*arrays):
        computed = dict(zip(names, arrays))
        for node in graph["nodes"]:
            computed[node["name"]] = OPS[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
        return computed[graph["output"]]

    dtype = np.dtype(graph["dtype"])
    arrays = [jax.device_put(np.asarray(values[n], dtype=dtype)) for n in names]
    value, vjp = jax.vjp(function, *arrays)
    gradients = vjp(jax.device_put(np.asarray(cotangent, dtype=value.dtype)))
    return np.asarray(value), {n: np.asarray(g) for n, g in zip(names, gradients)}
