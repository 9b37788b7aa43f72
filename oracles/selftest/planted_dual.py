"""Dual numbers over numpy arrays: forward mode and second order for the planted engines.

A `Dual` is an array (its primal) with its derivative along one direction (its tangent, of the
same shape and dtype). The planted engine's FORWARD functions run on duals give the output's
tangent, J t (`ReverseEngine.jvp`); its VJP rules run on duals after them, the cotangent a dual
with tangent 0, give each input's VJP with its derivative along t, H t (`ReverseEngine.hvp`:
forward over reverse).

Only what FORWARD and VJP use is here: the ufuncs in TANGENT_RULES and the numpy functions in
FUNCTIONS. Anything else raises TypeError, and so does `np.asarray` of a dual: a tangent
silently dropped would be a wrong answer, not a loud one. Where a function is not smooth, its
tangent follows the planted VJP's convention at the kink (relu'(0) = 0, abs'(0) = 0, a tie
shared evenly, max_pool1d's first maximum, clip's bound passing), so that the engine's forward
and reverse modes agree there too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class Dual(NDArrayOperatorsMixin):
    """An array and its tangent. Arithmetic, indexing and the numpy functions the planted rules
    use carry the tangent along; np.asarray(dual) raises."""

    __slots__ = ("primal", "tangent")

    def __init__(self, primal, tangent=None):
        self.primal = np.asarray(primal)
        if tangent is None:
            self.tangent = np.zeros_like(self.primal)
            return
        tangent = np.asarray(tangent)
        if tangent.shape != self.primal.shape:  # a constant operand's part broadcast to the result
            tangent = np.array(np.broadcast_to(tangent, self.primal.shape))
        self.tangent = tangent.astype(self.primal.dtype, copy=False)  # float32 stays float32

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a Dual has no plain array: its tangent would be lost (take .primal or .tangent)")

    def __repr__(self) -> str:
        return f"Dual({self.primal!r}, {self.tangent!r})"

    # ---- what the rules read and index -------------------------------------------------------
    shape = property(lambda self: self.primal.shape)
    ndim = property(lambda self: self.primal.ndim)
    size = property(lambda self: self.primal.size)
    dtype = property(lambda self: self.primal.dtype)
    T = property(lambda self: Dual(self.primal.T, self.tangent.T))

    def __len__(self) -> int:
        return len(self.primal)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        return Dual(self.primal[index], self.tangent[index])

    def __setitem__(self, index, value):
        self.primal[index] = primal(value)
        self.tangent[index] = tangent(value) if isinstance(value, Dual) else 0

    def reshape(self, *shape, order="C"):
        new = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Dual(self.primal.reshape(new, order=order), self.tangent.reshape(new, order=order))

    def sum(self, axis=None, keepdims=False):
        return Dual(self.primal.sum(axis=axis, keepdims=keepdims), self.tangent.sum(axis=axis, keepdims=keepdims))

    def astype(self, dtype, copy=True):
        return Dual(self.primal.astype(dtype, copy=copy), self.tangent.astype(dtype, copy=copy))

    def argmax(self, axis=None):
        return self.primal.argmax(axis=axis)

    # ---- numpy's two protocols ---------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if kwargs:
            return NotImplemented  # out=, where=, dtype=: not used by the rules
        if method == "at" and ufunc is np.add:  # np.add.at(gradient, index, part): linear
            target, index, values = inputs
            if not isinstance(target, Dual):
                return NotImplemented  # a plain target cannot hold the tangent
            np.add.at(target.primal, index, primal(values))
            if isinstance(values, Dual):
                np.add.at(target.tangent, index, values.tangent)
            return None
        if method != "__call__":
            return NotImplemented
        primals = [primal(x) for x in inputs]
        if ufunc in CONSTANT_UFUNCS:  # comparisons and signs: no tangent
            return ufunc(*primals)
        rule = TANGENT_RULES.get(ufunc)
        if rule is None:
            return NotImplemented
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = ufunc(*primals)
            tangents = [x.tangent if isinstance(x, Dual) else None for x in inputs]
            return Dual(y, rule(y, *primals, *tangents))

    def __array_function__(self, func, types, args, kwargs):
        if func in LINEAR:  # linear in its first argument (the others are indices, shapes, axes)
            first, rest = args[0], args[1:]
            if any(isinstance(x, Dual) for x in rest) or any(isinstance(x, Dual) for x in kwargs.values()):
                return NotImplemented
            primals, tangents = func(primal(first), *rest, **kwargs), func(tangent(first), *rest, **kwargs)
            if isinstance(primals, list):  # np.split
                return [Dual(p, t) for p, t in zip(primals, tangents)]
            return Dual(primals, tangents)
        rule = FUNCTIONS.get(func)
        if rule is None:
            return NotImplemented
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return rule(*args, **kwargs)


def primal(x):
    """The value of `x` (itself if it is not a dual): a rule that reads it as a constant."""
    return x.primal if isinstance(x, Dual) else x


def tangent(x):
    """The tangent of `x`: zeros of its shape if it is not a dual (a constant)."""
    return x.tangent if isinstance(x, Dual) else np.zeros_like(np.asarray(x))


def as_array(x):
    """np.asarray that leaves a dual a dual."""
    return x if isinstance(x, Dual) else np.asarray(x)


def elementwise(function, derivative):
    """`function` made dual-aware with an explicit tangent rule: d function(a) = derivative(a) da.
    For a forward numpy cannot differentiate on its own (np.vectorize(math.erf) takes np.asarray)."""

    def lifted(a):
        if not isinstance(a, Dual):
            return function(a)
        return Dual(function(a.primal), derivative(a.primal) * a.tangent)

    return lifted


# ---- ufuncs: (y, *operands, *their tangents) -> the tangent of y; a constant's tangent is None --


def _terms(*terms):
    """The sum of the terms that are there (a constant operand contributes none)."""
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0]) if present else 0


def _scaled(factor, t):
    return None if t is None else factor * t


def _power(y, a, b, ta, tb):
    # d a^b = b a^(b-1) da + a^b log(a) db; an exponent 0 has no a-term (and no 0 * inf at a = 0)
    da = None if ta is None else np.where(b == 0, 0, b * a ** np.where(b == 0, 1, b - 1)) * ta
    return _terms(da, _scaled(y * np.log(a), tb) if tb is not None else None)


def _extreme_share(a, b):
    """max(a, b) and min(a, b): the chosen side's tangent; a tie gives each side half (the VJP's split)."""
    return np.where(a == b, 0.5, 1.0)


TANGENT_RULES: dict[np.ufunc, Callable] = {
    np.add: lambda y, a, b, ta, tb: _terms(ta, tb),  # d(a + b) = da + db
    np.subtract: lambda y, a, b, ta, tb: _terms(ta, _scaled(-1, tb)),  # d(a - b) = da - db
    np.multiply: lambda y, a, b, ta, tb: _terms(_scaled(b, ta), _scaled(a, tb)),  # d(ab) = b da + a db
    # d(a/b) = da / b - a db / b^2 = (da - y db) / b
    np.true_divide: lambda y, a, b, ta, tb: _terms(_scaled(1 / b, ta), _scaled(-y / b, tb)),
    np.negative: lambda y, a, ta: -ta,  # d(-a) = -da
    np.positive: lambda y, a, ta: ta,
    np.power: _power,
    # d(A B) = dA B + A dB
    np.matmul: lambda y, a, b, ta, tb: _terms(None if ta is None else ta @ b, None if tb is None else a @ tb),
    np.exp: lambda y, a, ta: y * ta,  # d e^a = e^a da
    np.expm1: lambda y, a, ta: (y + 1) * ta,  # d (e^a - 1) = e^a da
    np.log: lambda y, a, ta: ta / a,  # d log a = da / a
    np.log1p: lambda y, a, ta: ta / (1 + a),  # d log(1 + a) = da / (1 + a)
    np.sqrt: lambda y, a, ta: ta / (2 * y),  # d sqrt(a) = da / (2 sqrt(a))
    np.tanh: lambda y, a, ta: (1 - y * y) * ta,  # d tanh a = (1 - tanh^2 a) da
    np.sin: lambda y, a, ta: np.cos(a) * ta,  # d sin a = cos a da
    np.cos: lambda y, a, ta: -np.sin(a) * ta,  # d cos a = -sin a da
    np.absolute: lambda y, a, ta: np.sign(a) * ta,  # d|a| = sign(a) da; 0 at 0, as the VJP
    # d max(a, b) = da where a > b, db where b > a, (da + db) / 2 at a tie
    np.maximum: lambda y, a, b, ta, tb: _terms(
        _scaled(_extreme_share(a, b) * (a >= b), ta), _scaled(_extreme_share(a, b) * (b >= a), tb)
    ),
    # d min(a, b) = da where a < b, db where b < a, (da + db) / 2 at a tie
    np.minimum: lambda y, a, b, ta, tb: _terms(
        _scaled(_extreme_share(a, b) * (a <= b), ta), _scaled(_extreme_share(a, b) * (b <= a), tb)
    ),
    # d log(e^a + e^b) = (e^a da + e^b db) / (e^a + e^b); each weight e^(a - y) is at most 1
    np.logaddexp: lambda y, a, b, ta, tb: _terms(_scaled(np.exp(a - y), ta), _scaled(np.exp(b - y), tb)),
    # d atan2(a, b) = (b da - a db) / (a^2 + b^2)
    np.arctan2: lambda y, a, b, ta, tb: _terms(_scaled(b / (a * a + b * b), ta), _scaled(-a / (a * a + b * b), tb)),
}
CONSTANT_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal, np.sign, np.isfinite,
    np.isnan, np.logical_and, np.logical_or, np.logical_not,
}  # fmt: skip


# ---- numpy functions -------------------------------------------------------------------------

# Linear in their first argument: the tangent goes through the same function.
LINEAR = {
    np.sum, np.mean, np.cumsum, np.transpose, np.reshape, np.broadcast_to, np.take, np.squeeze, np.expand_dims,
    np.moveaxis, np.swapaxes, np.flip, np.take_along_axis, np.split, np.pad,
}  # fmt: skip


def _joined(function):
    """concatenate and stack: linear in every operand; a constant operand's tangent is 0."""

    def join(arrays, axis=0):
        return Dual(function([primal(x) for x in arrays], axis=axis), function([tangent(x) for x in arrays], axis=axis))

    return join


