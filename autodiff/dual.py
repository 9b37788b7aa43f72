"""Dual numbers for numpy arrays: an array that carries its tangent, for second derivatives.

`Dual(primal, tangent)` stands for primal + tangent e, with e^2 = 0. Every numpy operation
on it computes the primal as numpy would and, beside it, the tangent: the derivative of the
result along the direction that the operands' tangents give (forward mode). `run_hvp` puts
one in every node's value and runs the engine's own backward() rules on them: the derivative
of a vector-Jacobian product along a direction is a Hessian-vector product, so every rule
yields one without a second rule of its own.

Only what the backward() rules use is defined: a table of ufuncs, a table of numpy
functions, the operators, indexing and a few methods. Anything else fails loudly, and so does
`np.asarray(dual)`: handing back the bare primal would drop the tangent, and the second
derivative would come out wrong without a sound. Comparisons, sign, argmax and the like look
at the primals and give plain arrays: they choose, and a choice has no derivative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def tangent_dtype(value) -> np.dtype:
    """The dtype of a tangent (or a gradient) of `value`: its own if it is a float, else float64."""
    dtype = np.result_type(value)
    return dtype if dtype.kind in "fc" else np.dtype(np.float64)


def primal_of(x):
    return x.primal if type(x) is Dual else x


def _operators(ufunc) -> tuple[Callable, Callable]:
    """An operator and its reflection, by a ufunc (`2 - x` is x.__rsub__(2), `x > a` is a < x)."""
    return (lambda self, other: ufunc(self, other)), (lambda self, other: ufunc(other, self))


class Dual:
    """A numpy array `primal` and its `tangent`, an array of the same shape."""

    __slots__ = ("primal", "tangent")
    primal: Any
    tangent: Any

    def __init__(self, primal, tangent):
        # Python scalars become numpy ones, which have a shape and a dtype.
        self.primal = primal if isinstance(primal, (np.ndarray, np.generic)) else np.asarray(primal)
        self.tangent = tangent if isinstance(tangent, (np.ndarray, np.generic)) else np.asarray(tangent)
        if self.tangent.shape != self.primal.shape:
            raise ValueError(f"a tangent of shape {self.tangent.shape} for a primal of shape {self.primal.shape}")

    def __repr__(self):
        return f"Dual({self.primal!r}, {self.tangent!r})"

    def __bool__(self):  # a choice: the primal's truth, as numpy's (ambiguous for several elements)
        return bool(self.primal)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a Dual cannot become a plain array: its tangent would be dropped")

    shape = property(lambda self: self.primal.shape)
    dtype = property(lambda self: self.primal.dtype)
    ndim = property(lambda self: self.primal.ndim)
    size = property(lambda self: self.primal.size)
    T = property(lambda self: Dual(self.primal.T, self.tangent.T))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 else shape
        return Dual(self.primal.reshape(shape), self.tangent.reshape(shape))

    def transpose(self, *axes):
        order = (axes[0] if len(axes) == 1 else axes) or None
        return Dual(self.primal.transpose(order), self.tangent.transpose(order))

    def sum(self, axis=None, keepdims=False):
        return np.sum(self, axis=axis, keepdims=keepdims)

    def astype(self, dtype):
        primal = self.primal.astype(dtype)
        return Dual(primal, self.tangent.astype(tangent_dtype(primal)))

    def __getitem__(self, index):
        return Dual(self.primal[index], self.tangent[index])

    def __setitem__(self, index, value):
        self.primal[index] = primal_of(value)
        self.tangent[index] = value.tangent if type(value) is Dual else 0  # a plain value does not move

    # The operators are numpy's ufuncs, which come back to __array_ufunc__.
    __add__, __radd__ = _operators(np.add)
    __sub__, __rsub__ = _operators(np.subtract)
    __mul__, __rmul__ = _operators(np.multiply)
    __truediv__, __rtruediv__ = _operators(np.true_divide)
    __pow__, __rpow__ = _operators(np.power)
    __matmul__, __rmatmul__ = _operators(np.matmul)
    __lt__, __gt__ = _operators(np.less)
    __le__, __ge__ = _operators(np.less_equal)
    __eq__, __ne__ = _operators(np.equal)[0], _operators(np.not_equal)[0]
    __hash__ = None  # type: ignore[assignment]  # (as numpy arrays': == is elementwise)

    def __neg__(self):
        return np.negative(self)

    def __abs__(self):
        return np.absolute(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "out" in kwargs:  # a plain output array cannot hold a tangent
            return NotImplemented
        if method == "__call__" and not kwargs:
            return _call(ufunc, inputs)
        if method == "at" and ufunc is np.add and type(inputs[0]) is Dual:
            # np.add.at(a, index, b) adds b's tangent into a's where it adds b into a.
            target, index, values = inputs
            np.add.at(target.primal, index, primal_of(values))
            if type(values) is Dual:
                np.add.at(target.tangent, index, values.tangent)
            return None
        if method == "reduce" and ufunc is np.add and set(kwargs) <= {"axis", "keepdims", "dtype"}:
            # A sum: linear, so the tangent is summed alike. (An `initial` would be added to it too.)
            (x,) = inputs
            return Dual(np.add.reduce(x.primal, **kwargs), np.add.reduce(x.tangent, **kwargs))
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        rule = _FUNCTIONS.get(func)
        if rule is None:
            return NotImplemented
        return rule(func, *args, **kwargs)


def _dual(primal, tangent):
    """A result: its tangent stretched to the primal's shape (an operand may have been broadcast)
    and put in the primal's tangent dtype."""
    shape = np.shape(primal)
    if np.shape(tangent) != shape:
        return Dual(primal, np.broadcast_to(tangent, shape).astype(tangent_dtype(primal)))
    return Dual(primal, tangent.astype(tangent_dtype(primal), copy=False))


