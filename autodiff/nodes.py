"""The node classes: one per op, each with its forward() and its backward(), as in the notebook.

The programming model is the seed notebook's. A node is built with a name and a list of
input nodes; building it wires it into its inputs' `outputs`. `forward()` computes
`value` from the inputs' values; `backward()` computes the node's total gradient
`gradients[self]` (d output / d self, summed over every consumer) and, for each input `i`,
the part of d output / d i that flows through this node, `gradients[i]`.

This module holds what every node shares: `NodeBase`, the leaves (`NodeInput`) and the
output marker (`NodeOutput`). The ops are grouped by kind, one module each: elementwise.py
(add ... pow, minimum, clip, where), delicate.py (softplus, log_sigmoid, log1p, expm1,
logaddexp, erf, atan2), reductions.py (reduce_sum, reduce_mean, reduce_max, reduce_min,
reduce_prod, var, std, norm, dot, and the running cumsum and cumprod), movement.py
(transpose, reshape, broadcast_to, take, slice, concatenate, stack), fused.py (softmax,
log_softmax, logsumexp), contractions.py (matmul, einsum) and windows.py (conv1d,
max_pool1d); all of them are importable from here too.

Forward mode and second order: `forward_tangent()` computes `tangent`, the derivative of
`value` along the inputs' tangents (run.py's `run_jvp` feeds those to the inputs), with its
math in a comment beside the rule. A Hessian-vector product needs no rule of its own:
`run_hvp` runs the backward() rules on values that carry their tangents (dual.py's `Dual`),
so backward() code keeps to numpy operations a Dual supports (no `np.asarray` of a value, no
Dual written into a plain array).

What the notebook got wrong, and how this engine gets it right:
- every consumer's contribution is summed elementwise (`+`), never with `np.sum` over a
  list, so tensor gradients keep their shape;
- an operand used twice by one node (`mult(x, x)`) gets both of its contributions added;
- broadcasting is undone in ONE place, `sum_to_shape`, for every op;
- no mutable default argument: each node owns its lists.

The dtype rule: every gradient has the dtype of the value it is the gradient of. `run`
casts the cotangent to the output value's dtype, and `store_gradients`, which every part
passes through, casts a part whose dtype differs from its input's value dtype (a float32
input broadcast against a float64 operand gets a float32 gradient). A Python scalar has no
dtype, and neither does an integer value for this rule (a gradient in integers would be
truncated): those gradients are left as numpy computes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dual import Dual, tangent_dtype


class GraphError(ValueError):
    """A graph that cannot be run: bad wiring, wrong arity, mismatched shapes, a cycle."""


def axis_attr(node_name: str, axis, allow_none: bool = True) -> int | None:
    """An op's `axis` attr, checked: an int, or None (every axis) where the op allows it."""
    if axis is None and allow_none:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        allowed = "an int or None" if allow_none else "an int"
        raise GraphError(f"node {node_name!r}: axis must be {allowed}, got {axis!r}")
    return int(axis)