def _where(condition, a, b):
    # where(c, a, b) picks tangents as it picks values; the condition is a mask, never differentiated
    return Dual(np.where(primal(condition), primal(a), primal(b)), np.where(primal(condition), tangent(a), tangent(b)))


def _zeros_like(a, dtype=None, shape=None):
    return Dual(np.zeros_like(primal(a), dtype=dtype, shape=shape))  # a dual: a gradient to write parts into


def _ones_like(a, dtype=None, shape=None):
    return np.ones_like(primal(a), dtype=dtype, shape=shape)  # a constant


def _einsum(subscripts, *operands, **kwargs):
    # multilinear: d einsum(x_1, ..., x_n) = sum_k einsum(x_1, ..., dx_k, ..., x_n)
    primals = [primal(x) for x in operands]
    terms = [
        np.einsum(subscripts, *primals[:k], x.tangent, *primals[k + 1 :], **kwargs)
        for k, x in enumerate(operands)
        if isinstance(x, Dual)
    ]
    return Dual(np.einsum(subscripts, *primals, **kwargs), _terms(*terms))


def _reduced(function):
    """max and min: d max = the tangent of the maximal element; a tie shares it evenly (as the VJP)."""

    def extreme(a, axis=None, keepdims=False):
        y = function(a.primal, axis=axis, keepdims=keepdims)
        ties = a.primal == function(a.primal, axis=axis, keepdims=True)
        shared = np.sum(a.tangent * ties, axis=axis, keepdims=True) / np.sum(ties, axis=axis, keepdims=True)
        return Dual(y, shared.reshape(np.shape(y)))

    return extreme


