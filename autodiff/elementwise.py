"""Elementwise ops: each output element depends on the elements at the same place.

A unary rule's part is the gradient times the derivative at each element. A binary op
broadcasts its operands (`broadcasts = True`), and `NodeBase.store_gradients` sums its
parts back to each operand's shape. The forward-mode rule, `forward_tangent()`, takes the
same derivatives times the operands' tangents, and `_as_tangent_of` gives its result the
value's shape and dtype (delicate.py and fused.py use it too).

Python scalars: add, subtract, mult, power, sigmoid and neg keep Python floats as Python
floats (the notebook's scalar graphs, at Python speed); the others compute with numpy and
give numpy scalars, of the same value as the 0-d array case.
"""

from __future__ import annotations

import math

import numpy as np

from .nodes import GraphError, NodeBase


def _as_tangent_of(value, tangent):
    """`tangent` made the tangent of `value`: of its shape (a result larger than every operand,
    as where's with a larger mask, takes each operand's change everywhere it was broadcast) and,
    for a float value, of its dtype (a wider operand or numpy scalar would widen float32)."""
    if type(value) in (int, float):  # the notebook's Python-scalar graphs: no shape, no dtype
        return tangent
    shape, dtype = np.shape(value), getattr(value, "dtype", None)
    if np.shape(tangent) != shape:
        tangent = np.array(np.broadcast_to(tangent, shape))  # (a copy: broadcast_to's view is read-only)
    if dtype is not None and dtype.kind == "f" and getattr(tangent, "dtype", None) is not dtype:
        tangent = np.asarray(tangent, dtype=dtype)
    return tangent


# ---- the seed notebook's ops ---------------------------------------------------------------


class NodeAdd(NodeBase):
    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = a.value + b.value

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient, gradient)

    def forward_tangent(self):
        a, b = self.inputs
        self.tangent = _as_tangent_of(self.value, a.tangent + b.tangent)  # d (a + b) = da + db


class NodeSubtract(NodeBase):
    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = a.value - b.value

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient, -gradient)

    def forward_tangent(self):
        a, b = self.inputs
        self.tangent = _as_tangent_of(self.value, a.tangent - b.tangent)  # d (a - b) = da - db


# The notebook's spelling, so that its cells run with only the import changed.
NodeSubstract = NodeSubtract


class NodeMult(NodeBase):
    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = a.value * b.value

    def backward(self):
        gradient = self.total_gradient()
        a, b = self.inputs
        self.store_gradients(gradient, gradient * b.value, gradient * a.value)

    def forward_tangent(self):
        a, b = self.inputs
        self.tangent = _as_tangent_of(self.value, a.tangent * b.value + a.value * b.tangent)  # d (a b) = da b + a db


