"""The planted engines' rules for the third wave's delicate functions, statistics, contractions
and windows (softplus ... max_pool1d), and their planted bugs: merged into `planted.FORWARD`,
`planted.VJP` and `planted.NEW_OP_BUGS`. Written apart from `autodiff`: the contractions and
windows go through explicit index tables (im2col for conv1d, gathered windows for
max_pool1d, a scatter onto the diagonal for einsum's repeated labels)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .planted_dual import elementwise
from .planted_rules import Bug, _expand_reduced, _unbroadcast

TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)  # a Python float: keeps float32 float32


def _stable_sigmoid(a):
    """1 / (1 + exp(-a)) to full relative precision on both sides, without overflow."""
    with np.errstate(over="ignore"):  # the branch not taken may overflow
        e = np.where(a >= 0, np.exp(-a), np.exp(a))  # exp(-|a|), at most 1; on duals its slope is right at 0 too
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(a):
    return np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))


def _log_sigmoid(a):
    return np.minimum(a, 0) - np.log1p(np.exp(-np.abs(a)))


def _plain_erf(a):
    a = np.asarray(a)
    return np.vectorize(math.erf, otypes=[a.dtype])(a)


_erf = elementwise(_plain_erf, lambda a: TWO_OVER_SQRT_PI * np.exp(-a * a))  # d erf(a) = 2 / sqrt(pi) e^(-a^2) da


# ---- var, std, norm ------------------------------------------------------------------------------


def _count(a, attrs):
    return a.size if attrs["axis"] is None else a.shape[attrs["axis"]]


def _centered(a, attrs):
    return a - np.mean(a, axis=attrs["axis"], keepdims=True)


def _var_vjp(g, a, attrs, ddof=None):
    ddof = attrs["ddof"] if ddof is None else ddof
    return (_expand_reduced(g, a, attrs) * 2 * _centered(a, attrs) / (_count(a, attrs) - ddof),)


def _std_vjp(g, y, a, attrs, divided=True):
    # d std = d var / (2 std): (a - mean) / ((n - ddof) std)
    part = _expand_reduced(g, a, attrs) * _centered(a, attrs) / (_count(a, attrs) - attrs["ddof"])
    return (part / _expand_reduced(y, a, attrs) if divided else part,)


def _norm(a, attrs):
    return np.sqrt(np.sum(a * a, axis=attrs["axis"], keepdims=attrs["keepdims"]))


# ---- matmul --------------------------------------------------------------------------------------


def _swap_last(x, by_reshape=False):
    if by_reshape:  # the bug: the last two sizes swapped by a reshape, not a transpose
        return x.reshape((*x.shape[:-2], x.shape[-1], x.shape[-2]))
    return np.swapaxes(x, -1, -2)


def _matmul_vjp(g, a, b, by_reshape=False):
    """A 1-D operand is a row (a) or a column (b) matrix; g gets the axis each one lost back."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g[..., None] if b.ndim == 1 else g
    g2 = g2[..., None, :] if a.ndim == 1 else g2
    ga = _unbroadcast(g2 @ _swap_last(b2, by_reshape), a2.shape)  # batch axes summed back
    gb = _unbroadcast(_swap_last(a2, by_reshape) @ g2, b2.shape)
    return ga.reshape(a.shape), gb.reshape(b.shape)


# ---- einsum --------------------------------------------------------------------------------------