def _others(along):
    """The product of the other elements along the last axis, element by element, without a
    division (so right at zeros): the prefix before each element times the suffix after it."""
    ones = np.ones_like(along[..., :1])
    before = np.cumprod(np.concatenate([ones, along[..., :-1]], axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.concatenate([ones, np.flip(along, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return before * after


def _prod(a, axis=None, keepdims=False):
    # d prod(a) = sum_i (product of the others) da_i
    along = a.primal.reshape(-1) if axis is None else np.moveaxis(a.primal, axis, -1)
    others = _others(along)
    others = others.reshape(a.shape) if axis is None else np.moveaxis(others, -1, axis)
    y = np.prod(a.primal, axis=axis, keepdims=keepdims)
    return Dual(y, np.sum(others * a.tangent, axis=axis, keepdims=keepdims))


def _cumprod(a, axis=None):
    # d y_j = sum_{i <= j} (product of a_k, k <= j, k != i) da_i: the running product with a_i
    # replaced by da_i, summed over i <= j (no division, so right at zeros)
    along, t = np.moveaxis(a.primal, axis, -1), np.moveaxis(a.tangent, axis, -1)
    n = along.shape[-1]
    replaced = np.where(np.eye(n, dtype=bool), t[..., :, None], along[..., None, :])  # [..., i, k]
    runs = np.cumprod(replaced, axis=-1)  # [..., i, j]
    tangent_ = np.sum(runs * np.triu(np.ones((n, n), along.dtype)), axis=-2)  # the runs with i <= j
    return Dual(np.cumprod(a.primal, axis=axis), np.moveaxis(tangent_, -1, axis))


def _clip(a, lo, hi):
    # d clip(a) = da between the bounds, bounds included (the VJP passes g there, as PyTorch)
    return Dual(np.clip(a.primal, lo, hi), a.tangent * ((a.primal >= lo) & (a.primal <= hi)))


def _var_tangent(a, axis, ddof, keepdims):
    # d var = 2 sum((a - mean) da) / (n - ddof); the mean's own tangent sums to 0 against a - mean
    centered = a.primal - np.mean(a.primal, axis=axis, keepdims=True)
    count = a.size if axis is None else a.shape[axis]
    return 2 * np.sum(centered * a.tangent, axis=axis, keepdims=keepdims) / (count - ddof)


def _var(a, axis=None, ddof=0, keepdims=False):
    return Dual(np.var(a.primal, axis=axis, ddof=ddof, keepdims=keepdims), _var_tangent(a, axis, ddof, keepdims))


def _std(a, axis=None, ddof=0, keepdims=False):
    y = np.std(a.primal, axis=axis, ddof=ddof, keepdims=keepdims)
    return Dual(y, _var_tangent(a, axis, ddof, keepdims) / (2 * y))  # d sqrt(var) = d var / (2 std)


FUNCTIONS = {
    np.concatenate: _joined(np.concatenate),
    np.stack: _joined(np.stack),
    np.where: _where,
    np.zeros_like: _zeros_like,
    np.ones_like: _ones_like,
    np.einsum: _einsum,
    np.max: _reduced(np.max),
    np.min: _reduced(np.min),
    np.prod: _prod,
    np.cumprod: _cumprod,
    np.clip: _clip,
    np.var: _var,
    np.std: _std,
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
    np.size: lambda a: a.size,
}
