"""Ops that only move data: every output element is one input element. The gradient moves
back the same way: through the inverse permutation, the inverse reshape, summed over the
copies a broadcast (or a repeated index of take) made, into the places a slice took, or
split between the operands that concatenate and stack joined."""

from __future__ import annotations

import numpy as np

from .nodes import GraphError, NodeBase, axis_attr, ints_attr, shape_of


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

    def forward_tangent(self):
        # d transpose(a) = transpose(da): a linear op carries the tangent as it carries the value.
        self.tangent = np.transpose(self.inputs[0].tangent, self.axes)


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

    def forward_tangent(self):
        # d reshape(a) = reshape(da)
        self.tangent = np.reshape(self.inputs[0].tangent, self.shape)


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

    def forward_tangent(self):
        # d broadcast_to(a) = broadcast_to(da): every copy of a_i moves with it.
        self.tangent = np.broadcast_to(self.inputs[0].tangent, self.shape)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class NodeTake(NodeBase):
    """numpy's `take(a, indices, axis)`: the slices of a at `indices` (1-D, repeats allowed,
    negative ones counting from the end) along `axis`, in that order."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, indices=(0,), axis: int = 0):
        super().__init__(name, input_nodes)
        if not isinstance(indices, (list, tuple)) or not all(_is_int(i) for i in indices):
            raise GraphError(f"node {name!r}: indices must be a list of ints, got {indices!r}")
        self.indices = np.array(indices, dtype=np.intp)  # (typed, so that [] is a list of no ints)
        self.axis = axis_attr(name, axis, allow_none=False)

    def forward(self, value=None):
        try:
            self.value = np.take(self.inputs[0].value, self.indices, axis=self.axis)
        except IndexError as error:  # an index outside [-n, n): a bad operand, which run reports
            raise ValueError(str(error)) from None

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        axis = self.axis % np.ndim(a)
        # Element i of a receives the cotangent of every result slice taken from it: add.at adds
        # them all (part[..., indices] += g would keep only the last of a repeated index). Its
        # indexing reads a negative index as take does, so -1 and n-1 add up in one place.
        part = np.zeros_like(gradient, shape=shape_of(a))  # (zeros_like: a Dual for a Dual gradient, see dual.py)
        np.add.at(part, (slice(None),) * axis + (self.indices,), gradient)
        self.store_gradients(gradient, part)

    def forward_tangent(self):
        # d take(a) = take(da): the indices are ints, and have no tangent.
        self.tangent = np.take(self.inputs[0].tangent, self.indices, axis=self.axis)


class NodeSlice(NodeBase):
    """numpy's basic slicing `a[start0:stop0:step0, ...]`: per axis of a, an int or None for each
    of start, stop and step, as in a Python slice."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, starts=(), stops=(), steps=()):
        super().__init__(name, input_nodes)
        for attr, values in (("starts", starts), ("stops", stops), ("steps", steps)):
            if not isinstance(values, (list, tuple)) or not all(v is None or _is_int(v) for v in values):
                raise GraphError(f"node {name!r}: {attr} must be a list of ints or None, got {values!r}")
        if not len(starts) == len(stops) == len(steps):
            raise GraphError(
                f"node {name!r}: starts, stops and steps must have one entry per axis, got {starts!r}, "
                f"{stops!r}, {steps!r}"
            )
        if 0 in steps:
            raise GraphError(f"node {name!r}: a step cannot be 0, got steps {steps!r}")
        self.slices = tuple(slice(*bounds) for bounds in zip(starts, stops, steps))

    def forward(self, value=None):
        a = np.asarray(self.inputs[0].value)
        if len(self.slices) != a.ndim:
            raise ValueError(f"{len(self.slices)} slice(s) for an operand of {a.ndim} axes")
        self.value = a[self.slices]

    def backward(self):
        gradient = self.total_gradient()
        # d a[s] / d a is 1 at the elements the slices took, 0 elsewhere. Basic slicing never
        # takes an element twice, so the cotangent is put back in place, not added up.
        part = np.zeros_like(gradient, shape=shape_of(self.inputs[0].value))  # (a Dual for a Dual, see dual.py)
        part[self.slices] = gradient
        self.store_gradients(gradient, part)

    def forward_tangent(self):
        # d a[s] = da[s]
        self.tangent = np.asarray(self.inputs[0].tangent)[self.slices]


class Joining(NodeBase):
    """What concatenate and stack share: 2 to 4 operands and an int `axis` (default 0)."""

    arity = None  # a range, checked here: NodeBase checks one number

    def __init__(self, name: str, input_nodes=None, axis: int = 0):
        input_nodes = list(input_nodes or ())
        if not 2 <= len(input_nodes) <= 4:  # checked, as NodeBase checks arity, before the node is wired in
            raise GraphError(f"node {name!r} ({type(self).__name__}) takes 2 to 4 inputs, got {len(input_nodes)}")
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis, allow_none=False)


class NodeConcatenate(Joining):
    """numpy's `concatenate(operands, axis)`: the operands end to end along an existing axis."""

    def forward(self, value=None):
        self.value = np.concatenate([node.value for node in self.inputs], axis=self.axis)

    def backward(self):
        gradient = self.total_gradient()
        axis = self.axis % np.ndim(gradient)
        # Each operand's part is its own stretch of the cotangent along the axis: cut where
        # the running total of the operands' lengths says one ends and the next begins.
        ends = np.cumsum([shape_of(node.value)[axis] for node in self.inputs])
        self.store_gradients(gradient, *np.split(gradient, ends[:-1], axis=axis))

    def forward_tangent(self):
        # d concatenate(a, b, ...) = concatenate(da, db, ...)
        self.tangent = np.concatenate([node.tangent for node in self.inputs], axis=self.axis)


class NodeStack(Joining):
    """numpy's `stack(operands, axis)`: the operands, all of one shape, along a new axis."""

    def forward(self, value=None):
        self.value = np.stack([node.value for node in self.inputs], axis=self.axis)

    def backward(self):
        gradient = self.total_gradient()
        # The new axis is an axis of the result, so a negative one counts back from the result's
        # rank (the operands' + 1), as numpy's does. Operand k's part is the cotangent at k there.
        axis = self.axis % np.ndim(gradient)
        self.store_gradients(gradient, *(np.take(gradient, k, axis=axis) for k in range(len(self.inputs))))

    def forward_tangent(self):
        # d stack(a, b, ...) = stack(da, db, ...)
        self.tangent = np.stack([node.tangent for node in self.inputs], axis=self.axis)
