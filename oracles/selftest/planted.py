"""Engines with one planted bug each, behind the plug-in protocol: what the audit must catch,
and what `autodiff-audit selftest` measures the audit's power with.

`ReverseEngine` is a compact, correct reverse-mode interpreter of the graph format (a
different implementation from `autodiff`, so the tests do not audit our engine against
itself). Each planted bug changes exactly one rule:
- BUGS: one op's local rule (SEED_BUGS in the seed's seven ops, NEW_OP_BUGS in the rest);
  an op of the table with no bug here has its reason in NOT_PLANTED;
- ENGINE_BUGS: how the engine combines rules: composition (fan-out, the same operand twice),
  broadcasting, dtype, and a crash;
- MODE_BUGS: one op's forward-mode rule (wrong J t), or a VJP rule that reads a value as a
  constant (right at first order, wrong H t): what `--modes jvp,hvp` sees (planted_modes.py);
- CONVENTIONS: valid answers at a kink that no reference gives (findings only in kink mode).

Audit one with, for example (examples/broken_engines.py re-exports them all):

    autodiff-audit audit --engine examples.broken_engines:power_without_x
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import planted_rules_wave2 as wave2
from .planted_dual import Dual, as_array, primal, tangent
from .planted_modes import MODE_BUGS
from .planted_rules import (
    Bug,
    _along,
    _bounds,
    _broadcast_to_vjp,
    _clip_vjp,
    _concatenate_vjp,
    _cumprod_vjp,
    _divided,
    _dot_vjp,
    _expand_reduced,
    _logsumexp,
    _mask,
    _maximum_vjp,
    _minimum_vjp,
    _reduce_max_vjp,
    _reduce_mean_vjp,
    _reduce_prod_vjp,
    _reduce_sum_vjp,
    _reverse_cumsum,
    _sigmoid,
    _slice_vjp,
    _slices,
    _softmax,
    _softmax_vjp,
    _stack_vjp,
    _take_vjp,
    _transpose_vjp,
    _unbroadcast,
    _where_vjp,
)

FORWARD: dict[str, Callable] = {
    "add": lambda a, b, attrs: a + b,
    "subtract": lambda a, b, attrs: a - b,
    "mult": lambda a, b, attrs: a * b,
    "power": lambda a, attrs: a ** attrs["exponent"],
    "reduce_sum": lambda a, attrs: np.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "dot": lambda a, b, attrs: a @ b,
    "sigmoid": lambda a, attrs: _sigmoid(a),
    "neg": lambda a, attrs: -a,
    "exp": lambda a, attrs: np.exp(a),
    "log": lambda a, attrs: np.log(a),
    "sqrt": lambda a, attrs: np.sqrt(a),
    "tanh": lambda a, attrs: np.tanh(a),
    "sin": lambda a, attrs: np.sin(a),
    "cos": lambda a, attrs: np.cos(a),
    "relu": lambda a, attrs: a * (a > 0),
    "abs": lambda a, attrs: np.abs(a),
    "div": lambda a, b, attrs: a / b,
    "maximum": lambda a, b, attrs: np.maximum(a, b),
    "pow": lambda a, b, attrs: a**b,
    "reduce_mean": lambda a, attrs: np.mean(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "reduce_max": lambda a, attrs: np.max(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "transpose": lambda a, attrs: np.transpose(a, attrs["axes"]),
    "reshape": lambda a, attrs: np.reshape(a, attrs["shape"]),
    "broadcast_to": lambda a, attrs: np.broadcast_to(a, attrs["shape"]),
    "softmax": lambda a, attrs: _softmax(a, attrs),
    "log_softmax": lambda a, attrs: a - _logsumexp(a, _along(attrs)),
    "logsumexp": lambda a, attrs: _logsumexp(a, attrs),
    "reduce_prod": lambda a, attrs: np.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "cumsum": lambda a, attrs: np.cumsum(a, axis=attrs["axis"]),
    "cumprod": lambda a, attrs: np.cumprod(a, axis=attrs["axis"]),
    "minimum": lambda a, b, attrs: np.minimum(a, b),
    "reduce_min": lambda a, attrs: np.min(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
    "clip": lambda a, attrs: np.clip(a, *_bounds(a, attrs)),
    "where": lambda a, b, attrs: np.where(_mask(attrs), a, b),
    "take": lambda a, attrs: np.take(a, np.asarray(attrs["indices"], dtype=np.intp), axis=attrs["axis"]),
    "slice": lambda a, attrs: a[_slices(attrs)],
    "concatenate": lambda *args: np.concatenate(args[:-1], axis=args[-1]["axis"]),  # 2 to 4 operands
    "stack": lambda *args: np.stack(args[:-1], axis=args[-1]["axis"]),
    **wave2.FORWARD,  # softplus ... max_pool1d (planted_rules_wave2.py)
}

# op -> (g, value, *operands, attrs) -> one contribution per operand, before unbroadcasting.
VJP: dict[str, Callable] = {
    "add": lambda g, y, a, b, attrs: (g, g),
    "subtract": lambda g, y, a, b, attrs: (g, -g),
    "mult": lambda g, y, a, b, attrs: (g * b, g * a),
    "power": lambda g, y, a, attrs: (g * attrs["exponent"] * a ** (attrs["exponent"] - 1),),
    "reduce_sum": lambda g, y, a, attrs: _reduce_sum_vjp(g, a, attrs),
    "dot": lambda g, y, a, b, attrs: _dot_vjp(g, a, b),
    "sigmoid": lambda g, y, a, attrs: (g * y * (1 - y),),
    "neg": lambda g, y, a, attrs: (-g,),
    "exp": lambda g, y, a, attrs: (g * y,),
    "log": lambda g, y, a, attrs: (g / a,),
    "sqrt": lambda g, y, a, attrs: (g / (2 * y),),
    "tanh": lambda g, y, a, attrs: (g * (1 - y * y),),
    "sin": lambda g, y, a, attrs: (g * np.cos(a),),
    "cos": lambda g, y, a, attrs: (-g * np.sin(a),),
    "relu": lambda g, y, a, attrs: (g * (a > 0),),  # relu'(0) = 0, as PyTorch and JAX
    "abs": lambda g, y, a, attrs: (g * np.sign(a),),  # abs'(0) = 0, as PyTorch
    "div": lambda g, y, a, b, attrs: (g / b, -g * a / (b * b)),
    "maximum": lambda g, y, a, b, attrs: _maximum_vjp(g, a, b),
    "pow": lambda g, y, a, b, attrs: (g * b * a ** (b - 1), g * y * np.log(a)),
    "reduce_mean": lambda g, y, a, attrs: _reduce_mean_vjp(g, a, attrs),
    "reduce_max": lambda g, y, a, attrs: _reduce_max_vjp(g, y, a, attrs),
    "transpose": lambda g, y, a, attrs: _transpose_vjp(g, a, attrs),
    "reshape": lambda g, y, a, attrs: (np.reshape(g, a.shape),),
    "broadcast_to": lambda g, y, a, attrs: _broadcast_to_vjp(g, a),
    "softmax": lambda g, y, a, attrs: _softmax_vjp(g, y, attrs),
    "log_softmax": lambda g, y, a, attrs: (g - np.exp(y) * np.sum(g, axis=attrs["axis"], keepdims=True),),
    "logsumexp": lambda g, y, a, attrs: (_expand_reduced(g, a, attrs) * np.exp(a - _expand_reduced(y, a, attrs)),),
    "reduce_prod": lambda g, y, a, attrs: _reduce_prod_vjp(g, a, attrs),
    "cumsum": lambda g, y, a, attrs: (_reverse_cumsum(g, attrs["axis"]),),
    "cumprod": lambda g, y, a, attrs: _cumprod_vjp(g, a, attrs),
    "minimum": lambda g, y, a, b, attrs: _minimum_vjp(g, a, b),
    "reduce_min": lambda g, y, a, attrs: _reduce_max_vjp(g, y, a, attrs),  # a == y finds the minima: ties split
    "clip": lambda g, y, a, attrs: _clip_vjp(g, a, attrs),
    "where": lambda g, y, a, b, attrs: _where_vjp(g, attrs),
    "take": lambda g, y, a, attrs: _take_vjp(g, a, attrs),
    "slice": lambda g, y, a, attrs: _slice_vjp(g, a, attrs),
    "concatenate": lambda g, y, *args: _concatenate_vjp(g, args[:-1], args[-1]),  # one part per operand
    "stack": lambda g, y, *args: _stack_vjp(g, args[:-1], args[-1]),
    **wave2.VJP,
}


# The planted bugs: each replaces one rule. SEED_BUGS are in the seed's seven ops; NEW_OP_BUGS
# are in the wider op set. Every one of them is wrong away from kinks, where a default audit looks.
SEED_BUGS = {
    "power_without_x": Bug("power", lambda g, y, a, attrs: (g * attrs["exponent"] * np.ones_like(a),)),
    "power_exponent_off_by_one": Bug("power", lambda g, y, a, attrs: (g * attrs["exponent"] * a ** attrs["exponent"],)),
    "dot_missing_transpose": Bug("dot", lambda g, y, a, b, attrs: _dot_vjp(g, a, b, transpose=False)),
    "subtract_sign": Bug("subtract", lambda g, y, a, b, attrs: (g, g)),
    "mult_same_side": Bug("mult", lambda g, y, a, b, attrs: (g * a, g * b)),
    "sigmoid_without_one_minus": Bug("sigmoid", lambda g, y, a, attrs: (g * y,)),
    "add_drops_second": Bug("add", lambda g, y, a, b, attrs: (g, np.zeros_like(g))),
    "reduce_sum_halved": Bug("reduce_sum", lambda g, y, a, attrs: tuple(0.5 * c for c in _reduce_sum_vjp(g, a, attrs))),
}
NEW_OP_BUGS = {
    # Correct only for permutations that are their own inverse (every one of rank <= 2).
    "transpose_with_permutation": Bug(
        "transpose", lambda g, y, a, attrs: _transpose_vjp(g, a, attrs, use_inverse=False)
    ),
    "softmax_diagonal_jacobian": Bug("softmax", lambda g, y, a, attrs: _softmax_vjp(g, y, attrs, diagonal_only=True)),
    # Divides by every element's count, right only for a mean over all axes.
    "reduce_mean_wrong_count": Bug("reduce_mean", lambda g, y, a, attrs: _reduce_mean_vjp(g, a, attrs, count=a.size)),
    "reduce_max_to_every_element": Bug(
        "reduce_max", lambda g, y, a, attrs: _reduce_max_vjp(g, y, a, attrs, to_every_element=True)
    ),
    # Fortran order: right only when the order of the elements does not matter (a vector, a scalar).
    "reshape_gradient_wrong_order": Bug("reshape", lambda g, y, a, attrs: (np.reshape(g, a.shape, order="F"),)),
    "broadcast_to_first_copy": Bug("broadcast_to", lambda g, y, a, attrs: _broadcast_to_vjp(g, a, summed=False)),
    "log_softmax_without_sum": Bug("log_softmax", lambda g, y, a, attrs: (g - np.exp(y) * g,)),
    # exp(a) / sum(exp(a)) without the max shift: inf / inf past 709 (88 in float32).
    "logsumexp_unstable": Bug("logsumexp", forward=lambda a, attrs: _logsumexp(a, attrs, stable=False)),
    "exp_gradient_without_value": Bug("exp", lambda g, y, a, attrs: (g,)),
    "log_gradient_squared": Bug("log", lambda g, y, a, attrs: (g / (a * a),)),
    "sqrt_missing_half": Bug("sqrt", lambda g, y, a, attrs: (g / y,)),
    "div_denominator_sign": Bug("div", lambda g, y, a, b, attrs: (g / b, g * a / (b * b))),
    "pow_exponent_without_log": Bug("pow", lambda g, y, a, b, attrs: (g * b * a ** (b - 1), g * y)),
    # A tie, and so the same operand twice (maximum(x, x)), gives neither side any part.
    "maximum_strict_both_sides": Bug("maximum", lambda g, y, a, b, attrs: _maximum_vjp(g, a, b, strict=True)),
    "relu_gradient_unmasked": Bug("relu", lambda g, y, a, attrs: (g,)),
    "abs_gradient_without_sign": Bug("abs", lambda g, y, a, attrs: (g,)),
    "tanh_gradient_plus": Bug("tanh", lambda g, y, a, attrs: (g * (1 + y * y),)),
    "cos_gradient_sign": Bug("cos", lambda g, y, a, attrs: (g * np.sin(a),)),
    "neg_gradient_identity": Bug("neg", lambda g, y, a, attrs: (g,)),
    # The forward's sin in place of cos: right only where sin(a) = cos(a).
    "sin_gradient_uses_sin": Bug("sin", lambda g, y, a, attrs: (g * np.sin(a),)),
    # The classic out / a: right while no element is 0, inf or NaN at a zero (a default audit draws zeros).
    "reduce_prod_divides_by_element": Bug(
        "reduce_prod", lambda g, y, a, attrs: (_divided(_expand_reduced(g * y, a, attrs), a),)
    ),
    # A running sum of g from the front, not from the back: right only along an axis of length 1.
    "cumsum_not_reversed": Bug("cumsum", lambda g, y, a, attrs: (np.cumsum(g, axis=attrs["axis"]),)),
    # Reversed running sum of g * out, over a: right while no element is 0, inf or NaN from a zero on.
    "cumprod_divides_by_element": Bug(
        "cumprod", lambda g, y, a, attrs: (_divided(_reverse_cumsum(g * y, attrs["axis"]), a),)
    ),
    # Maximum's rule copied: g goes to the larger operand; right nowhere off a tie.
    "minimum_gives_to_larger": Bug("minimum", lambda g, y, a, b, attrs: _maximum_vjp(g, a, b)),
    # g to every element of the slice, not to its minimum: right only for a slice of one element.
    "reduce_min_to_every_element": Bug(
        "reduce_min", lambda g, y, a, attrs: _reduce_max_vjp(g, y, a, attrs, to_every_element=True)
    ),
    # The bounds ignored: right only where no element was clipped.
    "clip_passes_everything": Bug("clip", lambda g, y, a, attrs: _clip_vjp(g, a, attrs, bounded=False)),
    # g to both sides, ignoring the mask: wrong for any mask (the side not chosen should get 0).
    "where_to_both_sides": Bug("where", lambda g, y, a, b, attrs: _where_vjp(g, attrs, both_sides=True)),
    # Assignment instead of np.add.at: right only while no index repeats.
    "take_overwrites_repeats": Bug("take", lambda g, y, a, attrs: _take_vjp(g, a, attrs, accumulate=False)),
    # g in a step-1 block from the lowest selected index: right only where every step is 1 (or keeps one element).
    "slice_ignores_step": Bug("slice", lambda g, y, a, attrs: _slice_vjp(g, a, attrs, stepped=False)),
    # g split as a flat buffer, as along axis 0: right only for axis 0 (or -ndim), or leading axes of size 1.
    "concatenate_split_as_axis_0": Bug(
        "concatenate", lambda g, y, *args: _concatenate_vjp(g, args[:-1], args[-1], flat=True)
    ),
    # A negative axis counted against the operands' ndim, one axis too early: right for every axis >= 0.
    "stack_negative_axis_off_by_one": Bug(
        "stack", lambda g, y, *args: _stack_vjp(g, args[:-1], args[-1], ndim_plus_one=False)
    ),
    # One in each of the delicate functions, statistics, contractions and windows, and sigmoid's
    # rule in its naive form, NaN far out only (what they do: planted_rules_wave2.BUGS).
    **wave2.BUGS,
}
BUGS = {**SEED_BUGS, **NEW_OP_BUGS}

# The ops of the table with no planted bug in BUGS, and why not (op -> reason). Every other op
# has at least one; tests/test_adding_an_op.py fails on an op with neither, and on a stale reason.
NOT_PLANTED: dict[str, str] = {}

# Valid answers at a kink that no reference gives: `convention` findings in kink mode, passes elsewhere.
CONVENTIONS = {
    "relu_derivative_one_at_zero": Bug("relu", lambda g, y, a, attrs: (g * (a >= 0),)),
    "abs_derivative_half_at_zero": Bug(
        "abs", lambda g, y, a, attrs: (g * np.where(a == 0, 0.5, np.sign(a)).astype(g.dtype),)
    ),
}


# Bugs in how the engine puts rules together, by what they break.
ENGINE_BUGS = {
    "fan_out_overwritten": ("composition", "a node used by several nodes keeps only the last one's gradient"),
    "same_operand_overwritten": (
        "composition",
        "an operand in both slots of one node (mult(x, x)) keeps one slot's part",
    ),
    "unbroadcast_takes_first": (
        "broadcasting",
        "a broadcast operand's gradient takes the first copy along a size-1 axis",
    ),
    "other_dtype": ("dtype", "computes and answers a graph in the other dtype (float32 for float64, and back)"),
    "dot_crashes_on_vectors": ("crash", "dot raises on a 1-D operand"),
}


def _unbroadcast_first_copy(gradient, shape):
    """The broadcasting bug: leading axes summed, but a size-1 axis keeps only its first copy."""
    gradient = as_array(gradient)
    while gradient.ndim > len(shape):
        gradient = gradient.sum(axis=0)
    index = tuple(slice(0, 1) if size == 1 and gradient.shape[axis] != 1 else slice(None)
                  for axis, size in enumerate(shape))  # fmt: skip
    return gradient[index]


class ReverseEngine:
    """A correct reverse-mode engine, unless `bug` names one of BUGS, MODE_BUGS, ENGINE_BUGS or
    CONVENTIONS. Forward mode (`jvp`) runs the FORWARD functions on dual arrays; second order
    (`hvp`) runs them, then the VJP rules, on dual arrays (planted_dual.py): forward over reverse.
    The engine bugs are in the passes all three share."""

    def __init__(self, bug: str | None = None):
        planted = {**BUGS, **MODE_BUGS, **CONVENTIONS}
        if bug is not None and bug not in planted and bug not in ENGINE_BUGS and bug != "upcast":
            raise ValueError(f"unknown bug {bug!r}")
        self.bug = bug
        self.name = f"broken:{bug}" if bug else "reverse-engine"
        self.forward: dict[str, Callable] = dict(FORWARD)
        self.vjp: dict[str, Callable] = dict(VJP)
        self.tangent: dict[str, Callable] = {}  # forward-mode rules that replace the dual arithmetic (jvp only)
        self.ops = self.forward.keys()
        if bug in planted:
            replacement = planted[bug]
            if replacement.vjp is not None:
                self.vjp[replacement.op] = replacement.vjp
            if replacement.forward is not None:
                self.forward[replacement.op] = replacement.forward
            if replacement.tangent is not None:
                self.tangent[replacement.op] = replacement.tangent

    def _dtype(self, graph) -> np.dtype:
        dtype = np.dtype(graph["dtype"])
        if self.bug == "upcast" or (self.bug == "other_dtype" and dtype == np.float32):
            return np.dtype(np.float64)
        return np.dtype(np.float32) if self.bug == "other_dtype" else dtype

    def evaluate(self, graph, values, cotangent):
        dtype = self._dtype(graph)
        computed = self._forward(graph, {name: np.asarray(value, dtype=dtype) for name, value in values.items()})
        adjoint = self._backward(graph, computed, np.asarray(cotangent, dtype=dtype))
        gradients = {
            entry["name"]: adjoint.get(entry["name"], np.zeros(entry["shape"], dtype=dtype))
            for entry in graph["inputs"]
        }
        return computed[graph["output"]], gradients

    def jvp(self, graph, values, tangents):
        """The output's value and J t: the forward pass on duals (x, t)."""
        dtype = self._dtype(graph)
        computed = self._forward(graph, self._duals(values, tangents, dtype), tangent_rules=True)
        output = computed[graph["output"]]
        return primal(output), tangent(output)

    def hvp(self, graph, values, cotangent, tangents):
        """H t of sum(cotangent * output): the VJP rules run on the duals of the forward pass, the
        cotangent held fixed (its tangent 0); each input's gradient's tangent is its H t."""
        dtype = self._dtype(graph)
        computed = self._forward(graph, self._duals(values, tangents, dtype))
        adjoint = self._backward(graph, computed, Dual(np.asarray(cotangent, dtype=dtype)))
        return {
            entry["name"]: tangent(adjoint[entry["name"]]) if entry["name"] in adjoint
            else np.zeros(entry["shape"], dtype=dtype)
            for entry in graph["inputs"]
        }  # fmt: skip

    @staticmethod
    def _duals(values, tangents, dtype) -> dict:
        return {n: Dual(np.asarray(v, dtype=dtype), np.asarray(tangents[n], dtype=dtype)) for n, v in values.items()}

    def _forward(self, graph, computed: dict, tangent_rules: bool = False) -> dict:
        """Every node's value (a dual's tangent by the dual arithmetic, or, with `tangent_rules`,
        by a replaced forward-mode rule of its op)."""
        for node in graph["nodes"]:
            operands = [computed[o] for o in node["inputs"]]
            if self.bug == "dot_crashes_on_vectors" and node["op"] == "dot" and min(o.ndim for o in operands) == 1:
                raise ValueError("dot: 1-D operands are not supported")
            rule = self.tangent.get(node["op"]) if tangent_rules else None
            if rule is None:
                computed[node["name"]] = as_array(self.forward[node["op"]](*operands, node["attrs"]))
                continue
            primals = [primal(o) for o in operands]
            value = np.asarray(self.forward[node["op"]](*primals, node["attrs"]))
            with np.errstate(all="ignore"):
                computed[node["name"]] = Dual(value, rule(value, *primals, *map(tangent, operands), node["attrs"]))
        return computed

    def _backward(self, graph, computed: dict, cotangent) -> dict:
        """Each node's and input's adjoint, d sum(cotangent * output) / d it, rule by rule."""
        adjoint = {graph["output"]: cotangent}
        for node in reversed(graph["nodes"]):
            g = adjoint.get(node["name"])
            if g is None:
                continue
            operands = [computed[o] for o in node["inputs"]]
            parts = self.vjp[node["op"]](g, computed[node["name"]], *operands, node["attrs"])
            unbroadcast = _unbroadcast_first_copy if self.bug == "unbroadcast_takes_first" else _unbroadcast
            before = {operand: adjoint.get(operand) for operand in node["inputs"]}
            for operand, part in zip(node["inputs"], parts):
                part = unbroadcast(part, computed[operand].shape)
                if self.bug == "same_operand_overwritten" and node["inputs"].count(operand) > 1:
                    kept = before[operand]  # this node's earlier slot is dropped
                    adjoint[operand] = part if kept is None else kept + part
                elif operand in adjoint and self.bug != "fan_out_overwritten":
                    adjoint[operand] = adjoint[operand] + part
                else:
                    adjoint[operand] = part
        return adjoint


correct = ReverseEngine()
# One module attribute per planted bug, so `--engine oracles.selftest.planted:<bug>` names it.
globals().update({bug: ReverseEngine(bug) for bug in (*BUGS, *MODE_BUGS, *ENGINE_BUGS, *CONVENTIONS, "upcast")})
# "upcast" (float32 computed and answered in float64) is the dtype bug only a float32 audit sees.