# ---- ufuncs ---------------------------------------------------------------------------------
# For each ufunc, d result / d operand, one per operand, from the operands' primals and the
# result's y. The tangent is the sum over the operands that carry one of partial * tangent.

_PARTIALS: dict[Any, tuple[Callable, ...]] = {
    np.negative: (lambda x, y: -1,),
    np.positive: (lambda x, y: 1,),
    np.exp: (lambda x, y: y,),  # d e^x = e^x
    np.expm1: (lambda x, y: y + 1,),  # d (e^x - 1) = e^x
    np.log: (lambda x, y: 1 / x,),
    np.log1p: (lambda x, y: 1 / (1 + x),),
    np.sqrt: (lambda x, y: 0.5 / y,),  # d sqrt(x) = 1 / (2 sqrt(x))
    np.square: (lambda x, y: 2 * x,),
    np.reciprocal: (lambda x, y: -y * y,),  # d (1/x) = -1/x^2
    np.sin: (lambda x, y: np.cos(x),),
    np.cos: (lambda x, y: -np.sin(x),),
    np.tanh: (lambda x, y: 1 - y * y,),  # d tanh(x) = 1 - tanh(x)^2
    np.absolute: (lambda x, y: np.sign(x),),  # sign(0) = 0, as the engine's abs has it
    np.add: (lambda a, b, y: 1, lambda a, b, y: 1),
    np.subtract: (lambda a, b, y: 1, lambda a, b, y: -1),
    np.multiply: (lambda a, b, y: b, lambda a, b, y: a),
    np.true_divide: (lambda a, b, y: 1 / b, lambda a, b, y: -y / b),  # d (a/b) / db = -a/b^2
    # d a^b / da = b a^(b-1); d a^b / db = a^b log(a), 0 at a = 0 (a^b does not change with b
    # there), as the engine's pow has it. The second is only taken if b carries a tangent.
    np.power: (lambda a, b, y: b * np.power(a, b - 1), lambda a, b, y: y * np.log(np.where(a == 0, 1, a))),
    # max picks a side; at a tie each side has half, as the engine's maximum and minimum give.
    np.maximum: (lambda a, b, y: (a > b) + 0.5 * (a == b), lambda a, b, y: (b > a) + 0.5 * (a == b)),
    np.minimum: (lambda a, b, y: (a < b) + 0.5 * (a == b), lambda a, b, y: (b < a) + 0.5 * (a == b)),
    # d log(e^a + e^b) / da = e^a / (e^a + e^b) = e^(a - y), never above 1.
    np.logaddexp: (lambda a, b, y: np.exp(a - y), lambda a, b, y: np.exp(b - y)),
    # atan2(a, b) is the angle of (b, a): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2).
    np.arctan2: (lambda a, b, y: b / (a * a + b * b), lambda a, b, y: -a / (a * a + b * b)),
    np.hypot: (lambda a, b, y: a / y, lambda a, b, y: b / y),  # d sqrt(a^2 + b^2) / da = a / r
}

