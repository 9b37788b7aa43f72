"""Engines with one planted bug each, behind the plug-in protocol: what the audit must catch.

`ReverseEngine` is a compact, correct reverse-mode interpreter of the graph format (a
different implementation from `autodiff`, so the tests do not audit our engine against
itself). Each planted bug changes exactly one rule. Audit one with, for example:

    autodiff-audit audit --engine examples.broken_engines:power_without_x
"""

from __future__ import annotations

import numpy as np


def _unbroadcast(gradient, shape):
    gradient = np.asarray(gradient)
    while gradient.ndim > len(shape):
        gradient = gradient.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and gradient.shape[axis] != 1:
            gradient = gradient.sum(axis=axis, keepdims=True)
    return gradient


def _sigmoid(a):
    return 0.5 * (1 + np.tanh(a / 2))  # an overflow-free form, different from autodiff's


def _dot_vjp(g, a, b, transpose=True):
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    g2 = np.reshape(g, (a2.shape[0], b2.shape[1]))
    if transpose:
        return (g2 @ b2.T).reshape(a.shape), (a2.T @ g2).reshape(b.shape)
    # The bug: B and A used untransposed; reshaped to fit, so only the numbers are wrong.
    return (g2 @ b2.reshape(b2.shape[::-1])).reshape(a.shape), (a2.reshape(a2.shape[::-1]) @ g2).reshape(b.shape)


def _reduce_sum_vjp(g, a, attrs):
    axis = attrs["axis"]
    if axis is not None and not attrs["keepdims"]:
        g = np.expand_dims(g, axis)
    return (np.broadcast_to(g, a.shape),)


FORWARD = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "reduce_sum": lambda a, attrs: np.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: a @ b,
    "sigmoid": lambda a, attrs: _sigmoid(a),
}

# op -> (g, value, *operands, attrs) -> one contribution per operand, before unbroadcasting.
VJP = {
    "add": lambda g, y, a, b, attrs: (g, g),
    "subtract": lambda g, y, a, b, attrs: (g, -g),
    "mult": lambda g, y, a, b, attrs: (g * b, g * a),
    "power": lambda g, y, a, attrs: (g * attrs["exponent"] * a ** (attrs["exponent"] - 1),),
    "reduce_sum": lambda g, y, a, attrs: _reduce_sum_vjp(g, a, attrs),
    "dot": lambda g, y, a, b, attrs: _dot_vjp(g, a, b),
    "sigmoid": lambda g, y, a, attrs: (g * y * (1 - y),),
}

# The planted bugs: each replaces one rule.
BUGS = {
    "power_without_x": ("power", lambda g, y, a, attrs: (g * attrs["exponent"] * np.ones_like(a),)),
    "power_exponent_off_by_one": ("power", lambda g, y, a, attrs: (g * attrs["exponent"] * a ** attrs["exponent"],)),
    "dot_missing_transpose": ("dot", lambda g, y, a, b, attrs: _dot_vjp(g, a, b, transpose=False)),
    "subtract_sign": ("subtract", lambda g, y, a, b, attrs: (g, g)),
    "mult_same_side": ("mult", lambda g, y, a, b, attrs: (g * a, g * b)),
    "sigmoid_without_one_minus": ("sigmoid", lambda g, y, a, attrs: (g * y,)),
    "add_drops_second": ("add", lambda g, y, a, b, attrs: (g, np.zeros_like(g))),
    "reduce_sum_halved": ("reduce_sum", lambda g, y, a, attrs: tuple(0.5 * c for c in _reduce_sum_vjp(g, a, attrs))),
}


class ReverseEngine:
    """A correct reverse-mode engine, unless `bug` names one of BUGS (or 'fan_out_overwritten',
    which keeps only the last contribution to a node used more than once)."""

    def __init__(self, bug: str | None = None):
        if bug is not None and bug not in BUGS and bug != "fan_out_overwritten":
            raise ValueError(f"unknown bug {bug!r}")
        self.bug = bug
        self.name = f"broken:{bug}" if bug else "reverse-engine"
        self.ops = set(FORWARD)
        self.vjp = dict(VJP)
        if bug in BUGS:
            op, rule = BUGS[bug]
            self.vjp[op] = rule

    def evaluate(self, graph, values, cotangent):
        computed = {name: np.asarray(value) for name, value in values.items()}
        for node in graph["nodes"]:
            computed[node["name"]] = np.asarray(
                FORWARD[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
            )
        adjoint = {graph["output"]: np.asarray(cotangent)}
        for node in reversed(graph["nodes"]):
            g = adjoint.get(node["name"])
            if g is None:
                continue
            operands = [computed[o] for o in node["inputs"]]
            parts = self.vjp[node["op"]](g, computed[node["name"]], *operands, node["attrs"])
            for operand, part in zip(node["inputs"], parts):
                part = _unbroadcast(part, computed[operand].shape)
                if operand in adjoint and self.bug != "fan_out_overwritten":
                    adjoint[operand] = adjoint[operand] + part
                else:
                    adjoint[operand] = part
        gradients = {entry["name"]: adjoint.get(entry["name"], np.zeros(entry["shape"])) for entry in graph["inputs"]}
        return computed[graph["output"]], gradients


correct = ReverseEngine()
fan_out_overwritten = ReverseEngine("fan_out_overwritten")
power_without_x = ReverseEngine("power_without_x")
power_exponent_off_by_one = ReverseEngine("power_exponent_off_by_one")
dot_missing_transpose = ReverseEngine("dot_missing_transpose")
subtract_sign = ReverseEngine("subtract_sign")
mult_same_side = ReverseEngine("mult_same_side")
sigmoid_without_one_minus = ReverseEngine("sigmoid_without_one_minus")
add_drops_second = ReverseEngine("add_drops_second")
reduce_sum_halved = ReverseEngine("reduce_sum_halved")
