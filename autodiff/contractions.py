"""Contractions: products summed over shared axes. matmul is numpy's batched `a @ b`; einsum
is numpy's `einsum(subscripts, *operands)` for 1 to 3 operands, in explicit form.

Both rules are the matrix rule C = A B -> dA = G B^T, dB = A^T G, generalised: the
cotangent of an operand is the product of the cotangent with the other operands, summed
over every label (axis) the operand does not have.
"""

from __future__ import annotations

import re

import numpy as np

from .nodes import GraphError, NodeBase, sum_to_shape


class NodeMatmul(NodeBase):
    """numpy's `matmul(a, b)`: the leading (batch) axes broadcast; a 1-D `a` is a row and a 1-D
    `b` a column for the product, and that axis is removed from the result."""

    arity = 2

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.matmul(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)  # (arrays: matmul takes no scalar)
        # Make the product one of matrices again: a 1-D a as a row (1, k), a 1-D b as a column
        # (k, 1), and the axis the result lost put back into the cotangent (b's first: with
        # both 1-D the cotangent is 0-d, and gets (1,) then (1, 1)).
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        g = np.expand_dims(gradient, -1) if b.ndim == 1 else gradient
        g = np.expand_dims(g, -2) if a.ndim == 1 else g
        # C = A B in every batch: dA = G B^T, dB = A^T G. A batch axis that numpy broadcast
        # (missing, or of size 1, in an operand) is summed back to that operand's shape.
        part_a = sum_to_shape(g @ np.swapaxes(b2, -1, -2), a2.shape)
        part_b = sum_to_shape(np.swapaxes(a2, -1, -2) @ g, b2.shape)
        self.store_gradients(gradient, part_a.reshape(a.shape), part_b.reshape(b.shape))

    def forward_tangent(self):
        # d (a @ b) = da @ b + a @ db: matmul itself handles the 1-D operands and the batch axes.
        a, b = self.inputs
        self.tangent = np.matmul(a.tangent, b.value) + np.matmul(a.value, b.tangent)


def _label_sizes(terms, values) -> dict[str, int]:
    """Each label's length, from the operands' shapes. A label has one length everywhere: numpy
    would stretch a length of 1, which the format does not allow."""
    sizes: dict[str, int] = {}
    for position, (term, value) in enumerate(zip(terms, values)):
        shape = np.shape(value)
        if len(term) != len(shape):
            raise ValueError(f"subscripts {term!r} for operand {position} of {len(shape)} axes")
        for label, size in zip(term, shape):
            if sizes.setdefault(label, size) != size:
                raise ValueError(f"label {label!r} has lengths {sizes[label]} and {size}")
    return sizes


class NodeEinsum(NodeBase):
    """numpy's `einsum(subscripts, *operands)` for 1 to 3 operands. `subscripts` is explicit,
    "ij,jk->ik": one term of lowercase labels per operand, a label repeated within a term
    takes a diagonal ("ii->i"), and a label missing from the output is summed away."""

    arity = None  # 1 to 3, checked here: NodeBase checks one number

    def __init__(self, name: str, input_nodes=None, subscripts=None):
        input_nodes = list(input_nodes or ())
        if not 1 <= len(input_nodes) <= 3:  # checked before the node is wired in, as NodeBase does
            raise GraphError(f"node {name!r} (NodeEinsum) takes 1 to 3 inputs, got {len(input_nodes)}")
        super().__init__(name, input_nodes)
        if not isinstance(subscripts, str) or not re.fullmatch(r"[a-z]*(,[a-z]*)*->[a-z]*", subscripts):
            raise GraphError(f"node {name!r}: subscripts must be explicit, as 'ij,jk->ik', got {subscripts!r}")
        inputs, self.output = subscripts.split("->")
        self.terms = inputs.split(",")
        self.subscripts = subscripts
        if len(self.terms) != len(input_nodes):
            raise GraphError(f"node {name!r}: subscripts {subscripts!r} for {len(input_nodes)} operand(s)")
        if len(set(self.output)) != len(self.output) or not set(self.output) <= set(inputs):
            raise GraphError(f"node {name!r}: output labels must be distinct input labels, got {subscripts!r}")

    def forward(self, value=None):
        values = [node.value for node in self.inputs]
        _label_sizes(self.terms, values)
        self.value = np.einsum(self.subscripts, *values)

    def backward(self):
        gradient = self.total_gradient()
        values = [node.value for node in self.inputs]
        sizes = _label_sizes(self.terms, values)
        dtype = np.result_type(gradient)
        parts = []
        for k, term in enumerate(self.terms):
            # d out / d operand k is the product of the other operands, so its part is the
            # einsum of the cotangent with them, into k's labels (each once: "ii" -> "i").
            labels = "".join(dict.fromkeys(term))
            others = [j for j in range(len(values)) if j != k]
            terms = [self.output, *(self.terms[j] for j in others)]
            operands = [gradient, *(values[j] for j in others)]
            # A label only operand k has, summed away in the output: the output does not
            # depend on where along it an element sits, so the part is the same all along
            # it. A vector of ones carries the label into the product.
            lonely = [label for label in labels if label not in "".join(terms)]
            terms += lonely
            operands += [np.ones(sizes[label], dtype=dtype) for label in lonely]
            part = np.einsum(",".join(terms) + "->" + labels, *operands)
            if len(labels) < len(term):
                # A repeated label read only the diagonal: the part goes there, zeros elsewhere.
                # einsum("ii->i", z) is a writeable view of z's diagonal, which the part fills.
                diagonal_part, part = part, np.zeros_like(part, shape=np.shape(values[k]))
                np.einsum(f"{term}->{labels}", part)[...] = diagonal_part
            parts.append(part)
        self.store_gradients(gradient, *parts)

    def forward_tangent(self):
        # d einsum(a, b, c) = einsum(da, b, c) + einsum(a, db, c) + einsum(a, b, dc): linear in each operand.
        values = [node.value for node in self.inputs]
        self.tangent = sum(
            np.einsum(self.subscripts, *values[:k], node.tangent, *values[k + 1 :])
            for k, node in enumerate(self.inputs)
        )
