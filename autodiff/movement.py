"""Ops that only move data: every output element is one input element. The gradient moves
back the same way: through the inverse permutation, the inverse reshape, or summed over
the copies a broadcast made."""

from __future__ import annotations

import numpy as np

from .nodes import GraphError, NodeBase, ints_attr, shape_of


class NodeTranspose(NodeBase):
    """numpy's `transpose(a, axes)`: `axes` is a permutation, or None to reverse the axes."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axes=None):
        super().__init__(name, input_nodes)
        if axes is not None:
            axes = ints_attr(name, "axes", axes)
            if sorted(axes) != list(range(len(axes))):
                raise GraphError(f"node {name!r}: axes must be a permutation of 0..{len(axes) - 1}, got {list(axes)}")
        self.axes = axes
        # Output axis i is input axis axes[i], so input axis axes[i] is output axis i: the
        # inverse permutation is argsort(axes). Reversing is its own inverse.
        self.inverse_axes = None if axes is None else tuple(int(i) for i in np.argsort(axes))

    def forward(self, value=None):
        self.value = np.transpose(self.inputs[0].value, self.axes)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, np.transpose(gradient, self.inverse_axes))


class NodeReshape(NodeBase):
    """numpy's `reshape(a, shape)`, in C order; `shape` is a list of ints (no -1)."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, shape=None):
        super().__init__(name, input_nodes)
        self.shape = ints_attr(name, "shape", shape)

    def forward(self, value=None):
        self.value = np.reshape(self.inputs[0].value, self.shape)

    def backward(self):
        gradient = self.total_gradient()
        # Element k (in C order) of the result is element k of a: the gradient reshapes back.
        self.store_gradients(gradient, np.reshape(gradient, shape_of(self.inputs[0].value)))


class NodeBroadcastTo(NodeBase):
    """numpy's `broadcast_to(a, shape)`."""

    arity = 1
    broadcasts = True  # the gradient itself is a's part: store_gradients sums it over the copies

    def __init__(self, name: str, input_nodes=None, shape=None):
        super().__init__(name, input_nodes)
        self.shape = ints_attr(name, "shape", shape)

    def forward(self, value=None):
        self.value = np.broadcast_to(self.inputs[0].value, self.shape)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient)