def ints_attr(node_name: str, attr: str, values) -> tuple[int, ...]:
    """An op's list-of-ints attr (`shape`, `axes`), checked: every int >= 0. Kept as a tuple."""
    if not isinstance(values, (list, tuple)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise GraphError(f"node {node_name!r}: {attr} must be a list of non-negative ints, got {values!r}")
    return tuple(int(v) for v in values)


def shape_of(value) -> tuple[int, ...]:
    # Python scalars have no `.shape`; they are rank 0.
    return getattr(value, "shape", ())


def sum_to_shape(gradient, shape: tuple[int, ...]):
    """Undo numpy broadcasting: sum `gradient` down to `shape`.

    If `a` of shape `shape` was broadcast into the result, every result element that
    reused an element of `a` contributes to that element's gradient, so the gradient is a
    sum over the broadcast axes: the leading axes numpy prepended, and the axes where
    `a` had size 1.
    """
    gradient_shape = getattr(gradient, "shape", ())
    if gradient_shape == shape:
        return gradient
    leading = len(gradient_shape) - len(shape)
    stretched = tuple(
        leading + axis for axis, size in enumerate(shape) if size == 1 and gradient_shape[leading + axis] != 1
    )
    gradient = np.sum(gradient, axis=tuple(range(leading)) + stretched, keepdims=True)
    return gradient.reshape(shape)


class NodeBase:
    """A node of the graph. Each op's class writes, as in the notebook, its `forward()` (the
    value from the inputs' values) and its `backward()` (the total gradient from
    `total_gradient()`, then one part per input, handed to `store_gradients`)."""

    arity: int | None = None
    broadcasts = False  # True for ops whose operands numpy broadcasts: their parts are summed back

    def __init__(self, name: str, input_nodes=None):
        input_nodes = list(input_nodes or ())
        if self.arity is not None and len(input_nodes) != self.arity:
            raise GraphError(
                f"node {name!r} ({type(self).__name__}) takes {self.arity} input(s), got {len(input_nodes)}"
            )
        for position, node in enumerate(input_nodes):
            if not isinstance(node, NodeBase):
                raise GraphError(f"node {name!r}: input {position} is {node!r}, not a node")
        self.name = name
        self.inputs: list[NodeBase] = input_nodes
        self.value: Any = None  # a Python scalar or a numpy array, once computed
        self.tangent: Any = None  # d value along the run's input tangents (run_jvp), of value's shape
        self.outputs: list[NodeBase] = []  # the nodes that consume this one, each listed once
        self.gradients: dict[NodeBase, Any] = {}
        self.seed: Any = None  # the cotangent, when this node is the output of a run
        self._run: object | None = None  # the run this node last took part in (see total_gradient)
        for position, node in enumerate(input_nodes):
            if node not in input_nodes[:position]:  # mult(x, x) makes one consumer of x, not two
                node.outputs.append(self)

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    def forward(self, value=None):
        raise NotImplementedError

    def backward(self):
        raise NotImplementedError

    def forward_tangent(self):
        """Sets `tangent`, the derivative of `value` along the inputs' tangents (forward mode)."""
        raise NotImplementedError(f"{type(self).__name__} has no forward_tangent()")

    def total_gradient(self):
        """d output / d self: the seed (if this node is an output) plus every consumer's part."""
        total = self.seed
        this_run = self._run
        for consumer in self.outputs:
            # A consumer outside this run holds gradients from another run: not ours to add.
            if consumer._run is this_run:
                part = consumer.gradients[self]
                total = part if total is None else total + part
        if total is None:  # nothing downstream reaches the output
            total = np.zeros_like(self.value)
        return total

    def store_gradients(self, gradient, *parts):
        """Keep d output / d self, and each input's part of it (`parts`, in input order),
        summed back to the input's shape and cast to the input's dtype (the dtype rule)."""
        # Fast path for Python-scalar graphs (the notebook's). A Python-float gradient is a
        # Python-float node's, whose operands are Python scalars too: nothing was broadcast and
        # there is no dtype to keep. Without the path the 1,000-step scalar mult -> sigmoid chain
        # (forward+backward) takes 32% longer, 2.50 vs 1.88 ms; without just its one-operand
        # shortcut, 11-15% longer. Tensor graphs never take it (a 64x256 MLP: no change, +-1%).
        python_scalar = type(gradient) is float
        if python_scalar and len(parts) == 1:
            self.gradients = {self: gradient, self.inputs[0]: parts[0]}
            return
        gradients = self.gradients = {self: gradient}
        for node, part in zip(self.inputs, parts):
            if not python_scalar:
                value = node.value
                shape = getattr(value, "shape", ())
                if self.broadcasts and getattr(part, "shape", ()) != shape:
                    part = sum_to_shape(part, shape)
                # Cast after the sum, so that a float32 input's broadcast sum is taken in the
                # wider dtype. (`is not`, not `!=`: numpy finds np.dtype("float64") == None true.)
                dtype = getattr(value, "dtype", None)
                if dtype is not None and dtype.kind == "f" and getattr(part, "dtype", None) is not dtype:
                    # (A Dual of run_hvp casts itself: np.asarray would drop its tangent, and refuses to.)
                    part = part.astype(dtype) if type(part) is Dual else np.asarray(part, dtype=dtype)
            if node in gradients:  # the same node twice among the inputs (mult(x, x)) gets both parts
                part = gradients[node] + part
            gradients[node] = part

    def forward_error(self, error: Exception) -> GraphError:
        """What went wrong in forward(), said with this node's name and its operands' shapes."""
        for node in self.inputs:
            if node.value is None:
                return GraphError(f"node {self.name!r}: input {node.name!r} has no value (feed it, or run it first)")
        shapes = ", ".join(str(shape_of(node.value)) for node in self.inputs)
        return GraphError(f"node {self.name!r} ({type(self).__name__}): operands of shapes {shapes}: {error}")

    def show(self):
        print(self.name)
        print("  in: ", [n.name for n in self.inputs])
        print("  val:", self.value)
        print("  out:", [n.name for n in self.outputs])
        print("  gra: ", end="")
        for node, gradient in self.gradients.items():
            print(node.name, gradient, end="  ")
        print()


class NodeInput(NodeBase):
    """A leaf. Its value comes from the feed; an optional `shape` is checked against it."""

    arity = 0

    def __init__(self, name: str, input_nodes=None, shape=None):
        super().__init__(name, input_nodes)
        self.shape = None if shape is None else tuple(shape)

    def forward(self, value=None):
        if value is not None:
            if isinstance(value, (list, tuple)):  # nested lists are tensors, not sequences to concatenate
                value = np.asarray(value, dtype=np.float64)
            if self.shape is not None and shape_of(value) != self.shape:
                raise GraphError(f"input {self.name!r}: fed a value of shape {shape_of(value)}, expected {self.shape}")
            self.value = value
        elif self.value is None:
            raise GraphError(f"input {self.name!r} has no value: put it in the feed")

    def backward(self):
        self.gradients = {self: self.total_gradient()}

    def forward_tangent(self):
        # run_jvp puts the tangent fed for this input here; one fed none is held fixed.
        if self.tangent is None:
            value = self.value
            self.tangent = 0.0 if type(value) in (int, float) else np.zeros(shape_of(value), tangent_dtype(value))


class NodeOutput(NodeBase):
    """Marks the result. `run` seeds it with the cotangent (ones of its shape by default)."""

    arity = 1

    def forward(self, value=None):
        if self.inputs[0].value is None:
            raise TypeError("no value")
        self.value = self.inputs[0].value

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient)

    def forward_tangent(self):
        self.tangent = self.inputs[0].tangent


