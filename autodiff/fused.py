"""Ops made of exp, sum and log, computed as one node each so that they are stable: the
max is subtracted before exp, so no exponent is positive and nothing overflows (exact for
operands of 1000 in float64), and the largest term is e^0 = 1, so the log never sees 0."""

from __future__ import annotations

import numpy as np

from .elementwise import _as_tangent_of
from .nodes import NodeBase, axis_attr
from .reductions import Reduction


def _shifted(a, axis):
    """(a - max(a), max(a)) along `axis`, the max kept as size 1. A slice whose max is not
    finite (all -inf, or a +inf) is shifted by 0: inf - inf would be nan."""
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return a - top, top


def _softmax(a, axis):
    e = np.exp(_shifted(a, axis)[0])
    return e / np.sum(e, axis=axis, keepdims=True)


class NodeSoftmax(NodeBase):
    """`exp(a - max) / sum(exp(a - max))` along `axis`."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axis: int = -1):
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis, allow_none=False)

    def forward(self, value=None):
        self.value = _softmax(self.inputs[0].value, self.axis)

    def backward(self):
        gradient = self.total_gradient()
        s = self.value
        # d s_i / d a_j = s_i (delta_ij - s_j), so (v^T J)_j = s_j (v_j - sum_i v_i s_i).
        self.store_gradients(gradient, s * (gradient - np.sum(gradient * s, axis=self.axis, keepdims=True)))

    def forward_tangent(self):
        s, da = self.value, self.inputs[0].tangent
        # d s_i = s_i (da_i - sum_j s_j da_j)
        self.tangent = _as_tangent_of(s, s * (da - np.sum(s * da, axis=self.axis, keepdims=True)))


class NodeLogSoftmax(NodeBase):
    """`a - logsumexp(a)` along `axis`."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axis: int = -1):
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis, allow_none=False)

    def forward(self, value=None):
        # a - logsumexp(a) = (a - m) - log sum e^(a - m): subtracting the shifted terms, not
        # a - (m + log ...), keeps a result near 0 from the rounding error of m.
        shifted, _ = _shifted(self.inputs[0].value, self.axis)
        self.value = shifted - np.log(np.sum(np.exp(shifted), axis=self.axis, keepdims=True))

    def backward(self):
        gradient = self.total_gradient()
        # d (a_i - logsumexp(a)) / d a_j = delta_ij - softmax_j, and softmax = exp(value),
        # so (v^T J)_j = v_j - softmax_j sum_i v_i.
        softmax = np.exp(self.value)
        self.store_gradients(gradient, gradient - softmax * np.sum(gradient, axis=self.axis, keepdims=True))

    def forward_tangent(self):
        da = self.inputs[0].tangent
        # d (a_i - logsumexp(a)) = da_i - sum_j softmax_j da_j, with softmax = exp(value) as backward.
        softmax = np.exp(self.value)
        self.tangent = _as_tangent_of(self.value, da - np.sum(softmax * da, axis=self.axis, keepdims=True))


class NodeLogSumExp(Reduction):
    """`log(sum(exp(a)))` over every element (axis=None) or along one `axis`, with `keepdims`."""

    def forward(self, value=None):
        # log sum_i e^(a_i) = m + log sum_i e^(a_i - m), for any m.
        shifted, top = _shifted(self.inputs[0].value, self.axis)
        total = top + np.log(np.sum(np.exp(shifted), axis=self.axis, keepdims=True))
        # Squeezing every axis (axis=None) is right here: reduced over all, all have size 1.
        self.value = total if self.keepdims else np.squeeze(total, axis=self.axis)

    def backward(self):
        gradient = self.total_gradient()
        # d logsumexp(a) / d a_i = e^(a_i) / sum_j e^(a_j): the softmax (computed shifted, as
        # exp(a - logsumexp(a)) would carry the rounding error of the logsumexp).
        softmax = _softmax(self.inputs[0].value, self.axis)
        self.store_gradients(gradient, self.with_reduced_axes(gradient) * softmax)

    def forward_tangent(self):
        a = self.inputs[0]
        # d logsumexp(a) = sum_i softmax_i da_i, the softmax computed shifted as in backward.
        softmax = _softmax(a.value, self.axis)
        self.tangent = _as_tangent_of(self.value, np.sum(softmax * a.tangent, axis=self.axis, keepdims=self.keepdims))
