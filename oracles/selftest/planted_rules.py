"""The rules of the planted engines' correct reverse-mode interpreter (`planted.ReverseEngine`),
and the variants its planted bugs use: each op's VJP helpers, written apart from `autodiff` (a
different formula where there is one), so the tests never audit our engine against itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .planted_dual import as_array


class Bug(NamedTuple):
    """One planted bug: the op whose rule it replaces, the replacement (a VJP rule, a forward, or
    a forward-mode rule: (value, *operands, *their tangents, attrs) -> the value's tangent, which
    only `jvp` uses), and the derivative mode it is wrong in (vjp, jvp or hvp)."""

    op: str
    vjp: Callable | None = None
    forward: Callable | None = None
    tangent: Callable | None = None
    mode: str = "vjp"


def _unbroadcast(gradient, shape):
    gradient = as_array(gradient)  # a dual stays a dual (hvp)
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


def _expand_reduced(g, a, attrs):
    """The cotangent of a reduction, given back its reduced axes so it broadcasts against `a`."""
    axis = attrs["axis"]
    if axis is None:
        return np.reshape(g, (1,) * a.ndim)
    return g if attrs["keepdims"] else np.expand_dims(g, axis)


def _reduce_sum_vjp(g, a, attrs):
    return (np.broadcast_to(_expand_reduced(g, a, attrs), a.shape),)


def _reduce_mean_vjp(g, a, attrs, count=None):
    if count is None:
        count = a.size if attrs["axis"] is None else a.shape[attrs["axis"]]
    return (np.broadcast_to(_expand_reduced(g, a, attrs), a.shape) / count,)


def _reduce_max_vjp(g, y, a, attrs, to_every_element=False):
    top = _expand_reduced(y, a, attrs)
    winners = np.ones(a.shape, a.dtype) if to_every_element else (a == top).astype(a.dtype)
    count = winners.sum(axis=attrs["axis"], keepdims=True)  # a tie shares its cotangent evenly
    return (_expand_reduced(g, a, attrs) * winners / count,)


def _inverse_permutation(axes, ndim):
    perm = list(range(ndim))[::-1] if axes is None else list(axes)
    return perm, list(np.argsort(perm))


def _transpose_vjp(g, a, attrs, use_inverse=True):
    perm, inverse = _inverse_permutation(attrs["axes"], a.ndim)
    return (np.transpose(g, inverse if use_inverse else perm),)


def _along(attrs):
    return {"axis": attrs["axis"], "keepdims": True}


def _logsumexp(a, attrs, stable=True):
    top = np.max(a, axis=attrs["axis"], keepdims=True) if stable else 0.0
    total = top + np.log(np.sum(np.exp(a - top), axis=attrs["axis"], keepdims=True))
    if attrs.get("keepdims", True):
        return total
    return total.reshape(()) if attrs["axis"] is None else np.squeeze(total, axis=attrs["axis"])


def _softmax(a, attrs):
    return np.exp(a - _logsumexp(a, _along(attrs)))


def _softmax_vjp(g, y, attrs, diagonal_only=False):
    if diagonal_only:  # the bug: d y_i / d a_i alone, as if softmax were elementwise
        return (g * y * (1 - y),)
    return (y * (g - np.sum(g * y, axis=attrs["axis"], keepdims=True)),)


def _maximum_vjp(g, a, b, strict=False):
    if strict:  # the bug: a tie (or the same operand twice) gives neither side anything
        return g * (a > b), g * (b > a)
    share = np.where(a == b, 0.5, 1.0).astype(g.dtype)
    return g * share * (a >= b), g * share * (b >= a)


def _broadcast_to_vjp(g, a, summed=True):
    if summed:
        return (g,)  # summed back to a's shape by _unbroadcast
    # The bug: the first copy along each stretched axis, instead of the sum of all copies.
    lead = g.ndim - a.ndim
    first = g[(0,) * lead]
    index = tuple(slice(0, 1) if size == 1 else slice(None) for size in a.shape)
    return (first[index],)


def _divided(numerator, a):
    """numerator / a, quietly: the planted `out / a` rules give inf or NaN at a zero, which is their bug."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / a


def _each_replaced_by_one(b):
    """(..., n) -> (..., n, n): row i is b with its i-th entry replaced by 1 (no division anywhere)."""
    one_hot = np.eye(b.shape[-1], dtype=bool)
    return np.where(one_hot, np.ones((), b.dtype), b[..., None, :])


