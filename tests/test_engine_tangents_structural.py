"""Forward mode for the structural ops (reductions, scans, movement, contractions, windows):
each node's forward_tangent() is the derivative of its forward() along its inputs' tangents.

Away from kinks that is checked against a central difference of forward(), in float64 and
float32 (the tangent keeps the value's shape and dtype). At the kinks (tied maxima, a tied
window, products with zeros) the tangent must be J t for the very J whose transpose backward()
applies: there the Jacobian forward_tangent() builds column by column is compared with the
one backward() builds row by row."""

from __future__ import annotations

import numpy as np
import pytest

import autodiff as ad


def spread_out(rng, shape):
    """Values at least 0.25 apart and 0.5 from zero, for any draw (so no tie, no zero spread and
    no zero norm, where the ops have kinks), exact in float32."""
    size = int(np.prod(shape))
    magnitudes = 0.5 + (rng.permutation(size) + rng.uniform(0.0, 0.5, size)) / 2  # each 0.25 from the next
    values = rng.choice([-1.0, 1.0], size) * magnitudes
    return values.reshape(shape).astype(np.float32).astype(np.float64)


def unary(node_class, **attrs):
    return lambda a: node_class("n", [a], **attrs)


def joining(node_class, **attrs):
    return lambda *inputs: node_class("n", list(inputs), **attrs)


ZEROS_1 = [[2.0, 0.0, -1.5], [0.5, 3.0, -2.0]]
ZEROS_2 = [[2.0, 0.0, 0.0], [0.0, 3.0, -2.0]]

REDUCTIONS = [
    ("reduce_sum", ad.NodeReduceSum),
    ("reduce_mean", ad.NodeReduceMean),
    ("reduce_max", ad.NodeReduceMax),
    ("reduce_min", ad.NodeReduceMin),
    ("reduce_prod", ad.NodeReduceProd),
    ("norm", ad.NodeNorm),
]
REDUCTION_AXES = [
    ((), None, False),
    ((2, 3), None, False),
    ((2, 3), None, True),
    ((2, 3), -1, False),
    ((2, 3, 2), 1, True),
]
STATISTICS = [("var", ad.NodeVar), ("std", ad.NodeStd)]
STATISTIC_AXES = [((4,), None, False, 0), ((2, 3), None, True, 1), ((2, 3), -2, False, 1), ((2, 3, 2), 1, True, 0)]
GROUPED = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}

