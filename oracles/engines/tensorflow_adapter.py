"""TensorFlow (CPU) behind the plug-in protocol: the graph in eager TensorFlow under a
GradientTape, the VJP by `tape.gradient(..., output_gradients=cotangent)`. `take` is `tf.gather`,
whose CPU kernel takes indices in [0, n) only: negative ones are spelled from the start.
`conv1d` and `max_pool1d` are `tf.nn.convolution` (once per group) and `tf.nn.max_pool1d` on the
channels-last layout TensorFlow's CPU kernels take; `logaddexp` is TensorFlow's numpy API (tf.math
has none). `jvp` is `tf.autodiff.ForwardAccumulator`, `hvp` forward-over-back (an accumulator around
the tape); the graph (compose.py's function of the inputs' tensors) runs under whichever is recording.
The layout of the module is compose.py's."""

import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from .compose import plug_in

name = f"tensorflow-{tf.__version__}"


def _transpose(a, axes):
    return tf.transpose(a, perm=list(reversed(range(len(a.shape)))) if axes is None else axes)


def _take(a, indices, axis):
    length = a.shape[axis]
    return tf.gather(a, tf.constant([index % length for index in indices], dtype=tf.int64), axis=axis)


def _slice(a, attrs):
    return a[tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))]


def _var(a, attrs):
    # reduce_variance divides by n: n / (n - ddof) makes it numpy's var with ddof.
    variance = tf.math.reduce_variance(a, axis=attrs["axis"], keepdims=attrs["keepdims"])
    if not attrs["ddof"]:
        return variance
    count = int(np.prod(a.shape)) if attrs["axis"] is None else a.shape[attrs["axis"]]
    return variance * (count / (count - attrs["ddof"]))


def _std(a, attrs):
    return (
        tf.math.reduce_std(a, axis=attrs["axis"], keepdims=attrs["keepdims"])
        if not attrs["ddof"]
        else tf.sqrt(_var(a, attrs))
    )


def _matmul(a, b):
    # tf.linalg.matmul broadcasts batch axes but takes no 1-D operand: numpy's added axis, then removed.
    product = tf.linalg.matmul(a[None, :] if a.shape.rank == 1 else a, b[:, None] if b.shape.rank == 1 else b)
    added = [-2] * (a.shape.rank == 1) + [-1] * (b.shape.rank == 1)
    return tf.squeeze(product, axis=added) if added else product