class NodePower(NodeBase):
    """`a ** exponent` for an integer exponent (the notebook's square by default)."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, exponent: int = 2):
        super().__init__(name, input_nodes)
        if isinstance(exponent, bool) or not isinstance(exponent, (int, np.integer)):
            raise GraphError(f"node {name!r}: exponent must be an integer, got {exponent!r}")
        self.exponent = int(exponent)

    def forward(self, value=None):
        self.value = self.inputs[0].value ** self.exponent

    def backward(self):
        gradient = self.total_gradient()
        a, n = self.inputs[0].value, self.exponent
        if n == 0:  # a**0 is constant; n * a**(n-1) would be 0 * inf at a = 0
            self.store_gradients(gradient, gradient * 0 * a)
        else:
            # d/da a^n = n a^(n-1): the factor a^(n-1) is what the notebook left out.
            self.store_gradients(gradient, gradient * n * a ** (n - 1))

    def forward_tangent(self):
        a, da, n = self.inputs[0].value, self.inputs[0].tangent, self.exponent
        # d a^n = n a^(n-1) da; for n = 0, 0 * a da, backward's factor (0, but nan where a is inf).
        self.tangent = _as_tangent_of(self.value, da * 0 * a if n == 0 else da * n * a ** (n - 1))


def _sigmoid_array(x):
    # exp(min(x, 0)) / (1 + exp(-|x|)) is 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x))
    # for x < 0: both exponents are <= 0, so nothing overflows, and no masked select is needed.
    return np.exp(np.minimum(x, 0)) / (1 + np.exp(-np.abs(x)))


class NodeSigmoid(NodeBase):
    """`1 / (1 + exp(-a))`, computed so that no input overflows."""

    arity = 1

    def forward(self, value=None):
        a = self.inputs[0].value
        # Python scalars stay Python scalars, at Python-scalar speed: with numpy here instead of
        # math.exp, the 1,000-step scalar chain (forward+backward) takes 2.6x as long, 4.94 vs 1.88 ms.
        if type(a) is float:
            e = math.exp(-abs(a))  # exp of a non-positive number never overflows
            self.value = 1.0 / (1.0 + e) if a >= 0 else e / (1.0 + e)
        else:
            self.value = _sigmoid_array(np.asarray(a))

    def backward(self):
        gradient = self.total_gradient()
        s = self.value  # d/da sigmoid(a) = s (1 - s), with s the forward value
        self.store_gradients(gradient, gradient * s * (1 - s))

    def forward_tangent(self):
        s = self.value
        self.tangent = _as_tangent_of(s, s * (1 - s) * self.inputs[0].tangent)  # d sigmoid(a) = s (1 - s) da


# ---- unary ---------------------------------------------------------------------------------


class NodeNeg(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = -self.inputs[0].value

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, -gradient)  # d/da (-a) = -1

    def forward_tangent(self):
        self.tangent = _as_tangent_of(self.value, -self.inputs[0].tangent)  # d (-a) = -da


class NodeExp(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.exp(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient * self.value)  # d/da e^a = e^a

    def forward_tangent(self):
        self.tangent = _as_tangent_of(self.value, self.value * self.inputs[0].tangent)  # d e^a = e^a da


class NodeLog(NodeBase):
    """The natural log."""

    arity = 1

    def forward(self, value=None):
        self.value = np.log(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient / self.inputs[0].value)  # d/da log a = 1/a

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = _as_tangent_of(self.value, a.tangent / a.value)  # d log a = da / a


class NodeSqrt(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.sqrt(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient / (2 * self.value))  # d/da sqrt(a) = 1 / (2 sqrt(a))

    def forward_tangent(self):
        # d sqrt(a) = da / (2 sqrt(a))
        self.tangent = _as_tangent_of(self.value, self.inputs[0].tangent / (2 * self.value))


class NodeTanh(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.tanh(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        t = self.value
        self.store_gradients(gradient, gradient * (1 - t * t))  # d/da tanh(a) = 1 - tanh(a)^2

    def forward_tangent(self):
        t = self.value
        self.tangent = _as_tangent_of(t, (1 - t * t) * self.inputs[0].tangent)  # d tanh(a) = (1 - tanh(a)^2) da


class NodeSin(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.sin(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, gradient * np.cos(self.inputs[0].value))  # d/da sin(a) = cos(a)

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = _as_tangent_of(self.value, np.cos(a.value) * a.tangent)  # d sin(a) = cos(a) da


class NodeCos(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.cos(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        self.store_gradients(gradient, -gradient * np.sin(self.inputs[0].value))  # d/da cos(a) = -sin(a)

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = _as_tangent_of(self.value, -np.sin(a.value) * a.tangent)  # d cos(a) = -sin(a) da


class NodeRelu(NodeBase):
    """`max(a, 0)`."""

    arity = 1

    def forward(self, value=None):
        self.value = np.maximum(self.inputs[0].value, 0)

    def backward(self):
        gradient = self.total_gradient()
        # d/da max(a, 0) = 1 for a > 0, 0 for a < 0; at the kink a = 0, 0 (PyTorch and JAX).
        # A select, not gradient * (a > 0): an infinite gradient times 0 would be nan.
        self.store_gradients(gradient, np.where(self.inputs[0].value > 0, gradient, 0))

    def forward_tangent(self):
        a = self.inputs[0]
        # d max(a, 0) = da where a > 0, else 0: 0 at the kink too, as backward (and selected likewise).
        self.tangent = _as_tangent_of(self.value, np.where(a.value > 0, a.tangent, 0))


class NodeAbs(NodeBase):
    arity = 1

    def forward(self, value=None):
        self.value = np.abs(self.inputs[0].value)

    def backward(self):
        gradient = self.total_gradient()
        # d/da |a| = sign(a); at the kink a = 0, sign(0) = 0 (PyTorch; JAX gives 1).
        self.store_gradients(gradient, gradient * np.sign(self.inputs[0].value))

    def forward_tangent(self):
        a = self.inputs[0]
        # d |a| = sign(a) da: 0 at the kink a = 0, as backward
        self.tangent = _as_tangent_of(self.value, np.sign(a.value) * a.tangent)


class NodeClip(NodeBase):
    """numpy's `clip(a, lo, hi)`: a held inside [lo, hi]."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, lo=None, hi=None):
        super().__init__(name, input_nodes)
        for attr, bound in (("lo", lo), ("hi", hi)):
            if isinstance(bound, bool) or not isinstance(bound, (int, float, np.integer, np.floating)):
                raise GraphError(f"node {name!r}: {attr} must be a number, got {bound!r}")
        if not lo < hi:  # (false for a nan bound too)
            raise GraphError(f"node {name!r}: lo must be less than hi, got lo={lo!r}, hi={hi!r}")
        self.lo, self.hi = float(lo), float(hi)

    def forward(self, value=None):
        # Python-float bounds do not widen a float32 operand (numpy's weak scalars).
        self.value = np.clip(self.inputs[0].value, self.lo, self.hi)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        # d clip / da = 1 inside [lo, hi], 0 outside; on a bound, 1 (PyTorch; any value in
        # [0, 1] is a valid one-sided answer there). A select, as in relu: inf * 0 would be nan.
        self.store_gradients(gradient, np.where((a >= self.lo) & (a <= self.hi), gradient, 0))

    def forward_tangent(self):
        a, da = self.inputs[0].value, self.inputs[0].tangent
        # d clip(a) = da inside [lo, hi], on the bounds included as backward; 0 outside.
        self.tangent = _as_tangent_of(self.value, np.where((a >= self.lo) & (a <= self.hi), da, 0))