# (id, build(*input nodes) -> the node, the inputs' shapes, or their values where they matter)
CASES = [
    *(
        (f"{name}-{shape}-axis{axis}-keepdims{keepdims}", unary(node_class, axis=axis, keepdims=keepdims), [shape])
        for name, node_class in REDUCTIONS
        for shape, axis, keepdims in REDUCTION_AXES
    ),
    ("reduce_prod-one-zero", unary(ad.NodeReduceProd, axis=1), [ZEROS_1]),
    ("reduce_prod-two-zeros", unary(ad.NodeReduceProd), [ZEROS_2]),
    *(
        (f"{name}-{shape}-axis{axis}-keepdims{keepdims}-ddof{ddof}", unary(node_class, **attrs), [shape])
        for name, node_class in STATISTICS
        for shape, axis, keepdims, ddof in STATISTIC_AXES
        for attrs in [{"axis": axis, "keepdims": keepdims, "ddof": ddof}]
    ),
    ("dot-1d-1d", joining(ad.NodeDot), [(3,), (3,)]),
    ("dot-1d-2d", joining(ad.NodeDot), [(3,), (3, 2)]),
    ("dot-2d-1d", joining(ad.NodeDot), [(2, 3), (3,)]),
    ("dot-2d-2d", joining(ad.NodeDot), [(2, 3), (3, 2)]),
    ("cumsum-scalar", unary(ad.NodeCumSum), [()]),
    ("cumsum-axis-2", unary(ad.NodeCumSum, axis=-2), [(3, 2)]),
    ("cumprod-scalar", unary(ad.NodeCumProd), [()]),
    ("cumprod-axis0", unary(ad.NodeCumProd, axis=0), [(3, 2)]),
    ("cumprod-one-zero", unary(ad.NodeCumProd), [ZEROS_1]),
    ("cumprod-two-zeros", unary(ad.NodeCumProd, axis=-1), [ZEROS_2]),
    ("transpose-reversed", unary(ad.NodeTranspose), [(2, 3, 2)]),
    ("transpose-axes", unary(ad.NodeTranspose, axes=[1, 2, 0]), [(2, 3, 2)]),
    ("reshape", unary(ad.NodeReshape, shape=[3, 1, 2]), [(2, 3)]),
    ("broadcast_to", unary(ad.NodeBroadcastTo, shape=[4, 2, 3]), [(2, 1)]),
    ("take-repeats-negative", unary(ad.NodeTake, indices=[2, 0, 2, -1], axis=-1), [(2, 3)]),
    ("slice", unary(ad.NodeSlice, starts=[None, -1], stops=[None, 0], steps=[-1, -2]), [(3, 4)]),
    ("concatenate", joining(ad.NodeConcatenate, axis=-1), [(2, 3), (2, 1), (2, 2)]),
    ("stack", joining(ad.NodeStack, axis=-1), [(2, 3), (2, 3)]),
    ("matmul-1d-1d", joining(ad.NodeMatmul), [(3,), (3,)]),
    ("matmul-1d-left", joining(ad.NodeMatmul), [(3,), (4, 3, 2)]),
    ("matmul-1d-right", joining(ad.NodeMatmul), [(4, 2, 3), (3,)]),
    ("matmul-batch-broadcast", joining(ad.NodeMatmul), [(4, 1, 2, 3), (5, 3, 2)]),
    ("einsum-trace", joining(ad.NodeEinsum, subscripts="ii->"), [(3, 3)]),
    ("einsum-diagonal", joining(ad.NodeEinsum, subscripts="ii->i"), [(3, 3)]),
    ("einsum-summed-away", joining(ad.NodeEinsum, subscripts="ij,k->i"), [(2, 3), (4,)]),
    ("einsum-3-operands", joining(ad.NodeEinsum, subscripts="ij,jk,k->i"), [(2, 3), (3, 4), (4,)]),
    ("conv1d", joining(ad.NodeConv1d), [(1, 1, 5), (1, 1, 2)]),
    ("conv1d-strided-grouped", joining(ad.NodeConv1d, **GROUPED), [(2, 4, 8), (6, 2, 3)]),
    ("max_pool1d", unary(ad.NodeMaxPool1d), [(2, 3, 6)]),
    ("max_pool1d-overlapping", unary(ad.NodeMaxPool1d, kernel=3, stride=1), [(1, 2, 7)]),
]


def operands(rng, shapes_or_values):
    """(values, tangents) in float64, both exact in float32: an operand given by its shape is spread out."""
    values = [np.asarray(s, dtype=np.float64) if isinstance(s, list) else spread_out(rng, s) for s in shapes_or_values]
    tangents = [rng.normal(size=np.shape(v)).astype(np.float32).astype(np.float64) for v in values]
    return values, tangents


def forward_at(node, inputs, values):
    for node_input, value in zip(inputs, values):
        node_input.value = value
    node.forward()
    return np.asarray(node.value, dtype=np.float64)


