"""mygrad behind the plug-in protocol: the graph in mygrad tensors, the VJP by
`output.backward(cotangent)` and each input's `.grad`."""

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
