"""The planted bugs in forward mode and in second order (into `planted.MODE_BUGS`): each changes
exactly one rule of one op, and is wrong away from kinks.

- JVP_BUGS replace one op's forward-mode rule: (value, *operands, *their tangents, attrs) -> the
  value's tangent, computed from the operands' primals and tangents. Only `jvp` uses it; the
  value, the VJP and the HVP (forward over reverse, through the VJP rules) stay right.
- HVP_BUGS replace one op's VJP rule by one that reads a value as a constant (`primal` strips
  its tangent): the same numbers at first order, so `evaluate` and `jvp` stay right, and a wrong
  derivative of the VJP, so `hvp` is wrong. One per op family that has a second derivative:
  the movement ops are linear and read no value, so they have none to get wrong.
"""

from __future__ import annotations

import numpy as np

from .planted_dual import primal
from .planted_rules import Bug, _divided, _expand_reduced, _inverse_permutation, _reduce_prod_vjp, _softmax_vjp
from .planted_rules_wave2 import _conv1d, _conv1d_vjp, _count, _matmul_vjp, _stable_sigmoid


def _reduced(tangent, a, attrs):
    """A tangent summed over the reduced axes, as the reduction's result is."""
    return np.sum(tangent, axis=attrs["axis"], keepdims=attrs["keepdims"])


def _transpose_inverse(y, a, ta, attrs):
    _, inverse = _inverse_permutation(attrs["axes"], a.ndim)
    return np.transpose(ta, inverse).reshape(y.shape)  # reshaped to fit: only the numbers are wrong


def _cumprod_prefix_only(y, a, ta, attrs):
    """sum_{i <= j} (product of a_k, k < i) t_i: the factors between i and j forgotten."""
    axis = attrs["axis"]
    along, t = np.moveaxis(a, axis, -1), np.moveaxis(ta, axis, -1)
    before = np.cumprod(np.concatenate([np.ones_like(along[..., :1]), along[..., :-1]], axis=-1), axis=-1)
    return np.moveaxis(np.cumsum(before * t, axis=-1), -1, axis)


JVP_BUGS = {
    # The forward's sin in place of cos: right only where sin(a) = cos(a).
    "sin_tangent_uses_sin": Bug("sin", tangent=lambda y, a, ta, attrs: np.sin(a) * ta, mode="jvp"),
    # (da + y db) / b: the quotient rule's minus lost; right only where db = 0.
    "div_tangent_quotient_sign": Bug("div", tangent=lambda y, a, b, ta, tb, attrs: (ta + y * tb) / b, mode="jvp"),
    # (da + db) / 2: both weights 1/2, right only where a == b (the weights are e^(a - y), e^(b - y)).
    "logaddexp_tangent_halves": Bug("logaddexp", tangent=lambda y, a, b, ta, tb, attrs: (ta + tb) / 2, mode="jvp"),
    # The mean of the tangents, not their softmax-weighted sum (jax#22398 style): right only where
    # a slice's elements are all equal (or it has one).
    "logsumexp_tangent_unweighted": Bug(
        "logsumexp",
        tangent=lambda y, a, ta, attrs: _reduced(ta, a, attrs) / _count(a, attrs),
        mode="jvp",
    ),
    # sum(y / a_i t_i): right while no element is 0; NaN at a zero (a default audit draws zeros).
    "reduce_prod_tangent_divides_by_element": Bug(
        "reduce_prod",
        tangent=lambda y, a, ta, attrs: _reduced(_divided(_expand_reduced(y, a, attrs), a) * ta, a, attrs),
        mode="jvp",
    ),
    # The tangent moved by the inverse permutation: right only for permutations that are their
    # own inverse (every one of rank <= 2).
    "transpose_tangent_inverse_permutation": Bug("transpose", tangent=_transpose_inverse, mode="jvp"),
    # da @ b alone: the second operand's tangent dropped; right only where db = 0.
    "matmul_tangent_drops_second": Bug("matmul", tangent=lambda y, a, b, ta, tb, attrs: np.matmul(ta, b), mode="jvp"),
    # conv1d(x, dw): the input's tangent ignored; right only where dx = 0.
    "conv1d_tangent_ignores_input": Bug(
        "conv1d", tangent=lambda y, x, w, tx, tw, attrs: _conv1d(x, tw, attrs), mode="jvp"
    ),
    # A nested forward that stops at i (pytorch#196701 style): the running product's tangent
    # without the factors after a_i; right only for an axis of length 1 (and each first element).
    "cumprod_tangent_prefix_only": Bug("cumprod", tangent=_cumprod_prefix_only, mode="jvp"),
}


