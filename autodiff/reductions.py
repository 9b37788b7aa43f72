"""Reductions: ops whose result has fewer elements than their operand. reduce_sum,
reduce_mean, reduce_max, reduce_min and reduce_prod reduce all elements (axis=None) or one
`axis`, with `keepdims`, and so do the statistics var, std (with `ddof`) and norm; dot sums
products over the axis its operands share. And the scans, cumsum and cumprod: the running sum
and product along one axis.

Products are differentiated without dividing by an element: `prod / a_i` is the classic
rule, and it is nan at a_i = 0."""

from __future__ import annotations

import numpy as np

from .nodes import GraphError, NodeBase, axis_attr, shape_of


class Reduction(NodeBase):
    """What reduce_sum, reduce_mean, reduce_max, reduce_min, reduce_prod, var, std, norm and
    logsumexp share: the attrs `axis` (None = every axis, or one int) and `keepdims`, and the
    way back from the result's shape."""

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

    def forward_tangent(self):
        # d sum = sum(da)
        self.tangent = np.sum(self.inputs[0].tangent, axis=self.axis, keepdims=self.keepdims)


class NodeReduceMean(Reduction):
    def forward(self, value=None):
        self.value = np.mean(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        count = np.size(a) if self.axis is None else shape_of(a)[self.axis]
        # d mean / d a_i = 1/n for each of the n averaged elements.
        self.store_gradients(gradient, np.broadcast_to(self.with_reduced_axes(gradient) / count, shape_of(a)))

    def forward_tangent(self):
        # d mean = mean(da)
        self.tangent = np.mean(self.inputs[0].tangent, axis=self.axis, keepdims=self.keepdims)


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

    def forward_tangent(self):
        # d max = sum_i [a_i = max] da_i / ties: the mean of the tied maxima's tangents, backward's
        # even split transposed (and, as there, 0 where no element equals the max: a nan slice).
        a, da = self.inputs[0].value, self.inputs[0].tangent
        is_max = a == self.with_reduced_axes(self.value)
        ties = np.sum(is_max, axis=self.axis, keepdims=True, dtype=np.result_type(da))  # (an int count widens float32)
        self.tangent = np.sum(np.where(is_max, da / ties, 0), axis=self.axis, keepdims=self.keepdims)


class NodeReduceMin(NodeReduceMax):
    """reduce_max's rule fits as it is: it sends the cotangent to the elements equal to the
    result (ties split evenly), and that result is now the min."""

    def forward(self, value=None):
        self.value = np.min(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims)


def _products_before(x):
    """prod_{k<i} x_k along the last axis: 1, x_0, x_0 x_1, ... (the running product, shifted)."""
    return np.cumprod(np.concatenate([np.ones_like(x[..., :1]), x[..., :-1]], axis=-1), axis=-1)


class NodeReduceProd(Reduction):
    """The product of all elements (axis=None) or along one `axis`, with `keepdims`."""

    def forward(self, value=None):
        self.value = np.prod(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        # The reduced elements along the last axis: all of them flattened, or the axis moved there.
        x = np.reshape(a, -1) if self.axis is None else np.moveaxis(a, self.axis, -1)
        # d/da_i prod_k a_k = prod_{k != i} a_k = (prod_{k<i} a_k)(prod_{k>i} a_k): right with
        # one zero in the slice (only its own entry is nonzero) and with two (all are zero).
        others = _products_before(x) * _products_before(x[..., ::-1])[..., ::-1]
        others = others.reshape(shape_of(a)) if self.axis is None else np.moveaxis(others, -1, self.axis)
        self.store_gradients(gradient, self.with_reduced_axes(gradient) * others)

    def forward_tangent(self):
        # d prod = sum_i (prod_{k != i} a_k) da_i, with backward's products of the others (no division).
        a, da = np.asarray(self.inputs[0].value), np.asarray(self.inputs[0].tangent)
        x, dx = (v.reshape(-1) if self.axis is None else np.moveaxis(v, self.axis, -1) for v in (a, da))
        others = _products_before(x) * _products_before(x[..., ::-1])[..., ::-1]
        self.tangent = np.reshape(np.sum(others * dx, axis=-1), shape_of(self.value))


# ---- statistics: var, std and norm ---------------------------------------------------------


class Spread(Reduction):
    """What var and std share: the reduction's attrs and `ddof`, the delta degrees of freedom
    (the sum of squares is divided by n - ddof), and the deviations from the mean."""

    def __init__(self, name: str, input_nodes=None, axis: int | None = None, keepdims: bool = False, ddof: int = 0):
        super().__init__(name, input_nodes, axis, keepdims)
        if isinstance(ddof, bool) or not isinstance(ddof, (int, np.integer)) or ddof < 0:
            raise GraphError(f"node {name!r}: ddof must be a non-negative int, got {ddof!r}")
        self.ddof = int(ddof)

    def divisor(self) -> int:
        """n - ddof, for the n elements of each reduced slice."""
        a = self.inputs[0].value
        n = np.size(a) if self.axis is None else shape_of(a)[self.axis]
        if n <= self.ddof:  # numpy would divide by zero or less, with a warning
            raise ValueError(f"{n} element(s) in each reduced slice, need more than ddof = {self.ddof}")
        return n - self.ddof

    def deviations(self):
        """a - mean(a), the mean taken over the reduced axis (or all) and broadcast back."""
        a = self.inputs[0].value
        return a - np.mean(a, axis=self.axis, keepdims=True)


class NodeVar(Spread):
    """numpy's `var(a, axis, keepdims, ddof)`: sum((a - mean)^2) / (n - ddof)."""

    def forward(self, value=None):
        self.divisor()  # (refuses a slice of ddof elements or fewer)
        self.value = np.var(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims, ddof=self.ddof)

    def backward(self):
        gradient = self.total_gradient()
        # d var / d a_i = 2 (a_i - mean) / (n - ddof): the mean's own change adds
        # -2/(n - ddof) sum_j (a_j - mean) / n, and the deviations sum to 0.
        self.store_gradients(gradient, self.with_reduced_axes(gradient) * 2 * self.deviations() / self.divisor())

    def forward_tangent(self):
        # d var = 2/(n - ddof) * sum((a - mean) * da): the mean's own change meets deviations summing to 0.
        spread = np.sum(self.deviations() * self.inputs[0].tangent, axis=self.axis, keepdims=self.keepdims)
        self.tangent = 2 * spread / self.divisor()


class NodeStd(Spread):
    """numpy's `std(a, axis, keepdims, ddof)`: sqrt(var)."""

    def forward(self, value=None):
        self.divisor()  # (refuses a slice of ddof elements or fewer)
        self.value = np.std(self.inputs[0].value, axis=self.axis, keepdims=self.keepdims, ddof=self.ddof)

    def backward(self):
        gradient = self.total_gradient()
        # d sqrt(var) / d a_i = var' / (2 std) = (a_i - mean) / ((n - ddof) std): infinite where
        # std = 0, which is why the generator keeps its operands spread.
        std = self.with_reduced_axes(self.value)
        self.store_gradients(gradient, self.with_reduced_axes(gradient) * self.deviations() / (self.divisor() * std))

    def forward_tangent(self):
        # d std = sum((a - mean) * da) / ((n - ddof) std)
        spread = np.sum(self.deviations() * self.inputs[0].tangent, axis=self.axis, keepdims=self.keepdims)
        self.tangent = spread / (self.divisor() * self.value)


class NodeNorm(Reduction):
    """The Euclidean norm `sqrt(sum(a^2))` of all elements (axis=None) or along one `axis`."""

    def forward(self, value=None):
        a = self.inputs[0].value
        self.value = np.sqrt(np.sum(a * a, axis=self.axis, keepdims=self.keepdims))

    def backward(self):
        gradient = self.total_gradient()
        # d |a| / d a_i = 2 a_i / (2 |a|) = a_i / |a|: infinite at the zero vector, which the
        # generator avoids.
        norm = self.with_reduced_axes(self.value)
        self.store_gradients(gradient, self.with_reduced_axes(gradient) * self.inputs[0].value / norm)

    def forward_tangent(self):
        # d |a| = sum(a * da) / |a|
        a, da = self.inputs[0].value, self.inputs[0].tangent
        self.tangent = np.sum(a * da, axis=self.axis, keepdims=self.keepdims) / self.value


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

    def forward_tangent(self):
        # d (a @ b) = da @ b + a @ db
        a, b = self.inputs
        self.tangent = a.tangent @ b.value + a.value @ b.tangent


# ---- scans: one result per element, running along `axis` ------------------------------------
# numpy runs along a scalar as along a 1-element vector: its result has shape (1,), and the
# rules below reshape the gradient back to the operand's shape ().


class NodeCumSum(NodeBase):
    """numpy's `cumsum(a, axis)`: out_j = sum_{i<=j} a_i."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axis: int = -1):
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis, allow_none=False)

    def forward(self, value=None):
        self.value = np.cumsum(self.inputs[0].value, axis=self.axis)

    def backward(self):
        gradient = self.total_gradient()
        # d/da_i = sum_{j>=i} g_j: the running sum of the cotangent taken from the end.
        from_the_end = np.flip(np.cumsum(np.flip(gradient, self.axis), axis=self.axis), self.axis)
        self.store_gradients(gradient, np.reshape(from_the_end, shape_of(self.inputs[0].value)))

    def forward_tangent(self):
        # d out_j = sum_{i<=j} da_i
        self.tangent = np.cumsum(self.inputs[0].tangent, axis=self.axis)


class NodeCumProd(NodeBase):
    """numpy's `cumprod(a, axis)`: out_j = prod_{k<=j} a_k."""

    arity = 1

    def __init__(self, name: str, input_nodes=None, axis: int = -1):
        super().__init__(name, input_nodes)
        self.axis = axis_attr(name, axis, allow_none=False)

    def forward(self, value=None):
        self.value = np.cumprod(self.inputs[0].value, axis=self.axis)

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        x = np.moveaxis(np.atleast_1d(a), self.axis, -1)  # the scanned axis last
        g = np.moveaxis(gradient, self.axis, -1)
        # d/da_i = sum_{j>=i} g_j prod_{k<=j, k!=i} a_k = (prod_{k<i} a_k) S_i, with
        # S_i = sum_{j>=i} g_j prod_{i<k<=j} a_k, which runs back from the end without a
        # division: S_{n-1} = g_{n-1}, S_i = g_i + a_{i+1} S_{i+1}.
        before = _products_before(x)
        part = np.zeros_like(x, dtype=np.result_type(x, g))  # (zeros_like: a Dual for a Dual x, see dual.py)
        later = 0  # a_{i+1} S_{i+1}; nothing after the last element
        for i in reversed(range(x.shape[-1])):
            s_i = g[..., i] + later
            part[..., i] = before[..., i] * s_i
            later = x[..., i] * s_i
        self.store_gradients(gradient, np.reshape(np.moveaxis(part, -1, self.axis), shape_of(a)))

    def forward_tangent(self):
        # d out_j = d out_{j-1} a_j + out_{j-1} da_j, the product rule step by step (no division).
        a, da = self.inputs[0].value, self.inputs[0].tangent
        x, dx = (np.moveaxis(np.atleast_1d(v), self.axis, -1) for v in (a, da))  # the scanned axis last
        before = _products_before(x)  # out_{j-1}, and 1 before the first
        tangent = np.zeros(x.shape, dtype=np.result_type(x, dx))
        running = 0  # d out_{j-1}; nothing before the first element
        for j in range(x.shape[-1]):
            running = running * x[..., j] + before[..., j] * dx[..., j]
            tangent[..., j] = running
        self.tangent = np.moveaxis(tangent, -1, self.axis)
