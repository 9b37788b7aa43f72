"""Delicate elementwise functions: the textbook formula loses everything somewhere in their
domain, so each is computed by one that does not.

softplus, log_sigmoid and logaddexp overflow or round to nothing far from 0 (their
operands reach +-800 in float64), so they are written with exponents that are never
positive; log1p and expm1 lose every digit of a tiny operand in 1 + a and e^a - 1, so
numpy's own log1p and expm1 compute them; erf, which numpy lacks, is Python's math.erf
element by element; atan2 is numpy's. The binary ones broadcast, as elementwise.py's do.
"""

from __future__ import annotations

import math

import numpy as np

from .elementwise import _as_tangent_of, _sigmoid_array
from .nodes import NodeBase


def _log1p_exp_minus_abs(a):
    # log(1 + e^-|a|): the exponent is never positive, so it cannot overflow, and it is
    # 0 (not a rounding error) once e^-|a| underflows.
    return np.log1p(np.exp(-np.abs(a)))


class NodeSoftplus(NodeBase):
    """`log(1 + exp(a))`, as max(a, 0) + log(1 + exp(-|a|)) (the same value: factor e^max out)."""

    arity = 1

    def forward(self, value=None):
        a = self.inputs[0].value
        self.value = np.maximum(a, 0) + _log1p_exp_minus_abs(a)

    def backward(self):
        gradient = self.total_gradient()
        # d/da log(1 + e^a) = e^a / (1 + e^a) = sigmoid(a), which never overflows either.
        self.store_gradients(gradient, gradient * _sigmoid_array(self.inputs[0].value))

    def forward_tangent(self):
        a = self.inputs[0]
        # d softplus(a) = sigmoid(a) da
        self.tangent = _as_tangent_of(self.value, _sigmoid_array(np.asarray(a.value)) * a.tangent)


class NodeLogSigmoid(NodeBase):
    """`log(sigmoid(a))` = -softplus(-a) = min(a, 0) - log(1 + exp(-|a|))."""

    arity = 1

    def forward(self, value=None):
        a = self.inputs[0].value
        self.value = np.minimum(a, 0) - _log1p_exp_minus_abs(a)

    def backward(self):
        gradient = self.total_gradient()
        # d/da -softplus(-a) = sigmoid(-a) = 1 - sigmoid(a), computed without the cancellation.
        self.store_gradients(gradient, gradient * _sigmoid_array(-self.inputs[0].value))

    def forward_tangent(self):
        a = self.inputs[0]
        # d log_sigmoid(a) = sigmoid(-a) da
        self.tangent = _as_tangent_of(self.value, _sigmoid_array(-np.asarray(a.value)) * a.tangent)


class NodeLog1p(NodeBase):
    """`log(1 + a)`, exact for tiny a (where 1 + a would round a away)."""

    arity = 1

    def forward(self, value=None):
        self.value = np.log1p(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient / (1 + self.inputs[0].value))  # d/da log(1 + a) = 1 / (1 + a)

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = _as_tangent_of(self.value, a.tangent / (1 + a.value))  # d log(1 + a) = da / (1 + a)


class NodeExpm1(NodeBase):
    """`exp(a) - 1`, exact for tiny a (where e^a - 1 would cancel to nothing)."""

    arity = 1

    def forward(self, value=None):
        self.value = np.expm1(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient * np.exp(self.inputs[0].value))  # d/da (e^a - 1) = e^a

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = _as_tangent_of(self.value, np.exp(a.value) * a.tangent)  # d (e^a - 1) = e^a da


class NodeLogAddExp(NodeBase):
    """`log(exp(a) + exp(b))`, numpy's logaddexp (computed as max + log1p(exp(-|a - b|)))."""

    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.logaddexp(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # d/da = e^a / (e^a + e^b) = 1 / (1 + e^(b - a)) = sigmoid(a - b), and d/db = sigmoid(b - a):
        # the two sum to 1, and neither overflows at a = 800, b = -800 (which e^a / e^out would).
        self.store_gradients(gradient, gradient * _sigmoid_array(a - b), gradient * _sigmoid_array(b - a))

    def forward_tangent(self):
        a, b = (np.asarray(node.value) for node in self.inputs)
        da, db = (node.tangent for node in self.inputs)
        # d logaddexp(a, b) = sigmoid(a - b) da + sigmoid(b - a) db, as stable as backward's parts.
        self.tangent = _as_tangent_of(self.value, _sigmoid_array(a - b) * da + _sigmoid_array(b - a) * db)


_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf: Python's, element by element


class NodeErf(NodeBase):
    """The error function, `2/sqrt(pi) * integral from 0 to a of exp(-t^2) dt`."""

    arity = 1

    def forward(self, value=None):
        a = np.asarray(self.inputs[0].value)
        # math.erf computes in float64; the result is rounded back to a float operand's dtype.
        # ([()] makes a 0-d result a numpy scalar, as numpy's own functions give.)
        self.value = _erf(a).astype(a.dtype if a.dtype.kind == "f" else np.float64)[()]

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        self.store_gradients(gradient, gradient * (2 / math.sqrt(math.pi)) * np.exp(-a * a))  # d/da erf(a)

    def forward_tangent(self):
        a, da = self.inputs[0].value, self.inputs[0].tangent
        # d erf(a) = 2/sqrt(pi) e^(-a^2) da
        self.tangent = _as_tangent_of(self.value, (2 / math.sqrt(math.pi)) * np.exp(-a * a) * da)


class NodeAtan2(NodeBase):
    """numpy's `arctan2(a, b)`: the angle of the point (b, a), in (-pi, pi]."""

    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.arctan2(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # d/da atan2(a, b) = b / (a^2 + b^2), d/db = -a / (a^2 + b^2). Divided by r = hypot(a, b)
        # twice rather than by r^2, so that the square neither overflows nor underflows.
        r = np.hypot(a, b)
        self.store_gradients(gradient, gradient * (b / r) / r, -gradient * (a / r) / r)

    def forward_tangent(self):
        (a, da), (b, db) = ((node.value, node.tangent) for node in self.inputs)
        # d atan2(a, b) = (b da - a db) / (a^2 + b^2), divided by r twice as backward.
        r = np.hypot(a, b)
        self.tangent = _as_tangent_of(self.value, (b / r) / r * da - (a / r) / r * db)