def _reduce_prod_vjp(g, a, attrs):
    # d prod / d a_i is the product of the slice with a_i replaced by 1: right at any number of zeros.
    axis = attrs["axis"]
    along = a.reshape(-1) if axis is None else np.moveaxis(a, axis, -1)
    others = np.prod(_each_replaced_by_one(along), axis=-1)
    others = others.reshape(a.shape) if axis is None else np.moveaxis(others, -1, axis)
    return (_expand_reduced(g, a, attrs) * others,)


def _reverse_cumsum(g, axis):
    return np.flip(np.cumsum(np.flip(g, axis), axis), axis)


def _cumprod_vjp(g, a, attrs):
    # d y_j / d a_i (j >= i) is the running product up to j with a_i replaced by 1.
    axis = attrs["axis"]
    along, g_along = np.moveaxis(a, axis, -1), np.moveaxis(g, axis, -1)
    partial = np.cumprod(_each_replaced_by_one(along), axis=-1)  # [..., i, j]
    later = np.triu(np.ones(partial.shape[-2:], a.dtype))  # j >= i
    return (np.moveaxis(np.sum(partial * later * g_along[..., None, :], axis=-1), -1, axis),)


def _minimum_vjp(g, a, b):
    share = np.where(a == b, 0.5, 1.0).astype(g.dtype)  # a tie splits g evenly, as maximum's
    return g * share * (a <= b), g * share * (b <= a)


def _bounds(a, attrs):
    return a.dtype.type(attrs["lo"]), a.dtype.type(attrs["hi"])


def _clip_vjp(g, a, attrs, bounded=True):
    if not bounded:  # the bug: the gradient passes where the value was clipped too
        return (g,)
    lo, hi = _bounds(a, attrs)
    return (g * ((a >= lo) & (a <= hi)),)  # the bound itself passes g, as PyTorch


def _mask(attrs):
    return np.asarray(attrs["mask"], dtype=bool)


def _where_vjp(g, attrs, both_sides=False):
    if both_sides:  # the bug: g to a and to b, whichever the mask chose
        return g, g
    zero = np.zeros_like(g)
    mask = _mask(attrs)  # each part in the broadcast shape; _unbroadcast sums it back to its operand
    return np.where(mask, g, zero), np.where(mask, zero, g)


def _take_vjp(g, a, attrs, accumulate=True):
    indices = np.asarray(attrs["indices"], dtype=np.intp)
    index = (slice(None),) * (attrs["axis"] % a.ndim) + (indices,)
    gradient = np.zeros_like(g, shape=a.shape)  # a dual g: a dual gradient
    if accumulate:
        np.add.at(gradient, index, g)  # a repeated index adds up its parts
    else:
        gradient[index] = g  # the bug: a repeated index keeps only its last part
    return (gradient,)


def _slices(attrs):
    return tuple(map(slice, attrs["starts"], attrs["stops"], attrs["steps"]))


def _slice_vjp(g, a, attrs, stepped=True):
    gradient = np.zeros_like(g, shape=a.shape)  # a dual g: a dual gradient
    if stepped:
        gradient[_slices(attrs)] = g
        return (gradient,)
    # The bug: each axis's part goes to a step-1 block from its lowest selected index (the right shape).
    kept = [np.arange(size)[part] for size, part in zip(a.shape, _slices(attrs))]
    gradient[np.ix_(*(np.arange(len(k)) + (k.min() if len(k) else 0) for k in kept))] = g
    return (gradient,)


def _concatenate_vjp(g, operands, attrs, flat=False):
    if flat:  # the bug: operand after operand of g's flat (C-order) buffer, as a concatenation along axis 0
        ends = np.cumsum([o.size for o in operands])[:-1]
        return tuple(part.reshape(o.shape) for part, o in zip(np.split(g.reshape(-1), ends), operands))
    axis = attrs["axis"] % g.ndim
    ends = np.cumsum([o.shape[axis] for o in operands])[:-1]
    return tuple(np.split(g, ends, axis=axis))


def _stack_vjp(g, operands, attrs, ndim_plus_one=True):
    axis = attrs["axis"]
    if ndim_plus_one:  # the new axis counts from the end of the result, which has ndim + 1 axes
        return tuple(np.take(g, i, axis=axis % g.ndim) for i in range(len(operands)))
    # The bug: a negative axis normalised against the operands' ndim, one axis too early; reshaped to fit.
    axis = axis if axis >= 0 else axis + operands[0].ndim
    return tuple(np.moveaxis(g, axis, 0).reshape((len(operands), *operands[0].shape)))