@pytest.mark.parametrize(("build", "shapes"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_the_tangent_is_the_derivative_of_forward_along_the_input_tangents(build, shapes):
    values, tangents = operands(np.random.default_rng(0), shapes)
    inputs = [ad.NodeInput(f"x{k}") for k in range(len(values))]
    node = build(*inputs)

    h = 1e-6  # forward() in float64 at values -+ h tangents
    plus = forward_at(node, inputs, [v + h * t for v, t in zip(values, tangents)])
    minus = forward_at(node, inputs, [v - h * t for v, t in zip(values, tangents)])
    difference = (plus - minus) / (2 * h)
    scale = max(1.0, float(np.max(np.abs(difference), initial=0.0)))

    for dtype, tolerance in [(np.float64, 1e-6), (np.float32, 1e-4)]:
        for node_input, value, tangent in zip(inputs, values, tangents):
            node_input.value, node_input.tangent = value.astype(dtype), tangent.astype(dtype)
        node.forward()
        node.forward_tangent()
        assert np.shape(node.tangent) == np.shape(node.value)
        assert np.result_type(node.tangent) == np.result_type(node.value) == dtype
        np.testing.assert_allclose(node.tangent, difference, rtol=tolerance, atol=tolerance * scale)


TIED = [[[1.0, 3.0, 3.0, 2.0, 3.0], [-1.0, -1.0, 0.5, 0.5, -1.0]]]  # (1, 2, 5)
KINKS = [
    ("reduce_max-tie", unary(ad.NodeReduceMax), [[2.0, 5.0, 5.0, 5.0]]),
    ("reduce_max-ties-axis0", unary(ad.NodeReduceMax, axis=0, keepdims=True), [[[1.0, 4.0], [1.0, 4.0], [0.0, 4.0]]]),
    ("reduce_min-ties-axis-1", unary(ad.NodeReduceMin, axis=-1), [[[1.0, 1.0, 3.0], [2.0, 0.0, 0.0]]]),
    ("max_pool1d-tied-overlapping-windows", unary(ad.NodeMaxPool1d, kernel=3, stride=1), [TIED]),
    ("max_pool1d-tied-windows", unary(ad.NodeMaxPool1d, kernel=2), [TIED]),
    ("reduce_prod-one-zero", unary(ad.NodeReduceProd, axis=1), [ZEROS_1]),
    ("reduce_prod-two-zeros", unary(ad.NodeReduceProd), [ZEROS_2]),
    ("cumprod-one-zero", unary(ad.NodeCumProd), [ZEROS_1]),
    ("cumprod-two-zeros", unary(ad.NodeCumProd, axis=0), [ZEROS_2]),
]


def basis(shape):
    """The unit arrays of `shape`, one per element."""
    return [np.eye(int(np.prod(shape)))[k].reshape(shape) for k in range(int(np.prod(shape)))]


@pytest.mark.parametrize(("build", "values"), [case[1:] for case in KINKS], ids=[case[0] for case in KINKS])
def test_at_a_kink_the_tangent_applies_the_jacobian_whose_transpose_backward_applies(build, values):
    values = [np.asarray(v) for v in values]
    inputs = [ad.NodeInput(f"x{k}") for k in range(len(values))]
    node = build(*inputs)
    feed = dict(zip(inputs, values))
    ad.run(feed, [*inputs, node])
    out_shape = np.shape(node.value)

    # Column by column: forward_tangent() along each input's unit tangents (the others' zero).
    columns = []
    for k, value in enumerate(values):
        for unit in basis(value.shape):
            for j, node_input in enumerate(inputs):
                node_input.tangent = unit if j == k else np.zeros_like(values[j])
            node.forward_tangent()
            columns.append(np.reshape(node.tangent, -1))
    # Row by row: backward() from each unit cotangent.
    rows = []
    for unit in basis(out_shape):
        ad.run(feed, [*inputs, node], cotangent=unit)
        rows.append(np.concatenate([np.reshape(x.gradients[x], -1) for x in inputs]))

    np.testing.assert_array_equal(np.stack(columns, axis=1), np.stack(rows, axis=0))


def test_python_float_operands_get_a_scalar_tangent():
    """The notebook's scalar graphs: a Python float through a reduction or a scan."""
    scalar_ops = [(ad.NodeReduceSum, 0.5), (ad.NodeReduceMax, 0.5), (ad.NodeReduceProd, 0.5), (ad.NodeCumSum, [0.5])]
    for node_class, expected in scalar_ops:
        a = ad.NodeInput("a")
        node = node_class("n", [a])
        a.value, a.tangent = 3.0, 0.5
        node.forward()
        node.forward_tangent()
        assert np.shape(node.tangent) == np.shape(node.value)
        np.testing.assert_array_equal(node.tangent, expected)