def _conv1d(x, w, attrs):
    # (N, C, W) and (C_out, C_in / groups, K) to TensorFlow's (N, W, C) and (K, C_in / groups, C_out); zero
    # padding by tf.pad. On the CPU, TensorFlow has no gradient of a grouped conv ("not supported on CPU"):
    # a group is a convolution of its own. Nor of a dilated tf.nn.conv1d: tf.nn.convolution dilates by
    # space_to_batch, and takes stride 1 then, so a dilated, strided conv is every stride-th column.
    pad, stride, dilation, groups = attrs["padding"], attrs["stride"], attrs["dilation"], attrs["groups"]
    x = tf.transpose(tf.pad(x, [[0, 0], [0, 0], [pad, pad]]) if pad else x, [0, 2, 1])
    w = tf.transpose(w, [2, 1, 0])
    step = stride if dilation == 1 else 1
    outs, ins = w.shape[2] // groups, x.shape[2] // groups
    parts = [
        tf.nn.convolution(x[..., g * ins : (g + 1) * ins], w[..., g * outs : (g + 1) * outs], strides=step,
                          padding="VALID", dilations=dilation)
        for g in range(groups)
    ]  # fmt: skip
    out = tf.concat(parts, axis=-1) if groups > 1 else parts[0]
    return tf.transpose(out, [0, 2, 1])[..., :: stride // step]


def _max_pool1d(a, attrs):
    kernel = attrs["kernel"]
    pooled = tf.nn.max_pool1d(tf.transpose(a, [0, 2, 1]), kernel, attrs["stride"] or kernel, padding="VALID")
    return tf.transpose(pooled, [0, 2, 1])


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: tf.add(a, b),
    "subtract": lambda a, b, attrs: tf.subtract(a, b),
    "mult": lambda a, b, attrs: tf.multiply(a, b),
    "power": lambda a, attrs: tf.pow(a, tf.constant(attrs["exponent"], dtype=a.dtype)),
    "reduce_sum": lambda a, attrs: tf.reduce_sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: tf.tensordot(a, b, axes=1),
    "sigmoid": lambda a, attrs: tf.sigmoid(a),
    "neg": lambda a, attrs: tf.negative(a),
    "exp": lambda a, attrs: tf.exp(a),
    "log": lambda a, attrs: tf.math.log(a),
    "sqrt": lambda a, attrs: tf.sqrt(a),
    "tanh": lambda a, attrs: tf.tanh(a),
    "sin": lambda a, attrs: tf.sin(a),
    "cos": lambda a, attrs: tf.cos(a),
    "relu": lambda a, attrs: tf.nn.relu(a),
    "abs": lambda a, attrs: tf.abs(a),
    "div": lambda a, b, attrs: tf.divide(a, b),
    "maximum": lambda a, b, attrs: tf.maximum(a, b),
    "pow": lambda a, b, attrs: tf.pow(a, b),
    "reduce_mean": lambda a, attrs: tf.reduce_mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: tf.reduce_max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: _transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: tf.reshape(a, attrs["shape"]),
    "broadcast_to": lambda a, attrs: tf.broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: tf.nn.softmax(a, axis=attrs["axis"]),
    "log_softmax": lambda a, attrs: tf.nn.log_softmax(a, axis=attrs["axis"]),
    "logsumexp": lambda a, attrs: tf.reduce_logsumexp(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_prod": lambda a, attrs: tf.reduce_prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: tf.math.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: tf.math.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: tf.minimum(a, b),
    "reduce_min": lambda a, attrs: tf.reduce_min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: tf.clip_by_value(a, attrs["lo"], attrs["hi"]),
    "where": lambda a, b, attrs: tf.where(tf.constant(np.asarray(attrs["mask"], dtype=bool)), a, b),
    "take": lambda a, attrs: _take(a, attrs["indices"], attrs["axis"]),
    "slice": lambda a, attrs: _slice(a, attrs),
    "concatenate": lambda *args: tf.concat(list(args[:-1]), axis=args[-1]["axis"]),
    "stack": lambda *args: tf.stack(list(args[:-1]), axis=args[-1]["axis"]),
    "softplus": lambda a, attrs: tf.math.softplus(a),
    "log_sigmoid": lambda a, attrs: tf.math.log_sigmoid(a),
    "log1p": lambda a, attrs: tf.math.log1p(a),
    "expm1": lambda a, attrs: tf.math.expm1(a),
    "logaddexp": lambda a, b, attrs: tnp.logaddexp(a, b),
    "erf": lambda a, attrs: tf.math.erf(a),
    "atan2": lambda a, b, attrs: tf.math.atan2(a, b),
    "var": _var,
    "std": _std,
    "norm": lambda a, attrs: tf.norm(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "matmul": lambda a, b, attrs: _matmul(a, b),
    "einsum": lambda *args: tf.einsum(args[-1]["subscripts"], *args[:-1]),
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
}
ops = set(OPS)


def _constants(arrays) -> list:
    return [tf.constant(a) for a in arrays]


def _vjp(inputs, output, tape, cotangent) -> list:
    gradients = tape.gradient(
        output, inputs, output_gradients=tf.constant(cotangent), unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    # Made dense here, so that an accumulator around the tape (hvp) sees the densifying op too.
    return [tf.convert_to_tensor(g) for g in gradients]


def _dense(tensor) -> np.ndarray:
    """A tensor as a numpy array. tf.gather's gradient, and the accumulator's tangent of it, is an
    IndexedSlices (its rows and their indices): made dense by TensorFlow's own convert_to_tensor."""
    return np.asarray(tf.convert_to_tensor(tensor).numpy())


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by a `tf.GradientTape` watching the inputs:
    `tape.gradient(..., output_gradients=cotangent, unconnected_gradients=ZERO)`."""
    inputs = _constants(arrays)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = function(*inputs)
    return _dense(output), [_dense(g) for g in _vjp(inputs, output, tape, cotangent)]


def jvp_of(function, arrays, tangents):
    """The output's value and its derivative along `tangents`, by TensorFlow's forward mode:
    `tf.autodiff.ForwardAccumulator(primals=inputs, tangents=tangents)` around the eager graph, then
    `acc.jvp(output, unconnected_gradients=ZERO)`. TensorFlow has no forward rules of its own: the
    accumulator transposes each op's registered gradient function twice (traced once per op and shape),
    so an op with a wrong gradient has a wrong JVP too."""
    inputs = _constants(arrays)
    with tf.autodiff.ForwardAccumulator(inputs, _constants(tangents)) as accumulator:
        output = function(*inputs)
    derivative = accumulator.jvp(output, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return _dense(output), _dense(derivative)


def hvp_of(function, arrays, cotangent, tangents):
    """The Hessian-vector products of s = sum(cotangent * output) along `tangents`, forward-over-back
    as TensorFlow documents it: a `tf.GradientTape` gives the VJP (`tape.gradient(..., output_gradients=
    cotangent)`) inside a `tf.autodiff.ForwardAccumulator` watching the inputs with the tangents, and
    `acc.jvp` of each VJP is its derivative along the tangents."""
    inputs = _constants(arrays)
    with tf.autodiff.ForwardAccumulator(inputs, _constants(tangents)) as accumulator:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            output = function(*inputs)
        gradients = _vjp(inputs, output, tape, cotangent)
    return [_dense(accumulator.jvp(g, unconnected_gradients=tf.UnconnectedGradients.ZERO)) for g in gradients]


evaluate, jvp, hvp = plug_in(OPS, vjp_of, jvp_of, hvp_of)
