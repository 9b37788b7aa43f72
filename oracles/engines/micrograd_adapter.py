"""micrograd (Karpathy's scalar engine) behind the plug-in protocol. It has scalars only, in
Python floats: it declines tensors and float32 graphs (audit it with `--max-rank 0`), and has
+, -, *, /, a number power, negation and relu; reverse mode only (no `jvp`, no `hvp`). The layout of
the module is compose.py's."""

from collections.abc import Callable
from importlib.metadata import version

import numpy as np
from micrograd.engine import Value

from .compose import plug_in

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


def vjp_of(function, arrays, cotangent):
    """The value and the VJP by micrograd's `backward`: every input a scalar `Value` of its float (the
    arrays and the cotangent are 0-d), and `backward` of cotangent * output, whose gradient is the VJP."""
    inputs = [Value(float(a)) for a in arrays]
    output = function(*inputs)
    (output * float(cotangent)).backward()  # v * output: its gradient is the VJP
    # Python numbers carry no dtype (relu gives the int 0): they are float64, as micrograd computes.
    return np.asarray(float(output.data)), [np.asarray(float(value.grad)) for value in inputs]


# No `jvp` nor `hvp` at all (not None): graph-format.md's optional modes are the functions a plug-in defines.
evaluate, _, _ = plug_in(OPS, vjp_of)
