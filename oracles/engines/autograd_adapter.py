"""HIPS autograd behind the plug-in protocol: the graph as one function of autograd.numpy, its
VJP by `autograd.make_vjp`. autograd 1.9.1 defines no VJP for `np.cumprod` (declared unsupported)
nor for `np.take`: `take` is autograd's own indexing along the axis, as its users write it.
`sigmoid` is autograd's `expit`: written 1 / (1 + exp(-a)), its gradient is inf * 0 = NaN below -709.
`conv1d` is autograd's `scipy.signal.convolve` (a true convolution: the kernel goes in flipped),
once per group; `max_pool1d` the max over autograd's own windows (strided slices, stacked).
`jvp` is autograd's forward mode (`make_jvp`), which has no JVP rule for `expit`, `erf` nor
`convolve` (sigmoid, erf, conv1d): NotImplementedError, a finding. `hvp` is `make_hvp`
(reverse-over-reverse). The layout of the module is compose.py's."""

import warnings
from collections.abc import Callable
from importlib.metadata import version

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.scipy.signal import convolve
from autograd.scipy.special import erf, expit, logsumexp

from .compose import plug_in

name = f"autograd-{version('autograd')}"


def _along(a, axis):
    return logsumexp(a, axis=axis, keepdims=True)


def _take(a, indices, axis):
    # numpy's take(a, indices, axis) is a[:, ..., indices] with `indices` at `axis`: autograd's indexing.
    return a[(slice(None),) * (axis % anp.ndim(a)) + (np.asarray(indices, dtype=np.int64),)]


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _dilated(w, dilation):
    # The kernel with dilation - 1 zeros between its taps: (..., K) -> (..., dilation * (K - 1) + 1).
    if dilation == 1:
        return w
    zeros = anp.zeros((*anp.shape(w), dilation - 1), dtype=w.dtype)
    spread = anp.reshape(anp.concatenate([w[..., None], zeros], axis=-1), (*anp.shape(w)[:-1], -1))
    return spread[..., : dilation * (anp.shape(w)[-1] - 1) + 1]


def _conv1d(x, w, attrs):
    pad = attrs["padding"]
    x = anp.pad(x, ((0, 0), (0, 0), (pad, pad)), mode="constant") if pad else x
    w = _dilated(w, attrs["dilation"])[..., ::-1]  # convolve flips the kernel back: a cross-correlation
    groups = attrs["groups"]
    outs, ins = anp.shape(w)[0] // groups, anp.shape(x)[1] // groups
    parts = [
        # (C_out/groups, N, W'): the kernel's free axis first, then the input's
        convolve(w[g * outs : (g + 1) * outs], x[:, g * ins : (g + 1) * ins], axes=([2], [2]), dot_axes=([1], [1]),
                 mode="valid")
        for g in range(groups)
    ]  # fmt: skip
    out = anp.concatenate(parts, axis=0) if groups > 1 else parts[0]
    return anp.transpose(out, (1, 0, 2))[..., :: attrs["stride"]]


def _max_pool1d(a, attrs):
    kernel = attrs["kernel"]
    stride = attrs["stride"] or kernel
    count = (anp.shape(a)[-1] - kernel) // stride + 1
    # Tap t of every window: a[..., t], a[..., t + stride], ...; stacked, then the max over the taps.
    taps = [a[..., t : t + stride * (count - 1) + 1 : stride] for t in range(kernel)]
    return anp.max(anp.stack(taps, axis=-1), axis=-1)


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "reduce_sum": lambda a, attrs: anp.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: anp.dot(a, b),
    "sigmoid": lambda a, attrs: expit(a),
    "neg": lambda a, attrs: -a,
    "exp": lambda a, attrs: anp.exp(a),
    "log": lambda a, attrs: anp.log(a),
    "sqrt": lambda a, attrs: anp.sqrt(a),
    "tanh": lambda a, attrs: anp.tanh(a),
    "sin": lambda a, attrs: anp.sin(a),
    "cos": lambda a, attrs: anp.cos(a),
    "relu": lambda a, attrs: anp.maximum(a, 0.0),
    "abs": lambda a, attrs: anp.abs(a),
    "div": lambda a, b, attrs: a / b,
    "maximum": lambda a, b, attrs: anp.maximum(a, b),
    "pow": lambda a, b, attrs: a**b,
    "reduce_mean": lambda a, attrs: anp.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: anp.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: anp.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: anp.reshape(a, tuple(attrs["shape"])),
    "broadcast_to": lambda a, attrs: anp.broadcast_to(a, tuple(attrs["shape"])),
    "softmax": lambda a, attrs: anp.exp(a - _along(a, attrs["axis"])),
    "log_softmax": lambda a, attrs: a - _along(a, attrs["axis"]),
    "logsumexp": lambda a, attrs: logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: anp.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: anp.cumsum(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: anp.minimum(a, b),
    "reduce_min": lambda a, attrs: anp.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: anp.clip(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: anp.where(np.asarray(attrs["mask"], dtype=bool), a, b),
    "take": lambda a, attrs: _take(a, attrs["indices"], attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: anp.concatenate(args[:-1], axis=args[-1]["axis"]),
    "stack": lambda *args: anp.stack(args[:-1], axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: anp.logaddexp(0.0, a),
    "log_sigmoid": lambda a, attrs: -anp.logaddexp(0.0, -a),
    "log1p": lambda a, attrs: anp.log1p(a),
    "expm1": lambda a, attrs: anp.expm1(a),
    "logaddexp": lambda a, b, attrs: anp.logaddexp(a, b),
    "erf": lambda a, attrs: erf(a),
    "atan2": lambda a, b, attrs: anp.arctan2(a, b),
    "var": lambda a, attrs: anp.var(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "std": lambda a, attrs: anp.std(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"]),
    "norm": lambda a, attrs: anp.linalg.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: anp.matmul(a, b),
    "einsum": lambda *args: anp.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)
unsupported: dict[str, str] = {
    "cumprod": "autograd 1.9.1 defines no VJP for np.cumprod (NotImplementedError: VJP of cumprod not defined)",
}


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by `autograd.make_vjp`, of the graph as a function of the tuple of its inputs."""
    vjp, value = autograd.make_vjp(lambda inputs: function(*inputs))(tuple(arrays))
    return value, vjp(cotangent)


def jvp_of(function, arrays, tangents):
    """The value and its derivative along `tangents`, by autograd's forward mode, `autograd.make_jvp`
    (the tangents packed as the inputs are). Forward mode runs each primitive's own JVP rule
    (autograd's `defjvp`): a primitive with none raises NotImplementedError ("JVP of ... not
    defined"), which is left to surface as a finding."""
    return autograd.make_jvp(lambda inputs: function(*inputs))(tuple(arrays))(tuple(tangents))


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, by
    `autograd.make_hvp`, which is reverse-over-reverse: `make_vjp` of `grad(s)` at the tuple of
    inputs, applied to the tuple of tangents (the Hessian of s is symmetric, so its VJP is its JVP).
    It needs no forward-mode rule, only the VJPs of autograd's own VJPs (written in autograd.numpy)."""

    def s(inputs):
        return anp.sum(cotangent * function(*inputs))

    with warnings.catch_warnings():  # grad(s) is constant when s is linear: autograd warns, the answer is 0
        warnings.filterwarnings("ignore", "Output seems independent of input", UserWarning)
        product, _ = autograd.make_hvp(s)(tuple(arrays))
        return product(tuple(tangents))


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