def _einsum_vjp(g, operands, attrs, diagonal=True):
    """Operand k's part: g contracted with the other operands onto k's distinct labels (a label
    only k has is broadcast: the forward summed it), then written onto k's diagonal where a label
    repeats in its term (the other entries of such an operand do not reach the output)."""
    inputs, output = attrs["subscripts"].split("->")
    terms = inputs.split(",")
    sizes = {label: size for term, o in zip(terms, operands) for label, size in zip(term, o.shape)}
    parts = []
    for k, (term, operand) in enumerate(zip(terms, operands)):
        others = [t for j, t in enumerate(terms) if j != k]
        distinct = "".join(dict.fromkeys(term))
        seen = set(output).union(*others)
        kept = "".join(label for label in distinct if label in seen)
        contracted = np.einsum(f"{','.join([output, *others])}->{kept}", g, *operands[:k], *operands[k + 1 :])
        shape = [sizes[label] if label in kept else 1 for label in distinct]
        full = np.broadcast_to(contracted.reshape(shape), [sizes[label] for label in distinct])
        if not diagonal:  # the bug: every entry along repeated labels, as if each occurrence were its own
            spread = [full.shape[distinct.index(label)] for label in term]
            index = tuple(distinct.index(label) for label in term)
            parts.append(np.broadcast_to(_select_axes(full, index), spread).astype(g.dtype, copy=True))
            continue
        grids = np.indices(full.shape, sparse=True)
        gradient = np.zeros_like(g, shape=operand.shape)
        gradient[tuple(grids[distinct.index(label)] for label in term)] = full
        parts.append(gradient)
    return tuple(parts)


def _select_axes(full, index):
    """full's axes laid out along the term: each occurrence of a label gets its own axis,
    the first occurrence holding the values and the later ones size 1 (to be spread)."""
    shape, order, seen = [], [], set()
    for axis in index:
        shape.append(full.shape[axis] if axis not in seen else 1)
        if axis not in seen:
            order.append(axis)
        seen.add(axis)
    return np.transpose(full, order).reshape(shape)


# ---- conv1d (im2col) -----------------------------------------------------------------------------


def _conv_taps(width, kernel, attrs, unit=False):
    """(W_out, K) positions in the padded input that each output position reads, tap by tap."""
    stride, dilation = attrs["stride"], attrs["dilation"]
    out = (width + 2 * attrs["padding"] - dilation * (kernel - 1) - 1) // stride + 1
    if unit:  # the bug: positions as if stride and dilation were both 1
        stride = dilation = 1
    return np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation


