"""mygrad behind the plug-in protocol: the graph in mygrad tensors, the VJP by
`output.backward(cotangent)` and each input's `.grad`. mygrad has no `take` function: `take` is
mygrad's own (advanced) indexing along the axis, and `slice` its basic indexing."""

from collections.abc import Callable
from importlib.metadata import version

import mygrad as mg
import numpy as np
from mygrad.nnet.activations import logsoftmax, relu, sigmoid, softmax

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


OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: mg.add(a, b),
    "subtract": lambda a, b, attrs: mg.subtract(a, b),
    "mult": lambda a, b, attrs: mg.multiply(a, b),
    "power": lambda a, attrs: mg.power(a, attrs["exponent"]),
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
}
ops = set(OPS)


def evaluate(graph, values, cotangent):
    names = [entry["name"] for entry in graph["inputs"]]
    inputs = {n: mg.tensor(values[n], dtype=values[n].dtype) for n in names}
    computed = dict(inputs)
    for node in graph["nodes"]:
        computed[node["name"]] = OPS[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
    output = computed[graph["output"]]
    if not isinstance(output, mg.Tensor):
        output = mg.tensor(output)
    output.backward(cotangent)
    gradients = {n: np.asarray(t.grad) if t.grad is not None else np.zeros_like(values[n]) for n, t in inputs.items()}
    return np.asarray(output.data), gradients
