"""micrograd (Karpathy's scalar engine) behind the plug-in protocol. It has scalars only, in
Python floats: it declines tensors and float32 graphs (audit it with `--max-rank 0`), and has
+, -, *, /, a number power, negation and relu."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from micrograd.engine import Value

name = f"micrograd-{version('micrograd')}"

OPS: dict[str, Callable] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "div": lambda a, b, attrs: a / b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "neg": lambda a, attrs: -a,
    "relu": lambda a, attrs: a.relu(),
}
ops = set(OPS)
_NO_COMPARISON = "micrograd's Value has no comparison, min or clip (relu is its only kink)"
_NO_TENSORS = "micrograd has scalars only: no tensors, axes or reductions"
_NO_EXP = "micrograd's Value has no exp or log (nor erf): +, -, *, /, a number power and relu only"
unsupported: dict[str, str] = {
    "minimum": _NO_COMPARISON,
    "reduce_min": _NO_COMPARISON,
    "clip": _NO_COMPARISON,
    "where": "micrograd has no select: a mask would pick in Python, not in the engine",
    **{op: _NO_TENSORS for op in ("reduce_prod", "cumsum", "cumprod", "take", "slice", "concatenate", "stack")},
    **{op: _NO_EXP for op in ("softplus", "log_sigmoid", "log1p", "expm1", "logaddexp", "erf")},
    "atan2": "micrograd's Value has no trigonometric function",
    **{op: _NO_TENSORS for op in ("var", "std", "norm", "matmul", "einsum", "conv1d", "max_pool1d")},
}


def accepts(graph):
    if graph["dtype"] != "float64":
        return "micrograd computes in Python floats: float64 only"
    tensors = [entry["name"] for entry in graph["inputs"] if entry["shape"]]
    return f"micrograd has scalars only (input {tensors[0]!r} is a tensor)" if tensors else None


def evaluate(graph, values, cotangent):
    names = [entry["name"] for entry in graph["inputs"]]
    inputs = {n: Value(float(values[n])) for n in names}
    computed = dict(inputs)
    for node in graph["nodes"]:
        computed[node["name"]] = OPS[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
    output = computed[graph["output"]]
    (output * float(cotangent)).backward()  # v * output: its gradient is the VJP
    # Python numbers carry no dtype (relu gives the int 0): they are float64, as micrograd computes.
    return np.asarray(float(output.data)), {n: np.asarray(float(value.grad)) for n, value in inputs.items()}