# Ufuncs that choose, or test: computed on the primals, a plain result. (sign is a step: its
# derivative is 0 wherever it has one.)
_CHOICES: set[Any] = {np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal}
_CHOICES |= {np.isfinite, np.isnan, np.isinf, np.signbit, np.sign}


def _call(ufunc, inputs):
    primals = [primal_of(x) for x in inputs]
    if ufunc in _CHOICES:
        return ufunc(*primals)
    if ufunc is np.matmul:  # d (A B) = dA B + A dB
        (a, b), (da, db) = primals, (x.tangent if type(x) is Dual else None for x in inputs)
        terms = ([] if da is None else [np.matmul(da, b)]) + ([] if db is None else [np.matmul(a, db)])
        return _dual(np.matmul(a, b), sum(terms[1:], terms[0]))
    partials = _PARTIALS.get(ufunc)
    if partials is None:
        return NotImplemented
    y = ufunc(*primals)
    tangent = None
    for x, partial in zip(inputs, partials):
        if type(x) is Dual:
            term = partial(*primals, y) * x.tangent
            tangent = term if tangent is None else tangent + term
    return _dual(y, tangent)


# ---- numpy functions --------------------------------------------------------------------------

_FUNCTIONS: dict[Any, Callable] = {}


def _rule(*funcs):
    def register(rule):
        for func in funcs:
            _FUNCTIONS[func] = rule
        return rule

    return register


@_rule(np.shape, np.ndim, np.size, np.result_type, np.argmax, np.argmin)
def _on_primals(func, *args, **kwargs):
    """What a value is, or where its maximum is: the primal's."""
    return func(*(primal_of(x) for x in args), **{key: primal_of(x) for key, x in kwargs.items()})


_MOVES = (np.reshape, np.transpose, np.moveaxis, np.swapaxes, np.broadcast_to, np.expand_dims, np.squeeze, np.flip)


@_rule(*_MOVES, np.take, np.take_along_axis, np.atleast_1d, np.copy, np.sum, np.mean, np.cumsum)
def _linear(func, x, *args, **kwargs):
    """Moves, sums and means are linear in x: the tangent goes through the same function."""
    # Not for a Dual as an index or a shape, an output array, or an `initial` constant added.
    if type(x) is not Dual or {"out", "initial"} & set(kwargs) or any(type(a) is Dual for a in args):
        return NotImplemented
    return Dual(func(x.primal, *args, **kwargs), func(x.tangent, *args, **kwargs))


@_rule(np.split)
def _split(func, x, *args, **kwargs):
    return [Dual(p, t) for p, t in zip(func(x.primal, *args, **kwargs), func(x.tangent, *args, **kwargs))]


