"""Apple's MLX (its CPU backend, `pip install 'mlx[cpu]'`) behind the plug-in protocol: MLX is an
array framework with lazy evaluation and composable function transformations (`mx.vjp`, `mx.jvp`,
`mx.grad`, `mx.vmap`, `mx.compile`), numpy-like in `mlx.core`, with its neural-network functions in
`mlx.nn`. The graph is one function of MLX arrays, its VJP by `mx.vjp`.

Every op is MLX's own: `sigmoid`, `logaddexp`, `logsumexp`, `softmax`, `erf`, `arctan2`, `expm1`,
`log1p`, `var` and `std` (with `ddof`), `linalg.norm`, `matmul` (`dot` too: MLX's matmul is
numpy's `@` for 1-D and 2-D operands), `einsum`, `cumprod`, `take` (MLX wraps negative indices),
numpy basic slicing, negative steps included. Where `mlx.core` has no op, the adapter calls
`mlx.nn`'s, as MLX's users do: `relu` is `nn.relu` (`mx.maximum(a, 0)`), `softplus` `nn.softplus`
(`mx.logaddexp(a, 0)`), `log_sigmoid` `nn.log_sigmoid` (`-softplus(-a)`), `log_softmax`
`nn.log_softmax` (shifted by the stopped-gradient max, then minus `logsumexp`), and `max_pool1d`
`nn.MaxPool1d` (its windows by `mx.as_strided`, then `mx.max`). `conv1d` and `max_pool1d` take
the graph's (N, C, W) and (C_out, C_in / groups, K) and give MLX its channels-last (N, W, C) and
(C_out, K, C_in / groups), transposed around `mx.conv1d` and the pooling.

float64 is MLX's CPU-only dtype (the Metal GPU has none), so the default device is set to the CPU
(the only device of `mlx[cpu]` on Linux), and arrays are made with the case's dtype spelled out
(`mx.array` of a float64 numpy array is float32 unless told otherwise).

`jvp` is `mx.jvp`. `hvp` is reverse over reverse: `mx.vjp` of the function computing the VJP
(`mx.vjp` with the cotangent held fixed), applied to the tangents (the Hessian of
s = sum(cotangent * output) is symmetric, so its VJP is its JVP). Forward over reverse (`mx.jvp`
of the VJP) is not used: MLX has no JVP of the scatter that the VJPs of `take` and `max_pool1d` are
made of, nor of `Convolution`, while every VJP MLX has is differentiable again in reverse mode.

Limitations of MLX 0.32.4 (Linux, CPU):
- float64 convolution on the CPU has its plain path only: a float64 `conv1d` that is dilated raises
  "[Convolution::eval] got unsupported data type" in its value, and one that is strided or grouped
  raises it in its VJP. `accepts` declines those float64 graphs (float32 takes them all).
- no forward-mode rule for `Convolution` ("[Primitive::jvp] Not implemented for Convolution") nor
  for `cumprod` ("JVP is not implemented for cumulative prod/min/max"): `jvp` of a graph with
  `conv1d` or `cumprod` raises, left to surface as a `crash` finding in forward mode (the VJP of both
  is there, and so are their second derivatives, reverse over reverse).
The real bugs the audits find, each left to surface (none is worked around here):
- float64 `exp`, `sin`, `cos` and `erf` on the CPU are MLX's float32 SIMD approximations (mlx#3047,
  relative error about 1e-7), and so is everything built on them, in value, VJP, JVP and HVP
  (`sigmoid`, `softmax`, `log_softmax`, `logsumexp`, `softplus`, `log_sigmoid`, `logaddexp`; the
  gradient of `sin` and `cos`; `expm1`'s JVP, which is `exp(a) t`).
- a float64 `conv1d` is computed to float32 precision.
- `tanh`'s second derivative is NaN far out (past |a| ~ 710 in float64, ~ 89 in float32), and the
  second derivative through `cumprod`'s VJP is NaN at a zero of its operand.
- `mx.vjp` of a function that returns one array twice uses only the first of the two cotangents:
  `add`'s VJP hands one array to both operands, so `hvp` of `matmul(add(u, w), z)` drops w's tangent.
- at a tie, `max` and `min` split the cotangent evenly in reverse mode but pass the first extremum's
  tangent in forward mode (kink mode: a `mode-mismatch`, the transpose identity fails).
The layout of the module is compose.py's."""

from collections.abc import Callable
from importlib.metadata import version

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .compose import plug_in

name = f"mlx-{version('mlx')}"

mx.set_default_device(mx.cpu)


def _array(a):
    """A numpy array as an MLX array of the same dtype (mx.array alone makes float64 float32)."""
    a = np.asarray(a)
    return mx.array(a, dtype=getattr(mx, a.dtype.name))


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _conv1d(x, w, attrs):
    # (N, C_in, W) and (C_out, C_in / groups, K) to MLX's channels-last (N, W, C_in) and (C_out, K, C_in / groups).
    out = mx.conv1d(mx.transpose(x, (0, 2, 1)), mx.transpose(w, (0, 2, 1)), stride=attrs["stride"],
                    padding=attrs["padding"], dilation=attrs["dilation"], groups=attrs["groups"])  # fmt: skip
    return mx.transpose(out, (0, 2, 1))


