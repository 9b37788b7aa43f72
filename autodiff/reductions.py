"""Reductions: ops whose result has fewer elements than their operand. reduce_sum,
reduce_mean and reduce_max reduce all elements (axis=None) or one `axis`, with `keepdims`;
dot sums products over the axis its operands share."""

from __future__ import annotations

import numpy as np

from .nodes import GraphError, NodeBase, axis_attr, shape_of


class Reduction(NodeBase):
    """What reduce_sum, reduce_mean, reduce_max and logsumexp share: the attrs `axis` (None =
    every axis, or one int) and `keepdims`, and the way back from the result's shape."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axis: int | None = None, keepdims: bool = False):
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis)
        if not isinstance(keepdims, (bool, np.bool_)):
            raise GraphError(f"node {name!r}: keepdims must be a bool, got {keepdims!r}")
        self.keepdims = bool(keepdims)

    def with_reduced_axes(self, reduced):
        """`reduced` (the value, or its gradient) with the reduced axis put back as size 1, so
        that it broadcasts against the operand. (Reduced over every axis without keepdims, it
        is a scalar, which broadcasts as it is.)"""
        if self.axis is None or self.keepdims:
            return reduced
        return np.expand_dims(reduced, self.axis)


class NodeReduceSum(Reduction):
    """Sum of all elements (the notebook's behaviour), or along one `axis`, with `keepdims`."""

    def forward(self, value=None):
        a = self.inputs[0].value
        total = np.sum(a, axis=self.axis, keepdims=self.keepdims)
        # A Python scalar in, a Python scalar out (a numpy scalar, though a float, keeps its dtype).
        self.value = total.item() if type(a) in (int, float) else total

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        if type(a) in (int, float):  # the sum of one Python scalar is itself: its gradient passes as is
            self.store_gradients(gradient, gradient)
            return
        # d sum / d a_i = 1: every summed element gets the gradient of its sum.
        self.store_gradients(gradient, np.broadcast_to(self.with_reduced_axes(gradient), shape_of(a)))


class NodeReduceMean(Reduction):
    def forward(self, value=None):
        self.value = np.mean(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        count = np.size(a) if self.axis is None else shape_of(a)[self.axis]
        # d mean / d a_i = 1/n for each of the n averaged elements.
        self.store_gradients(gradient, np.broadcast_to(self.with_reduced_axes(gradient) / count, shape_of(a)))


class NodeReduceMax(Reduction):
    def forward(self, value=None):
        self.value = np.max(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        # d max / d a_i = 1 at the maximum, 0 elsewhere. A tie divides the cotangent evenly
        # among the tied maxima (PyTorch and JAX), so the parts still add up to it.
        is_max = a == self.with_reduced_axes(self.value)
        ties = np.sum(is_max, axis=self.axis, keepdims=True)
        self.store_gradients(gradient, np.where(is_max, self.with_reduced_axes(gradient) / ties, 0))


class NodeDot(NodeBase):
    """numpy's `a @ b` for 1-D and 2-D operands."""

    arity = 2

    def forward(self, value=None):
        a, b = (node.value for node in self.inputs)
        if np.ndim(a) not in (1, 2) or np.ndim(b) not in (1, 2):
            raise ValueError("dot takes 1-D or 2-D operands")
        self.value = a @ b

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # View a 1-D left operand as a row (1, k) and a 1-D right operand as a column
        # (k, 1); then C = A B and the matrix rules hold: dA = G B^T, dB = A^T G.
        a2 = a.reshape(1, -1) if a.ndim == 1 else a
        b2 = b.reshape(-1, 1) if b.ndim == 1 else b
        g2 = np.reshape(gradient, (a2.shape[0], b2.shape[1]))
        self.store_gradients(gradient, (g2 @ b2.T).reshape(a.shape), (a2.T @ g2).reshape(b.shape))
