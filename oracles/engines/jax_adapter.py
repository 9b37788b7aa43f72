"""JAX (CPU) as an engine under test, behind the plug-in protocol: the graph in `jax.numpy`,
`jax.nn`, `jax.scipy.special` and `jax.lax`, run eagerly (no `jit`: one compilation per graph
would cost more than the audit), in float64 by `jax.config.update("jax_enable_x64", True)`. The VJP
is `jax.vjp`. Every op is JAX's own, as its users write it: `jax.nn.sigmoid`, `jax.nn.softplus`,
`jax.nn.log_sigmoid`, `jax.nn.softmax`, `jax.nn.log_softmax`, `jax.nn.relu`,
`jax.scipy.special.logsumexp` and `erf`, `jnp.logaddexp`, `jnp.var` / `jnp.std` with `ddof`,
`jnp.linalg.norm`, `jnp.prod`, `jnp.cumprod`, `jnp.power`, `jnp.take`, `jnp.einsum`;
`conv1d` is `jax.lax.conv_general_dilated` (its default layout, (N, C, W) and (O, I, K), is
PyTorch's) and `max_pool1d` a `jax.lax.reduce_window` of `jax.lax.max` from -inf.

This adapter is written fresh against JAX's public API, not from the harness's JAX reference
(backends/jax_backend.py). When JAX is the engine, the jax reference is left out (check/core.py):
it would judge JAX by itself. `--engine jax` is judged by PyTorch and finite differences.

`jvp` is `jax.jvp`; `hvp` is forward-over-reverse, `jax.jvp` of the VJP (`jax.vjp` with the
cotangent held fixed) along the tangents. No op is unsupported. Limitation: run eagerly, JAX
compiles every primitive afresh for each new shape, so a worker's first graphs can take more than
the default 10 s an evaluation (a `timeout` finding, which replays correct): give it `--timeout 60`."""

from collections.abc import Callable
from importlib.metadata import version

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf, logsumexp

from .compose import plug_in

jax.config.update("jax_enable_x64", True)

name = f"jax-{version('jax')}"


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _conv1d(x, w, attrs):
    pad = attrs["padding"]
    # lax's default layout for a 1-D convolution, (N, C, W) and (O, I / groups, K), is PyTorch's.
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(attrs["stride"],),
        padding=[(pad, pad)],
        rhs_dilation=(attrs["dilation"],),
        feature_group_count=attrs["groups"],
    )


def _max_pool1d(a, attrs):
    kernel = attrs["kernel"]
    stride = attrs["stride"] or kernel
    return jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 1, kernel), (1, 1, stride), "VALID")


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: jnp.add(a, b),
    "subtract": lambda a, b, attrs: jnp.subtract(a, b),
    "mult": lambda a, b, attrs: jnp.multiply(a, b),
    "power": lambda a, attrs: jnp.power(a, attrs["exponent"]),
    "reduce_sum": lambda a, attrs: jnp.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: jnp.dot(a, b),
    "sigmoid": lambda a, attrs: jax.nn.sigmoid(a),
    "neg": lambda a, attrs: jnp.negative(a),
    "exp": lambda a, attrs: jnp.exp(a),
    "log": lambda a, attrs: jnp.log(a),
    "sqrt": lambda a, attrs: jnp.sqrt(a),
    "tanh": lambda a, attrs: jnp.tanh(a),
    "sin": lambda a, attrs: jnp.sin(a),
    "cos": lambda a, attrs: jnp.cos(a),
    "relu": lambda a, attrs: jax.nn.relu(a),
    "abs": lambda a, attrs: jnp.abs(a),
    "div": lambda a, b, attrs: jnp.divide(a, b),
    "maximum": lambda a, b, attrs: jnp.maximum(a, b),
    "pow": lambda a, b, attrs: jnp.power(a, b),
    "reduce_mean": lambda a, attrs: jnp.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: jnp.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: jnp.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: jnp.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: jnp.broadcast_to(a, tuple(attrs["shape"])),
    "softmax": lambda a, attrs: jax.nn.softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: jax.nn.log_softmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: jnp.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: jnp.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: jnp.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: jnp.minimum(a, b),
    "reduce_min": lambda a, attrs: jnp.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: jnp.clip(a, min=attrs["lo"], max=attrs["hi"]),
    "where": lambda a, b, attrs: jnp.where(np.asarray(attrs["mask"], dtype=bool), a, b),
    "take": lambda a, attrs: jnp.take(a, np.asarray(attrs["indices"], dtype=np.int64), axis=attrs["axis"]),
    "slice": _slice,
    "concatenate": lambda *args: jnp.concatenate(args[:-1], axis=args[-1]["axis"]),
    "stack": lambda *args: jnp.stack(args[:-1], axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: jax.nn.softplus(a),
    "log_sigmoid": lambda a, attrs: jax.nn.log_sigmoid(a),
    "log1p": lambda a, attrs: jnp.log1p(a),
    "expm1": lambda a, attrs: jnp.expm1(a),
    "logaddexp": lambda a, b, attrs: jnp.logaddexp(a, b),
    "erf": lambda a, attrs: erf(a),
    "atan2": lambda a, b, attrs: jnp.arctan2(a, b),
    "var": lambda a, attrs: jnp.var(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "std": lambda a, attrs: jnp.std(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "norm": lambda a, attrs: jnp.linalg.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: jnp.matmul(a, b),
    "einsum": lambda *args: jnp.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {}


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `jax.vjp` (an input the output does not reach gets zeros from JAX)."""
    value, pullback = jax.vjp(function, *(jnp.asarray(a) for a in arrays))
    return value, pullback(jnp.asarray(cotangent))


def jvp_of(function, arrays, tangents):
    """The value and its derivative along `tangents`, by JAX's forward mode, `jax.jvp`."""
    return jax.jvp(function, tuple(jnp.asarray(a) for a in arrays), tuple(jnp.asarray(t) for t in tangents))


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, forward over
    reverse: `jax.jvp` of the VJP (`jax.vjp` with the cotangent held fixed) along the tangents."""

    def gradient(*inputs):
        return jax.vjp(function, *inputs)[1](jnp.asarray(cotangent))

    return jax.jvp(gradient, tuple(jnp.asarray(a) for a in arrays), tuple(jnp.asarray(t) for t in tangents))[1]


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