# The op classes, importable from here as before the split (`from autodiff.nodes import
# NodeAdd`). Imported last: their modules import NodeBase from this one.
from .contractions import NodeEinsum, NodeMatmul  # noqa: E402
from .delicate import (  # noqa: E402
    NodeAtan2,
    NodeErf,
    NodeExpm1,
    NodeLog1p,
    NodeLogAddExp,
    NodeLogSigmoid,
    NodeSoftplus,
)
from .elementwise import (  # noqa: E402
    NodeAbs,
    NodeAdd,
    NodeClip,
    NodeCos,
    NodeDiv,
    NodeExp,
    NodeLog,
    NodeMaximum,
    NodeMinimum,
    NodeMult,
    NodeNeg,
    NodePow,
    NodePower,
    NodeRelu,
    NodeSigmoid,
    NodeSin,
    NodeSqrt,
    NodeSubstract,
    NodeSubtract,
    NodeTanh,
    NodeWhere,
)
from .fused import NodeLogSoftmax, NodeLogSumExp, NodeSoftmax  # noqa: E402
from .movement import (  # noqa: E402
    NodeBroadcastTo,
    NodeConcatenate,
    NodeReshape,
    NodeSlice,
    NodeStack,
    NodeTake,
    NodeTranspose,
)
from .reductions import (  # noqa: E402
    NodeCumProd,
    NodeCumSum,
    NodeDot,
    NodeNorm,
    NodeReduceMax,
    NodeReduceMean,
    NodeReduceMin,
    NodeReduceProd,
    NodeReduceSum,
    NodeStd,
    NodeVar,
)
from .windows import NodeConv1d, NodeMaxPool1d  # noqa: E402

__all__ = [
    "GraphError",
    "NodeAbs",
    "NodeAdd",
    "NodeAtan2",
    "NodeBase",
    "NodeBroadcastTo",
    "NodeClip",
    "NodeConcatenate",
    "NodeConv1d",
    "NodeCos",
    "NodeCumProd",
    "NodeCumSum",
    "NodeDiv",
    "NodeDot",
    "NodeEinsum",
    "NodeErf",
    "NodeExp",
    "NodeExpm1",
    "NodeInput",
    "NodeLog",
    "NodeLog1p",
    "NodeLogAddExp",
    "NodeLogSigmoid",
    "NodeLogSoftmax",
    "NodeLogSumExp",
    "NodeMatmul",
    "NodeMaxPool1d",
    "NodeMaximum",
    "NodeMinimum",
    "NodeMult",
    "NodeNeg",
    "NodeNorm",
    "NodeOutput",
    "NodePow",
    "NodePower",
    "NodeReduceMax",
    "NodeReduceMean",
    "NodeReduceMin",
    "NodeReduceProd",
    "NodeReduceSum",
    "NodeRelu",
    "NodeReshape",
    "NodeSigmoid",
    "NodeSin",
    "NodeSlice",
    "NodeSoftmax",
    "NodeSoftplus",
    "NodeSqrt",
    "NodeStack",
    "NodeStd",
    "NodeSubstract",
    "NodeSubtract",
    "NodeTake",
    "NodeTanh",
    "NodeTranspose",
    "NodeVar",
    "NodeWhere",
    "axis_attr",
    "ints_attr",
    "shape_of",
    "sum_to_shape",
]