# ---- binary, broadcasting ------------------------------------------------------------------


class NodeDiv(NodeBase):
    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.divide(a.value, b.value)  # (numpy's, so a Python-float 0 gives inf, as arrays do)

    def backward(self):
        gradient = self.total_gradient()
        part_a = gradient / self.inputs[1].value  # d/da (a/b) = 1/b
        self.store_gradients(gradient, part_a, -part_a * self.value)  # d/db (a/b) = -a/b^2 = -(1/b)(a/b)

    def forward_tangent(self):
        a, b = self.inputs
        # d (a/b) = da / b - (a/b) db / b
        self.tangent = _as_tangent_of(self.value, (a.tangent - self.value * b.tangent) / b.value)


class NodeMaximum(NodeBase):
    """Elementwise max."""

    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.maximum(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # d max(a, b) / da = 1 where a > b, 0 where a < b; a tie gives each side half (PyTorch
        # and JAX), so maximum(x, x), one node twice, gets half + half: the whole cotangent.
        half = np.where(a == b, gradient / 2, 0)
        self.store_gradients(gradient, np.where(a > b, gradient, half), np.where(b > a, gradient, half))

    def forward_tangent(self):
        (a, da), (b, db) = ((node.value, node.tangent) for node in self.inputs)
        # d max(a, b) = da where a > b, db where b > a, and at a tie (da + db) / 2: backward's halves.
        half = np.where(a == b, (da + db) / 2, 0)
        self.tangent = _as_tangent_of(self.value, np.where(a > b, da, np.where(b > a, db, half)))


class NodeMinimum(NodeBase):
    """Elementwise min: maximum's rule with the comparisons turned around."""

    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.minimum(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # 1 to the smaller side, 0 to the larger; a tie gives each side half, so minimum(x, x)
        # passes the whole cotangent, as maximum does.
        half = np.where(a == b, gradient / 2, 0)
        self.store_gradients(gradient, np.where(a < b, gradient, half), np.where(b < a, gradient, half))

    def forward_tangent(self):
        (a, da), (b, db) = ((node.value, node.tangent) for node in self.inputs)
        # d min(a, b) = da where a < b, db where b < a, and at a tie (da + db) / 2: backward's halves.
        half = np.where(a == b, (da + db) / 2, 0)
        self.tangent = _as_tangent_of(self.value, np.where(a < b, da, np.where(b < a, db, half)))


class NodeWhere(NodeBase):
    """numpy's `where(mask, a, b)`: a where the constant `mask` is true, b elsewhere. The result
    has the broadcast shape of mask, a and b."""

    arity = 2
    broadcasts = True  # mask, a and b broadcast together: store_gradients sums each part back

    def __init__(self, name: str, input_nodes=None, mask=True):
        super().__init__(name, input_nodes)
        try:
            self.mask = np.asarray(mask)
        except ValueError:  # ragged lists
            self.mask = None
        if self.mask is None or self.mask.dtype != bool:
            raise GraphError(f"node {name!r}: mask must be a bool or nested lists of bools, got {mask!r}")

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.where(self.mask, a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        # d/da = mask, d/db = not mask. Selected, not multiplied: where the mask does not pick a
        # side, that side gets exactly 0 even if the cotangent there is inf or nan (nan * 0 = nan).
        self.store_gradients(gradient, np.where(self.mask, gradient, 0), np.where(self.mask, 0, gradient))

    def forward_tangent(self):
        a, b = self.inputs
        # d where(mask, a, b) = where(mask, da, db); the result may be larger than both (the mask's shape).
        self.tangent = _as_tangent_of(self.value, np.where(self.mask, a.tangent, b.tangent))


class NodePow(NodeBase):
    """`a ** b` elementwise, for a base a > 0 (the exponent b need not be an integer)."""

    arity = 2
    broadcasts = True

    def forward(self, value=None):
        a, b = self.inputs
        self.value = np.power(a.value, b.value)

    def backward(self):
        gradient = self.total_gradient()
        a, b = (node.value for node in self.inputs)
        # d/da a^b = b a^(b-1);  d/db a^b = a^b log(a). At a = 0, a^b does not change with b:
        # 0 (PyTorch and JAX), where log(0) would make it 0 * -inf = nan.
        log_a = np.log(np.where(a == 0, 1, a))
        self.store_gradients(gradient, gradient * b * np.power(a, b - 1), gradient * self.value * log_a)

    def forward_tangent(self):
        (a, da), (b, db) = ((node.value, node.tangent) for node in self.inputs)
        # d a^b = b a^(b-1) da + a^b log(a) db, with log(a) taken as 0 at a = 0, as backward.
        log_a = np.log(np.where(a == 0, 1, a))
        self.tangent = _as_tangent_of(self.value, b * np.power(a, b - 1) * da + self.value * log_a * db)