def _reduce_prod_others_constant_at_zeros(g, y, a, attrs):
    # d prod / d a_i with its tangent stripped where a_i = 0 (pytorch#106789 style): right for
    # slices without a zero, and at first order everywhere.
    ones = np.ones_like(primal(g))
    (others,) = _reduce_prod_vjp(ones, a, attrs)
    others = np.where(primal(a) == 0, primal(others), others)
    return (_expand_reduced(g, a, attrs) * others,)


def _conv1d_input_constant(g, y, x, w, attrs):
    gx, _ = _conv1d_vjp(g, x, w, attrs)
    _, gw = _conv1d_vjp(g, primal(x), w, attrs)  # gw = sum g * patches of x: x's tangent stripped
    return gx, gw


HVP_BUGS = {
    # y (1 - y) with y a constant: right at first order, its derivative along t lost.
    "sigmoid_vjp_value_constant": Bug(
        "sigmoid", vjp=lambda g, y, a, attrs: (g * primal(y) * (1 - primal(y)),), mode="hvp"
    ),
    "tanh_vjp_value_constant": Bug("tanh", vjp=lambda g, y, a, attrs: (g * (1 - primal(y) * primal(y)),), mode="hvp"),
    "exp_vjp_value_constant": Bug("exp", vjp=lambda g, y, a, attrs: (g * primal(y),), mode="hvp"),
    # g b and g a with the other operand a constant: the mixed second derivative lost.
    "mult_vjp_other_operand_constant": Bug(
        "mult", vjp=lambda g, y, a, b, attrs: (g * primal(b), g * primal(a)), mode="hvp"
    ),
    # g / b and -g a / b^2 with b a constant: every derivative along db lost.
    "div_vjp_denominator_constant": Bug(
        "div", vjp=lambda g, y, a, b, attrs: (g / primal(b), -g * a / (primal(b) * primal(b))), mode="hvp"
    ),
    # sigmoid(a) as a constant in softplus's VJP: its derivative, sigmoid'(a) t, lost.
    "softplus_vjp_sigmoid_constant": Bug(
        "softplus", vjp=lambda g, y, a, attrs: (g * _stable_sigmoid(primal(a)),), mode="hvp"
    ),
    # y (g - sum(g y)) with y a constant (tensorflow#7403 style): the softmax's own curvature lost.
    "softmax_vjp_value_constant": Bug(
        "softmax", vjp=lambda g, y, a, attrs: _softmax_vjp(g, primal(y), attrs), mode="hvp"
    ),
    # g a / |a| with the norm a constant: right at first order, its derivative lost.
    "norm_vjp_norm_constant": Bug(
        "norm",
        vjp=lambda g, y, a, attrs: (_expand_reduced(g, a, attrs) * a / _expand_reduced(primal(y), a, attrs),),
        mode="hvp",
    ),
    # g B^T and A^T g with the other operand a constant: the mixed second derivative lost.
    "matmul_vjp_other_operand_constant": Bug(
        "matmul", vjp=lambda g, y, a, b, attrs: _matmul_vjp(g, primal(a), primal(b)), mode="hvp"
    ),
    # The weight's gradient with the input taken as a constant (pytorch#75219 was this in a grouped
    # conv; here in every layout, since a grouped conv1d is too rare to meet within 200 graphs):
    # right at first order.
    "conv1d_vjp_input_constant": Bug("conv1d", vjp=_conv1d_input_constant, mode="hvp"),
    "reduce_prod_vjp_constant_at_zeros": Bug("reduce_prod", vjp=_reduce_prod_others_constant_at_zeros, mode="hvp"),
}

MODE_BUGS = {**JVP_BUGS, **HVP_BUGS}