def _max_pool1d(a, attrs):
    # nn.MaxPool1d pools the middle axis of (N, W, C): the graph's (N, C, W) transposed around it.
    pooled = nn.MaxPool1d(attrs["kernel"], attrs["stride"])(mx.transpose(a, (0, 2, 1)))
    return mx.transpose(pooled, (0, 2, 1))


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: mx.add(a, b),
    "subtract": lambda a, b, attrs: mx.subtract(a, b),
    "mult": lambda a, b, attrs: mx.multiply(a, b),
    "power": lambda a, attrs: mx.power(a, attrs["exponent"]),
    "reduce_sum": lambda a, attrs: mx.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: mx.matmul(a, b),
    "sigmoid": lambda a, attrs: mx.sigmoid(a),
    "neg": lambda a, attrs: mx.negative(a),
    "exp": lambda a, attrs: mx.exp(a),
    "log": lambda a, attrs: mx.log(a),
    "sqrt": lambda a, attrs: mx.sqrt(a),
    "tanh": lambda a, attrs: mx.tanh(a),
    "sin": lambda a, attrs: mx.sin(a),
    "cos": lambda a, attrs: mx.cos(a),
    "relu": lambda a, attrs: nn.relu(a),
    "abs": lambda a, attrs: mx.abs(a),
    "div": lambda a, b, attrs: mx.divide(a, b),
    "maximum": lambda a, b, attrs: mx.maximum(a, b),
    "pow": lambda a, b, attrs: mx.power(a, b),
    "reduce_mean": lambda a, attrs: mx.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: mx.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: mx.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: mx.reshape(a, attrs["shape"]),
    "broadcast_to": lambda a, attrs: mx.broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: mx.softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: nn.log_softmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: mx.logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: mx.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: mx.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: mx.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: mx.minimum(a, b),
    "reduce_min": lambda a, attrs: mx.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: mx.clip(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: mx.where(mx.array(np.asarray(attrs["mask"], dtype=bool)), a, b),
    "take": lambda a, attrs: mx.take(a, mx.array(np.asarray(attrs["indices"], dtype=np.int32)), axis=attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: mx.concatenate(list(args[:-1]), axis=args[-1]["axis"]),
    "stack": lambda *args: mx.stack(list(args[:-1]), axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: nn.softplus(a),
    "log_sigmoid": lambda a, attrs: nn.log_sigmoid(a),
    "log1p": lambda a, attrs: mx.log1p(a),
    "expm1": lambda a, attrs: mx.expm1(a),
    "logaddexp": lambda a, b, attrs: mx.logaddexp(a, b),
    "erf": lambda a, attrs: mx.erf(a),
    "atan2": lambda a, b, attrs: mx.arctan2(a, b),
    "var": lambda a, attrs: mx.var(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "std": lambda a, attrs: mx.std(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "norm": lambda a, attrs: mx.linalg.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: mx.matmul(a, b),
    "einsum": lambda *args: mx.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {}


def accepts(graph):
    """None, or why MLX cannot take the graph: float64 convolution on MLX's CPU has its plain path
    only (a dilated, strided or grouped one raises "[Convolution::eval] got unsupported data type",
    in its value or in its VJP)."""
    if graph["dtype"] != "float64":
        return None
    for node in graph["nodes"]:
        attrs = node["attrs"]
        if node["op"] == "conv1d" and (attrs["stride"], attrs["dilation"], attrs["groups"]) != (1, 1, 1):
            return "MLX's CPU convolution has no float64 kernel for a strided, dilated or grouped conv1d"
    return None


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `mx.vjp(function, primals, [cotangent])`, evaluated at once."""
    (value,), gradients = mx.vjp(function, [_array(a) for a in arrays], [_array(cotangent)])
    mx.eval(value, gradients)
    return value, gradients


def jvp_of(function, arrays, tangents):
    """The value and its derivative along `tangents`, by MLX's forward mode, `mx.jvp`: each
    primitive's own JVP rule. A primitive with none raises (Convolution, cumprod), left to surface
    as a finding."""
    (value,), (derivative,) = mx.jvp(function, [_array(a) for a in arrays], [_array(t) for t in tangents])
    mx.eval(value, derivative)
    return value, derivative


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, reverse over
    reverse: `mx.vjp` of the inputs' VJP (`mx.vjp(function, inputs, [cotangent])`, the cotangent held
    fixed), applied to the tangents. The Hessian of s is symmetric, so this VJP of the gradient is
    its JVP; it needs only the VJPs of MLX's own VJPs."""
    held = [_array(cotangent)]

    def gradients(*inputs):
        return mx.vjp(function, list(inputs), held)[1]

    _, products = mx.vjp(gradients, [_array(a) for a in arrays], [_array(t) for t in tangents])
    mx.eval(products)
    return products


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