def _conv_patches(x, w, attrs, taps):
    n, channels, _ = x.shape
    groups, kernel = attrs["groups"], w.shape[2]
    padded = np.pad(x, ((0, 0), (0, 0), (attrs["padding"],) * 2))
    return padded[:, :, taps].reshape(n, groups, channels // groups, len(taps), kernel), padded.shape


def _conv1d(x, w, attrs):
    patches, _ = _conv_patches(x, w, attrs, _conv_taps(x.shape[2], w.shape[2], attrs))
    grouped = w.reshape(attrs["groups"], -1, *w.shape[1:])  # (G, C_out / G, C_in / G, K)
    out = np.einsum("ngcjk,gock->ngoj", patches, grouped)
    return out.reshape(x.shape[0], w.shape[0], -1)


def _conv1d_vjp(g, x, w, attrs, unit=False):
    taps = _conv_taps(x.shape[2], w.shape[2], attrs, unit)
    patches, padded_shape = _conv_patches(x, w, attrs, taps)
    grouped = w.reshape(attrs["groups"], -1, *w.shape[1:])
    g = g.reshape(x.shape[0], attrs["groups"], -1, g.shape[2])  # (N, G, C_out / G, W_out)
    gw = np.einsum("ngoj,ngcjk->gock", g, patches).reshape(w.shape)
    g_patches = np.einsum("ngoj,gock->ngcjk", g, grouped).reshape(*x.shape[:2], *taps.shape)
    g_padded = np.zeros_like(g, shape=padded_shape)
    np.add.at(g_padded, (slice(None), slice(None), taps), g_patches)  # taps that overlap add up
    p = attrs["padding"]
    return g_padded[:, :, p : p + x.shape[2]], gw


# ---- max_pool1d ----------------------------------------------------------------------------------


def _pool_taps(width, attrs):
    kernel = attrs["kernel"]
    stride = kernel if attrs["stride"] is None else attrs["stride"]
    return np.arange((width - kernel) // stride + 1)[:, None] * stride + np.arange(kernel)[None, :]


def _max_pool1d(a, attrs):
    windows = a[..., _pool_taps(a.shape[-1], attrs)]
    first = windows.argmax(axis=-1)[..., None]  # the first maximum, where the VJP sends g (and a dual its tangent)
    return np.take_along_axis(windows, first, axis=-1)[..., 0]


def _max_pool1d_vjp(g, a, attrs, offset=True):
    taps = _pool_taps(a.shape[-1], attrs)
    first = a[..., taps].argmax(axis=-1)  # the first maximal element of each window
    where = np.take_along_axis(np.broadcast_to(taps, (*a.shape[:-1], *taps.shape)), first[..., None], -1)[..., 0]
    if not offset:  # the bug: the argmax's index within its window taken for its index in a
        where = first
    n, c = np.indices(a.shape[:-1], sparse=True)
    gradient = np.zeros_like(g, shape=a.shape)
    np.add.at(gradient, (n[..., None], c[..., None], where), g)  # a maximum shared by windows gets each part
    return (gradient,)


# ---- the tables ----------------------------------------------------------------------------------

FORWARD: dict[str, Callable] = {
    "softplus": lambda a, attrs: _softplus(a),
    "log_sigmoid": lambda a, attrs: _log_sigmoid(a),
    "log1p": lambda a, attrs: np.log1p(a),
    "expm1": lambda a, attrs: np.expm1(a),
    "logaddexp": lambda a, b, attrs: np.logaddexp(a, b),
    "erf": lambda a, attrs: _erf(a),
    "atan2": lambda a, b, attrs: np.arctan2(a, b),
    "var": lambda a, attrs: np.var(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "std": lambda a, attrs: np.std(a, axis=attrs["axis"], ddof=attrs["ddof"], keepdims=attrs["keepdims"]),
    "norm": lambda a, attrs: _norm(a, attrs),
    "matmul": lambda a, b, attrs: np.matmul(a, b),
    "einsum": lambda *args: np.einsum(args[-1]["subscripts"], *args[:-1]),  # 1 to 3 operands
    "conv1d": lambda x, w, attrs: _conv1d(x, w, attrs),
    "max_pool1d": lambda a, attrs: _max_pool1d(a, attrs),
}

# op -> (g, value, *operands, attrs) -> one contribution per operand, before unbroadcasting.
VJP: dict[str, Callable] = {
    "softplus": lambda g, y, a, attrs: (g * _stable_sigmoid(a),),
    "log_sigmoid": lambda g, y, a, attrs: (g * _stable_sigmoid(-a),),
    "log1p": lambda g, y, a, attrs: (g / (1 + a),),
    "expm1": lambda g, y, a, attrs: (g * (y + 1),),
    "logaddexp": lambda g, y, a, b, attrs: (g * np.exp(a - y), g * np.exp(b - y)),  # each at most 1
    "erf": lambda g, y, a, attrs: (g * TWO_OVER_SQRT_PI * np.exp(-a * a),),
    "atan2": lambda g, y, a, b, attrs: (g * b / (a * a + b * b), -g * a / (a * a + b * b)),
    "var": lambda g, y, a, attrs: _var_vjp(g, a, attrs),
    "std": lambda g, y, a, attrs: _std_vjp(g, y, a, attrs),
    "norm": lambda g, y, a, attrs: (_expand_reduced(g, a, attrs) * a / _expand_reduced(y, a, attrs),),
    "matmul": lambda g, y, a, b, attrs: _matmul_vjp(g, a, b),
    "einsum": lambda g, y, *args: _einsum_vjp(g, args[:-1], args[-1]),  # one part per operand
    "conv1d": lambda g, y, x, w, attrs: _conv1d_vjp(g, x, w, attrs),
    "max_pool1d": lambda g, y, a, attrs: _max_pool1d_vjp(g, a, attrs),
}


def _naive_sigmoid_vjp(g, a):
    with np.errstate(over="ignore", invalid="ignore"):  # inf / inf is the bug, quietly
        e = np.exp(-a)
        return (g * e / (1 + e) ** 2,)


# The planted bugs in these ops' rules (into planted.NEW_OP_BUGS). Each is wrong away from kinks.
BUGS = {
    # sigmoid(-a) for sigmoid(a): log_sigmoid's derivative in softplus's place; right only at 0.
    "softplus_gradient_of_log_sigmoid": Bug("softplus", lambda g, y, a, attrs: (g * _stable_sigmoid(-a),)),
    # d/da -softplus(-a) without the inner -1 of the chain rule: the sign flipped everywhere.
    "log_sigmoid_chain_rule_sign": Bug("log_sigmoid", lambda g, y, a, attrs: (-g * _stable_sigmoid(-a),)),
    "log1p_gradient_one_over_a": Bug("log1p", lambda g, y, a, attrs: (g / a,)),
    # The value where exp(a) belongs: expm1(a) = exp(a) - 1, off by g everywhere.
    "expm1_gradient_minus_one": Bug("expm1", lambda g, y, a, attrs: (g * y,)),
    # a's weight given to b too: right only where a == b.
    "logaddexp_same_weight_both_sides": Bug(
        "logaddexp", lambda g, y, a, b, attrs: (g * np.exp(a - y), g * np.exp(a - y))
    ),
    "erf_missing_two_over_sqrt_pi": Bug("erf", lambda g, y, a, attrs: (g * np.exp(-a * a),)),
    # The numerators swapped between the operands: a / r^2 and -b / r^2.
    "atan2_numerators_swapped": Bug(
        "atan2", lambda g, y, a, b, attrs: (g * a / (a * a + b * b), -g * b / (a * a + b * b))
    ),
    # Divides by n whatever ddof: right only for ddof 0.
    "var_ignores_ddof": Bug("var", lambda g, y, a, attrs: _var_vjp(g, a, attrs, ddof=0)),
    # var's rule halved, not divided by std: right only where std is 1.
    "std_gradient_missing_one_over_std": Bug("std", lambda g, y, a, attrs: _std_vjp(g, y, a, attrs, divided=False)),
    # g * a: the norm's gradient not divided by the norm; right only at norm 1.
    "norm_gradient_not_divided": Bug("norm", lambda g, y, a, attrs: (_expand_reduced(g, a, attrs) * a,)),
    # A reshape for a transpose (the other operand's last two axes): right only where one of them has size 1.
    "matmul_transpose_by_reshape": Bug("matmul", lambda g, y, a, b, attrs: _matmul_vjp(g, a, b, by_reshape=True)),
    # A repeated label's entries all get g, not only the diagonal's: right while no label repeats in a term.
    "einsum_ignores_diagonal": Bug("einsum", lambda g, y, *args: _einsum_vjp(g, args[:-1], args[-1], diagonal=False)),
    # The backward's index table as for stride 1 and dilation 1: right only where both are 1 (or K = W_out = 1).
    "conv1d_backward_ignores_stride_and_dilation": Bug(
        "conv1d", lambda g, y, x, w, attrs: _conv1d_vjp(g, x, w, attrs, unit=True)
    ),
    # The argmax's index within its window used as its index in a (the window's start not added):
    # right only where there is one window.
    "max_pool1d_argmax_without_window_offset": Bug(
        "max_pool1d", lambda g, y, a, attrs: _max_pool1d_vjp(g, a, attrs, offset=False)
    ),
    # g exp(-a) / (1 + exp(-a))^2: right, until exp(-a) overflows (a < -709, -88 in float32): inf / inf.
    "sigmoid_naive_far_out": Bug("sigmoid", lambda g, y, a, attrs: _naive_sigmoid_vjp(g, a)),
}