@_rule(np.pad)
def _pad(func, x, pad_width, mode="constant", constant_values=0):
    if mode != "constant":
        return NotImplemented
    # A constant does not move: the tangent is padded with zeros.
    return Dual(np.pad(x.primal, pad_width, constant_values=constant_values), np.pad(x.tangent, pad_width))


@_rule(np.zeros_like, np.ones_like)
def _constant_like(func, x, *args, **kwargs):
    """A constant array: its tangent is 0. A Dual still, so that a backward() rule can put a Dual into it."""
    primal = func(x.primal, *args, **kwargs)
    return Dual(primal, np.zeros(primal.shape, tangent_dtype(primal)))


def _tangent_or_zeros(x):
    return x.tangent if type(x) is Dual else np.zeros(np.shape(x), tangent_dtype(x))


@_rule(np.concatenate, np.stack)
def _joined(func, arrays, *args, **kwargs):
    """Joining is linear in every operand: the tangents are joined alike (a plain operand's are 0)."""
    primal = func([primal_of(x) for x in arrays], *args, **kwargs)
    return _dual(primal, func([_tangent_or_zeros(x) for x in arrays], *args, **kwargs))


@_rule(np.where)
def _where(func, condition, a, b):
    """The tangent of the side chosen (the condition is a choice: its primal)."""
    primal = np.where(primal_of(condition), primal_of(a), primal_of(b))
    tangents = [x.tangent if type(x) is Dual else 0 for x in (a, b)]
    return _dual(primal, np.where(primal_of(condition), *tangents))


@_rule(np.einsum)
def _einsum(func, subscripts, *operands, **kwargs):
    """einsum is linear in each operand: d einsum(A, B) = einsum(dA, B) + einsum(A, dB).
    With one operand the tangent is einsum's own result, so a view (einsum("ii->i", a), the
    diagonal) stays a view, which a backward() rule may write through."""
    primals = [primal_of(x) for x in operands]
    terms = [
        np.einsum(subscripts, *primals[:k], x.tangent, *primals[k + 1 :], **kwargs)
        for k, x in enumerate(operands)
        if type(x) is Dual
    ]
    return _dual(np.einsum(subscripts, *primals, **kwargs), sum(terms[1:], terms[0]))


@_rule(np.max, np.amax, np.min, np.amin)
def _extremum(func, x, axis=None, keepdims=False):
    """The tangent of a max is the tangent of the element that is the max (the first, at a tie)."""
    if not (axis is None or isinstance(axis, (int, np.integer))):
        return NotImplemented
    pick = np.argmax if func in (np.max, np.amax) else np.argmin
    primal = func(x.primal, axis=axis, keepdims=keepdims)
    if axis is None:
        tangent = np.reshape(x.tangent, -1)[pick(x.primal)].reshape(np.shape(primal))
    else:
        tangent = np.take_along_axis(x.tangent, np.expand_dims(pick(x.primal, axis=axis), axis), int(axis))
        tangent = tangent if keepdims else np.squeeze(tangent, axis)
    return Dual(primal, tangent)


@_rule(np.cumprod)
def _cumprod(func, x, axis=None):
    """y_j = y_(j-1) x_j, so dy_j = dy_(j-1) x_j + y_(j-1) dx_j, run along the axis (no division,
    so a zero among the x is no trouble)."""
    primal, tangent = x.primal, x.tangent
    if axis is None:  # numpy's: along the flattened array
        primal, tangent, axis = np.reshape(primal, -1), np.reshape(tangent, -1), 0
    y = np.cumprod(primal, axis=axis)
    xs, dxs, ys = (np.moveaxis(np.atleast_1d(v), axis, 0) for v in (primal, tangent, y))
    dys = [dxs[0]] if len(xs) else []
    for j in range(1, len(xs)):
        dys.append(dys[-1] * xs[j] + ys[j - 1] * dxs[j])
    return _dual(y, np.moveaxis(np.stack(dys), 0, axis) if dys else np.zeros(y.shape))
