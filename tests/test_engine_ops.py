"""The wider op set of graph-format.md: every node class against a plain numpy formula (its
value) and central differences (its vector-Jacobian product with a random cotangent), in
float64 and float32; then the conventions at kinks and ties, products with zeros, selection,
stability, and the attrs."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest

import autodiff as ad
import autodiff.nodes

# ---- input domains: where the derivative exists and central differences are accurate -------


def real(rng, shapes):
    return [rng.uniform(-2.0, 2.0, shape) for shape in shapes]


def positive(rng, shapes):  # log, sqrt, and the base of pow: away from 0
    return [rng.uniform(0.5, 2.0, shape) for shape in shapes]


def nonzero(rng, shapes):  # relu, abs: away from the kink at 0
    return [rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape) for shape in shapes]


def base_and_exponent(rng, shapes):
    return [rng.uniform(0.5, 2.0, shapes[0]), rng.uniform(-2.0, 2.0, shapes[1])]


def numerator_and_denominator(rng, shapes):
    return [rng.uniform(-2.0, 2.0, shapes[0]), *nonzero(rng, shapes[1:])]


def apart(rng, shapes):
    """maximum's operands: no ties, every broadcast pair at least 0.2 apart."""
    while True:
        a, b = real(rng, shapes)
        if np.all(np.abs(a - b) > 0.2):
            return [a, b]


def off_the_bounds(rng, shapes):
    """clip's operand, with lo = -1 and hi = 1: at least 0.2 from either bound."""
    return [rng.choice([-1.5, 0.0, 1.5], shape) + rng.uniform(-0.3, 0.3, shape) for shape in shapes]


def distinct(rng, shapes):
    """reduce_max's operand: no ties anywhere, elements at least 0.25 apart."""
    (shape,) = shapes
    size = int(np.prod(shape))
    return [((rng.permutation(size) + rng.uniform(0.0, 0.5, size)) / 2 - size / 4).reshape(shape)]


def above_minus_one(rng, shapes):  # log1p: a > -1, away from it
    return [rng.uniform(-0.9, 2.0, shape) for shape in shapes]


# ---- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable  # input nodes -> the node under test
    reference: Callable  # float64 arrays -> the float64 value it must have
    shapes: tuple
    domain: Callable = real


UNARY = [
    ("neg", ad.NodeNeg, np.negative, real),
    ("exp", ad.NodeExp, np.exp, real),
    ("log", ad.NodeLog, np.log, positive),
    ("sqrt", ad.NodeSqrt, np.sqrt, positive),
    ("tanh", ad.NodeTanh, np.tanh, real),
    ("sin", ad.NodeSin, np.sin, real),
    ("cos", ad.NodeCos, np.cos, real),
    ("relu", ad.NodeRelu, lambda a: np.where(a > 0, a, 0.0), nonzero),
    ("abs", ad.NodeAbs, np.abs, nonzero),
    ("clip", partial(ad.NodeClip, lo=-1.0, hi=1.0), lambda a: np.clip(a, -1.0, 1.0), off_the_bounds),
    ("softplus", ad.NodeSoftplus, lambda a: np.log(1 + np.exp(a)), real),
    ("log_sigmoid", ad.NodeLogSigmoid, lambda a: np.log(1 / (1 + np.exp(-a))), real),
    ("log1p", ad.NodeLog1p, lambda a: np.log(1 + a), above_minus_one),
    ("expm1", ad.NodeExpm1, lambda a: np.exp(a) - 1, real),
    ("erf", ad.NodeErf, np.vectorize(math.erf), real),
]
BINARY = [
    ("div", ad.NodeDiv, np.divide, numerator_and_denominator),
    ("maximum", ad.NodeMaximum, np.maximum, apart),
    ("minimum", ad.NodeMinimum, np.minimum, apart),
    ("pow", ad.NodePow, np.power, base_and_exponent),
    ("logaddexp", ad.NodeLogAddExp, lambda a, b: np.log(np.exp(a) + np.exp(b)), real),
    ("atan2", ad.NodeAtan2, np.arctan2, nonzero),  # (a, b) away from (0, 0)
]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((3,), ())]


def _logsumexp(a, axis=None, keepdims=False):  # the naive formula: fine for |a| <= 2
    return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))


REDUCTIONS = [
    ("reduce_mean", ad.NodeReduceMean, np.mean, real),
    ("reduce_max", ad.NodeReduceMax, np.max, distinct),
    ("reduce_min", ad.NodeReduceMin, np.min, distinct),
    ("reduce_prod", ad.NodeReduceProd, np.prod, real),
    ("logsumexp", ad.NodeLogSumExp, _logsumexp, real),
    ("var", ad.NodeVar, np.var, real),
    ("norm", ad.NodeNorm, lambda a, axis, keepdims: np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims)), nonzero),
]
REDUCTION_AXES = [
    ((), None, False),
    ((3,), None, False),
    ((3,), 0, False),
    ((3,), -1, True),
    *(((2, 3), axis, keepdims) for axis in (None, 0, 1, -1) for keepdims in (False, True)),
    ((2, 3, 4), 1, False),
]


def _softmax(a, axis):
    e = np.exp(a)
    return e / np.sum(e, axis=axis, keepdims=True)


FUSED = [
    ("softmax", ad.NodeSoftmax, _softmax),
    ("log_softmax", ad.NodeLogSoftmax, lambda a, axis: np.log(_softmax(a, axis))),
]
FUSED_AXES = [((), -1), ((3,), -1), ((2, 3), -1), ((2, 3), 0), ((2, 3), 1), ((2, 3, 4), 1)]

# Scans: numpy runs along a scalar as along a 1-element vector (shape (1,)).
SCANS = [("cumsum", ad.NodeCumSum, np.cumsum), ("cumprod", ad.NodeCumProd, np.cumprod)]
SCAN_AXES = [((), -1), ((3,), -1), ((4,), 0), ((2, 3), 0), ((2, 3), 1), ((2, 3), -2), ((2, 3, 4), 1)]

# (mask, a's shape, b's shape): the result has the broadcast shape of all three.
WHERES = [
    (True, (), ()),
    ([True, False, True], (3,), (3,)),
    ([[True, False, False], [False, True, True]], (2, 1), (3,)),
    (False, (2, 3), ()),
    ([[True], [False]], (3,), (2, 3)),
]
TAKES = [((3,), [2, 0, 2, -1], 0), ((2, 3), [1, -3], 1), ((2, 3), [0, 0, 1], -2), ((2, 3, 4), [3, 1, -1], -1)]
# (shape, starts, stops, steps)
SLICES = [
    ((), [], [], []),
    ((5,), [None], [None], [-1]),
    ((6,), [1], [None], [2]),
    ((5,), [3], [4], [None]),
    ((3, 4), [None, -1], [None, 0], [-1, -2]),
    ((2, 3, 4), [1, None, 1], [None, 2, None], [None, None, 2]),
]
CONCATENATIONS = [
    ([(2,), (3,)], 0),
    ([(2,), (3,), (1,)], 0),
    ([(2, 3), (2, 1)], -1),
    ([(2, 3), (1, 3), (3, 3), (2, 3)], 0),
    ([(2, 2), (2, 3), (2, 1)], 1),
]
STACKS = [([(), ()], 0), ([(3,), (3,)], 0), ([(3,), (3,), (3,)], -1), ([(2, 3), (2, 3)], 1), ([(2, 3)] * 4, -3)]

TRANSPOSES = [((), None), ((3,), None), ((2, 3), None), ((2, 3), (1, 0)), ((2, 3, 4), None), ((2, 3, 4), (1, 2, 0))]
RESHAPES = [((), (1,)), ((3,), (3, 1)), ((2, 3), (3, 2)), ((2, 3), (6,)), ((2, 3), (1, 2, 3))]
BROADCASTS = [((), (2, 3)), ((3,), (2, 3)), ((1, 3), (4, 2, 3)), ((2, 1), (2, 3))]

# var and std with ddof; std's operands spread (distinct), as it is not differentiable at std = 0.
STATISTICS = [("var", ad.NodeVar, np.var, real), ("std", ad.NodeStd, np.std, distinct)]
STATISTIC_AXES = [  # (shape, axis, keepdims, ddof): each reduced slice has more than ddof elements
    ((3,), None, False, 0),
    ((3,), 0, True, 1),
    ((2, 3), None, True, 1),
    ((2, 3), 0, False, 0),
    ((2, 3), -1, False, 1),
    ((2, 3), -2, True, 1),
    ((2, 3, 4), 1, False, 1),
    ((2, 3, 4), -1, True, 0),
]
# matmul: 1-D operands on either side (and both), batch axes broadcast on either side.
MATMULS = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3,)),
    ((2, 3), (3, 4)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((1, 2, 3), (4, 3, 2)),
    ((4, 1, 2, 3), (5, 3, 2)),
    ((3,), (5, 3, 2)),
    ((5, 2, 3), (3,)),
]
EINSUMS = [
    ("ii->", [(3, 3)]),  # trace
    ("ii->i", [(3, 3)]),  # diagonal
    ("iij->j", [(3, 3, 2)]),  # a diagonal summed, another label kept
    ("iii->i", [(2, 2, 2)]),
    ("ijk->ki", [(2, 3, 4)]),  # j summed away, the rest transposed
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("i,j->ij", [(2,), (3,)]),  # outer product
    ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,k->i", [(2, 3), (4,)]),  # j and k summed away, each in one operand only
    ("ij,ij,ij->", [(2, 3), (2, 3), (2, 3)]),
    ("ij,jk,k->i", [(2, 3), (3, 4), (4,)]),
]
# (x's shape, w's shape, attrs): (W + 2 padding - dilation (K - 1) - 1) is not always a multiple of stride.
CONVOLUTIONS = [
    ((1, 1, 5), (1, 1, 2), {}),
    ((2, 4, 8), (6, 2, 3), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
    ((2, 3, 7), (3, 1, 3), {"stride": 3, "padding": 2, "groups": 3}),
    ((1, 2, 9), (4, 2, 2), {"stride": 2, "dilation": 3}),
]
POOLS = [
    ((1, 1, 6), {}),
    ((2, 3, 7), {"kernel": 3, "stride": 2}),
    ((1, 2, 8), {"kernel": 3, "stride": 1}),
    ((2, 1, 5), {"kernel": 5}),
]


def conv1d_loops(x, w, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch's conv1d by its definition, one element at a time: out[n, o, t] is the sum over
    the channels c of o's group and the taps k of w[o, c, k] x[n, c, t stride + k dilation - padding],
    reading 0 outside x. Output channel o's group is o // (C_out / groups)."""
    c_out, c_group, kernel = w.shape
    width_out = (x.shape[2] + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], c_out, width_out))
    for n, o, t in np.ndindex(out.shape):
        first_channel = o // (c_out // groups) * c_group
        for c, k in np.ndindex(c_group, kernel):
            i = t * stride + k * dilation - padding
            if 0 <= i < x.shape[2]:
                out[n, o, t] += w[o, c, k] * x[n, first_channel + c, i]
    return out


def max_pool1d_loops(x, kernel=2, stride=None):
    """The max of each window of `kernel` positions, `stride` apart (None: kernel)."""
    stride = stride or kernel
    width_out = (x.shape[2] - kernel) // stride + 1
    return np.array(
        [[[max(row[t * stride : t * stride + kernel]) for t in range(width_out)] for row in x_n] for x_n in x]
    )


def _cases() -> list[Case]:
    cases = []
    for name, node_class, reference, domain in UNARY:
        for shape in [(), (3,), (2, 3)]:
            build = lambda a, node_class=node_class: node_class("n", [a])  # noqa: E731
            cases.append(Case(f"{name}-{shape}", build, reference, (shape,), domain))
    for name, node_class, reference, domain in BINARY:
        for shapes in BINARY_SHAPES:
            build = lambda a, b, node_class=node_class: node_class("n", [a, b])  # noqa: E731
            cases.append(Case(f"{name}-{shapes[0]}-{shapes[1]}", build, reference, shapes, domain))
    for name, node_class, reference, domain in REDUCTIONS:
        for shape, axis, keepdims in REDUCTION_AXES:
            attrs = {"axis": axis, "keepdims": keepdims}
            build = lambda a, node_class=node_class, attrs=attrs: node_class("n", [a], **attrs)  # noqa: E731
            numpy = lambda a, reference=reference, attrs=attrs: reference(a, **attrs)  # noqa: E731
            cases.append(Case(f"{name}-{shape}-axis{axis}-keepdims{keepdims}", build, numpy, (shape,), domain))
    for name, node_class, reference in FUSED:
        for shape, axis in FUSED_AXES:
            build = lambda a, node_class=node_class, axis=axis: node_class("n", [a], axis=axis)  # noqa: E731
            numpy = lambda a, reference=reference, axis=axis: reference(a, axis)  # noqa: E731
            cases.append(Case(f"{name}-{shape}-axis{axis}", build, numpy, (shape,)))
        build = lambda a, node_class=node_class: node_class("n", [a])  # noqa: E731
        cases.append(Case(f"{name}-(2, 3)-default-axis", build, lambda a, r=reference: r(a, -1), ((2, 3),)))
    for name, node_class, reference in SCANS:
        for shape, axis in SCAN_AXES:
            build = lambda a, node_class=node_class, axis=axis: node_class("n", [a], axis=axis)  # noqa: E731
            numpy = lambda a, reference=reference, axis=axis: reference(a, axis=axis)  # noqa: E731
            cases.append(Case(f"{name}-{shape}-axis{axis}", build, numpy, (shape,)))
        build = lambda a, node_class=node_class: node_class("n", [a])  # noqa: E731
        cases.append(Case(f"{name}-(2, 3)-default-axis", build, lambda a, r=reference: r(a, axis=-1), ((2, 3),)))
    for mask, *shapes in WHERES:
        build = lambda a, b, mask=mask: ad.NodeWhere("n", [a, b], mask=mask)  # noqa: E731
        numpy = lambda a, b, mask=mask: np.where(mask, a, b)  # noqa: E731
        cases.append(Case(f"where-{np.shape(mask)}-{shapes[0]}-{shapes[1]}", build, numpy, tuple(shapes)))
    for shape, indices, axis in TAKES:
        build = lambda a, i=indices, axis=axis: ad.NodeTake("n", [a], indices=i, axis=axis)  # noqa: E731
        numpy = lambda a, i=indices, axis=axis: np.take(a, i, axis=axis)  # noqa: E731
        cases.append(Case(f"take-{shape}-{indices}-axis{axis}", build, numpy, (shape,)))
    for shape, *bounds in SLICES:
        build = lambda a, b=bounds: ad.NodeSlice("n", [a], starts=b[0], stops=b[1], steps=b[2])  # noqa: E731
        numpy = lambda a, b=bounds: a[tuple(map(slice, *b))]  # noqa: E731
        cases.append(Case(f"slice-{shape}-{bounds}", build, numpy, (shape,)))
    for shapes, axis in CONCATENATIONS:
        build = lambda *xs, axis=axis: ad.NodeConcatenate("n", list(xs), axis=axis)  # noqa: E731
        numpy = lambda *vs, axis=axis: np.concatenate(vs, axis=axis)  # noqa: E731
        cases.append(Case(f"concatenate-{shapes}-axis{axis}", build, numpy, tuple(shapes)))
    for shapes, axis in STACKS:
        build = lambda *xs, axis=axis: ad.NodeStack("n", list(xs), axis=axis)  # noqa: E731
        numpy = lambda *vs, axis=axis: np.stack(vs, axis=axis)  # noqa: E731
        cases.append(Case(f"stack-{shapes}-axis{axis}", build, numpy, tuple(shapes)))
    for shape, axes in TRANSPOSES:
        build = lambda a, axes=axes: ad.NodeTranspose("n", [a], axes=axes)  # noqa: E731
        cases.append(Case(f"transpose-{shape}-{axes}", build, lambda a, axes=axes: np.transpose(a, axes), (shape,)))
    for shape, new_shape in RESHAPES:
        build = lambda a, s=new_shape: ad.NodeReshape("n", [a], shape=list(s))  # noqa: E731
        cases.append(Case(f"reshape-{shape}-{new_shape}", build, lambda a, s=new_shape: np.reshape(a, s), (shape,)))
    for shape, new_shape in BROADCASTS:
        build = lambda a, s=new_shape: ad.NodeBroadcastTo("n", [a], shape=list(s))  # noqa: E731
        numpy = lambda a, s=new_shape: np.broadcast_to(a, s)  # noqa: E731
        cases.append(Case(f"broadcast_to-{shape}-{new_shape}", build, numpy, (shape,)))
    for name, node_class, reference, domain in STATISTICS:
        for shape, axis, keepdims, ddof in STATISTIC_AXES:
            attrs = {"axis": axis, "keepdims": keepdims, "ddof": ddof}
            build = lambda a, node_class=node_class, attrs=attrs: node_class("n", [a], **attrs)  # noqa: E731
            numpy = lambda a, reference=reference, attrs=attrs: reference(a, **attrs)  # noqa: E731
            cases.append(
                Case(f"{name}-{shape}-axis{axis}-keepdims{keepdims}-ddof{ddof}", build, numpy, (shape,), domain)
            )
    for shapes in MATMULS:
        build = lambda a, b: ad.NodeMatmul("n", [a, b])  # noqa: E731
        cases.append(Case(f"matmul-{shapes[0]}-{shapes[1]}", build, np.matmul, shapes))
    for subscripts, shapes in EINSUMS:
        build = lambda *xs, s=subscripts: ad.NodeEinsum("n", list(xs), subscripts=s)  # noqa: E731
        numpy = lambda *vs, s=subscripts: np.einsum(s, *vs)  # noqa: E731
        cases.append(Case(f"einsum-{subscripts}", build, numpy, tuple(shapes)))
    for x_shape, w_shape, attrs in CONVOLUTIONS:
        build = lambda x, w, attrs=attrs: ad.NodeConv1d("n", [x, w], **attrs)  # noqa: E731
        numpy = lambda x, w, attrs=attrs: conv1d_loops(x, w, **attrs)  # noqa: E731
        cases.append(Case(f"conv1d-{x_shape}-{w_shape}-{attrs}", build, numpy, (x_shape, w_shape)))
    for shape, attrs in POOLS:
        build = lambda x, attrs=attrs: ad.NodeMaxPool1d("n", [x], **attrs)  # noqa: E731
        numpy = lambda x, attrs=attrs: max_pool1d_loops(x, **attrs)  # noqa: E731
        cases.append(Case(f"max_pool1d-{shape}-{attrs}", build, numpy, (shape,), distinct))
    return cases


CASES = _cases()
SCALAR_CASES = [case for case in CASES if all(shape == () for shape in case.shapes)]

# float32 results are compared with float64 references: value and gradient of a float32
# run carry float32 rounding (eps 1.2e-7) times the few operations of one op.
VALUE_TOLERANCE = {np.float64: {"rtol": 1e-12, "atol": 1e-14}, np.float32: {"rtol": 1e-5, "atol": 1e-6}}
# Central differences in float64 are good to about eps^(2/3) = 4e-11 relative (autodiff/numeric.py).
GRADIENT_TOLERANCE = {np.float64: {"rtol": 1e-6, "atol": 1e-8}, np.float32: {"rtol": 1e-5, "atol": 1e-6}}


def run_case(case: Case, dtype):
    """Runs `case` in `dtype` with a random cotangent; returns (value, the inputs' gradients,
    the float64 reference value, float64 central differences of the same VJP)."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    values = case.domain(rng, case.shapes)
    inputs = [ad.NodeInput(f"x{i}") for i in range(len(values))]
    output = ad.NodeOutput("out", [case.build(*inputs)])
    expected = case.reference(*values)
    cotangent = rng.standard_normal(np.shape(expected))
    ad.run({x: np.asarray(v, dtype=dtype) for x, v in zip(inputs, values)}, cotangent=cotangent.astype(dtype))
    value, gradients = output.value, [x.gradients[x] for x in inputs]
    numeric = ad.ngrad({x: np.asarray(v, dtype=np.float64) for x, v in zip(inputs, values)}, cotangent=cotangent)
    return value, gradients, expected, [numeric[x] for x in inputs]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_value_is_the_numpy_formula_in_the_dtype_of_the_inputs(case, dtype):
    value, _, expected, _ = run_case(case, dtype)
    assert np.asarray(value).dtype == dtype
    assert np.shape(value) == np.shape(expected)
    np.testing.assert_allclose(value, expected, **VALUE_TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_gradient_is_the_central_difference_vjp_in_the_dtype_of_the_inputs(case, dtype):
    _, gradients, _, numeric = run_case(case, dtype)
    for position, (gradient, expected) in enumerate(zip(gradients, numeric)):
        assert gradient.dtype == dtype, f"input {position}"
        assert np.shape(gradient) == np.shape(expected), f"input {position}"
        np.testing.assert_allclose(gradient, expected, **GRADIENT_TOLERANCE[dtype], err_msg=f"input {position}")


@pytest.mark.parametrize("case", SCALAR_CASES, ids=lambda case: case.id)
def test_python_float_inputs_give_the_values_and_gradients_of_0d_arrays(case):
    values = case.domain(np.random.default_rng(zlib.crc32(case.id.encode())), case.shapes)
    cotangent = np.full(np.shape(case.reference(*values)), 0.75)
    results = []
    for feed_value in (float, np.asarray):
        inputs = [ad.NodeInput(f"x{i}") for i in range(len(values))]
        output = ad.NodeOutput("out", [case.build(*inputs)])
        ad.run({x: feed_value(v) for x, v in zip(inputs, values)}, cotangent=cotangent)
        results.append([output.value, *(x.gradients[x] for x in inputs)])
    python_floats, arrays = results
    for got, expected in zip(python_floats, arrays):
        np.testing.assert_array_equal(got, expected)


# ---- kinks and ties: the conventions PyTorch and JAX agree on --------------------------------


def vjp(build, *values, cotangent=None):
    """(value, [gradient of each input]) of the node `build(*inputs)` fed `values`."""
    inputs = [ad.NodeInput(f"x{i}") for i in range(len(values))]
    output = ad.NodeOutput("out", [build(*inputs)])
    ad.run(dict(zip(inputs, values)), cotangent=cotangent)
    return output.value, [x.gradients[x] for x in inputs]


def test_relu_gradient_at_0_is_0():
    _, (gradient,) = vjp(lambda a: ad.NodeRelu("r", [a]), np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(gradient, [0.0, 0.0, 1.0])


def test_abs_gradient_at_0_is_0():
    _, (gradient,) = vjp(lambda a: ad.NodeAbs("r", [a]), np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(gradient, [-1.0, 0.0, 1.0])


def test_maximum_tie_splits_the_cotangent_in_half():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    v = np.array([4.0, 4.0, 4.0])
    _, (gradient_a, gradient_b) = vjp(lambda x, y: ad.NodeMaximum("m", [x, y]), a, b, cotangent=v)
    np.testing.assert_array_equal(gradient_a, [2.0, 0.0, 4.0])
    np.testing.assert_array_equal(gradient_b, [2.0, 4.0, 0.0])


def test_maximum_tie_halves_are_summed_back_over_a_broadcast():
    a, b = np.array([[1.0, 2.0], [1.0, 0.0]]), np.array([1.0, 2.0])
    _, (gradient_a, gradient_b) = vjp(lambda x, y: ad.NodeMaximum("m", [x, y]), a, b)
    np.testing.assert_array_equal(gradient_a, [[0.5, 0.5], [0.5, 0.0]])
    np.testing.assert_array_equal(gradient_b, [1.0, 1.5])  # [0.5 + 0.5, 0.5 + 1]


def test_maximum_of_a_node_with_itself_passes_the_cotangent():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMaximum("m", [x, x])])
    ad.run({x: np.array([-1.0, 0.0, 2.0])}, cotangent=np.array([3.0, 5.0, 7.0]))
    np.testing.assert_array_equal(x.gradients[x], [3.0, 5.0, 7.0])


def test_reduce_max_tie_divides_the_cotangent_among_the_tied():
    a = np.array([1.0, 3.0, 3.0, 3.0, 2.0])
    value, (gradient,) = vjp(lambda x: ad.NodeReduceMax("m", [x]), a, cotangent=np.array(6.0))
    assert value == 3.0
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 2.0, 2.0, 0.0])


def test_reduce_max_tie_along_an_axis_divides_within_each_slice():
    a = np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 2.0]])
    _, (gradient,) = vjp(lambda x: ad.NodeReduceMax("m", [x], axis=1), a, cotangent=np.array([2.0, 3.0]))
    np.testing.assert_array_equal(gradient, [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])


def test_minimum_tie_splits_the_cotangent_in_half():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    v = np.array([4.0, 4.0, 4.0])
    _, (gradient_a, gradient_b) = vjp(lambda x, y: ad.NodeMinimum("m", [x, y]), a, b, cotangent=v)
    np.testing.assert_array_equal(gradient_a, [2.0, 4.0, 0.0])
    np.testing.assert_array_equal(gradient_b, [2.0, 0.0, 4.0])


def test_minimum_of_a_node_with_itself_passes_the_cotangent():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMinimum("m", [x, x])])
    ad.run({x: np.array([-1.0, 0.0, 2.0])}, cotangent=np.array([3.0, 5.0, 7.0]))
    np.testing.assert_array_equal(x.gradients[x], [3.0, 5.0, 7.0])


def test_reduce_min_tie_along_an_axis_divides_within_each_slice():
    a = np.array([[0.0, 0.0, 1.0], [2.0, 2.0, 2.0]])
    value, (gradient,) = vjp(lambda x: ad.NodeReduceMin("m", [x], axis=1), a, cotangent=np.array([2.0, 3.0]))
    np.testing.assert_array_equal(value, [0.0, 2.0])
    np.testing.assert_array_equal(gradient, [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])


def test_clip_passes_the_cotangent_inside_and_on_the_bounds_and_nothing_outside():
    value, (gradient,) = vjp(lambda x: ad.NodeClip("c", [x], lo=-1.0, hi=1.0), np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(value, [-1.0, -1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(gradient, [0.0, 1.0, 1.0, 1.0, 0.0])


# ---- products with zeros: no element divides anything ------------------------------------------

# d prod / d a_i is the product of the other elements: nonzero only at a lone zero; all 0 with two.
PRODUCT_GRADIENTS = [
    ([2.0, 5.0, 3.0], [15.0, 6.0, 10.0]),
    ([2.0, 0.0, 3.0], [0.0, 6.0, 0.0]),
    ([0.0, 0.0, 3.0], [0.0, 0.0, 0.0]),
    ([2.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
]
# With the cotangent g = [1, 10, 100], d/da_i = sum_{j>=i} g_j prod_{k<=j, k!=i} a_k; for [2, 0, 3]:
# i=0: 1 + 10*0 + 100*(0*3) = 1;  i=1: 10*2 + 100*(2*3) = 620;  i=2: 100*(2*0) = 0.
CUMPROD_COTANGENT = [1.0, 10.0, 100.0]
CUMPROD_GRADIENTS = [
    ([2.0, 5.0, 3.0], [1551.0, 620.0, 1000.0]),
    ([2.0, 0.0, 3.0], [1.0, 620.0, 0.0]),
    ([0.0, 0.0, 3.0], [1.0, 0.0, 0.0]),
    ([2.0, 0.0, 0.0], [1.0, 20.0, 0.0]),
]


def central_differences(build, *values, cotangent=None):
    inputs = [ad.NodeInput(f"x{i}") for i in range(len(values))]
    ad.NodeOutput("out", [build(*inputs)])
    numeric = ad.ngrad(dict(zip(inputs, values)), cotangent=cotangent)
    return [numeric[x] for x in inputs]


@pytest.mark.parametrize(("a", "expected"), PRODUCT_GRADIENTS, ids=["no-zero", "one-zero", "two-zeros", "zeros-last"])
def test_reduce_prod_gradient_is_the_product_of_the_other_elements_even_at_zeros(a, expected):
    build = lambda x: ad.NodeReduceProd("p", [x])  # noqa: E731
    _, (gradient,) = vjp(build, np.array(a))
    np.testing.assert_array_equal(gradient, expected)
    np.testing.assert_allclose(gradient, *central_differences(build, np.array(a)), atol=1e-8)


def test_reduce_prod_along_an_axis_takes_the_other_elements_of_each_slice():
    a = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 3.0]])
    value, (gradient,) = vjp(lambda x: ad.NodeReduceProd("p", [x], axis=1), a, cotangent=np.array([1.0, 2.0]))
    np.testing.assert_array_equal(value, [0.0, 0.0])
    np.testing.assert_array_equal(gradient, [[0.0, 6.0, 0.0], [0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("a", "expected"), CUMPROD_GRADIENTS, ids=["no-zero", "one-zero", "two-zeros", "zeros-last"])
def test_cumprod_gradient_is_right_at_zeros(a, expected):
    build = lambda x: ad.NodeCumProd("p", [x])  # noqa: E731
    cotangent = np.array(CUMPROD_COTANGENT)
    _, (gradient,) = vjp(build, np.array(a), cotangent=cotangent)
    np.testing.assert_array_equal(gradient, expected)
    np.testing.assert_allclose(gradient, *central_differences(build, np.array(a), cotangent=cotangent), atol=1e-6)


def test_cumprod_along_axis_0_is_right_at_zeros_in_each_column():
    a = np.array([[2.0, 0.0], [0.0, 0.0], [3.0, 3.0]])
    cotangent = np.array([[1.0, 1.0], [10.0, 10.0], [100.0, 100.0]])
    _, (gradient,) = vjp(lambda x: ad.NodeCumProd("p", [x], axis=0), a, cotangent=cotangent)
    np.testing.assert_array_equal(gradient, [[1.0, 1.0], [620.0, 0.0], [0.0, 0.0]])


def test_cumsum_gradient_is_the_running_sum_of_the_cotangent_from_the_end():
    _, (gradient,) = vjp(lambda x: ad.NodeCumSum("s", [x]), np.ones(3), cotangent=np.array(CUMPROD_COTANGENT))
    np.testing.assert_array_equal(gradient, [111.0, 110.0, 100.0])


# ---- selection and joining -------------------------------------------------------------------


def test_take_adds_up_the_cotangents_of_a_repeated_index_negative_or_not():
    a = np.array([10.0, 20.0, 30.0])
    build = lambda x: ad.NodeTake("t", [x], indices=[0, 2, -1, 2])  # noqa: E731
    value, (gradient,) = vjp(build, a, cotangent=np.array([1.0, 10.0, 100.0, 1000.0]))
    np.testing.assert_array_equal(value, [10.0, 30.0, 30.0, 30.0])
    np.testing.assert_array_equal(gradient, [1.0, 0.0, 1110.0])


def test_take_along_axis_1_adds_up_whole_columns():
    a = np.arange(6.0).reshape(2, 3)
    build = lambda x: ad.NodeTake("t", [x], indices=[1, -2], axis=1)  # noqa: E731
    _, (gradient,) = vjp(build, a, cotangent=np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(gradient, [[0.0, 3.0, 0.0], [0.0, 7.0, 0.0]])


@pytest.mark.parametrize(
    ("start", "stop", "step", "cotangent", "expected"),
    [
        (None, None, -2, [1.0, 10.0, 100.0], [0.0, 100.0, 0.0, 10.0, 0.0, 1.0]),  # a[::-2] takes a5, a3, a1
        (1, None, 2, [1.0, 10.0, 100.0], [0.0, 1.0, 0.0, 10.0, 0.0, 100.0]),  # a[1::2] takes a1, a3, a5
        (4, 0, -2, [1.0, 10.0], [0.0, 0.0, 10.0, 0.0, 1.0, 0.0]),  # a[4:0:-2] takes a4, a2
    ],
    ids=["step-minus-2", "step-2", "from-4-to-0-step-minus-2"],
)
def test_slice_puts_the_cotangent_back_where_the_slice_took_each_element(start, stop, step, cotangent, expected):
    build = lambda x: ad.NodeSlice("s", [x], starts=[start], stops=[stop], steps=[step])  # noqa: E731
    _, (gradient,) = vjp(build, np.arange(6.0), cotangent=np.array(cotangent))
    np.testing.assert_array_equal(gradient, expected)


def test_a_single_element_slice_gets_only_its_own_cotangent():
    build = lambda x: ad.NodeSlice("s", [x], starts=[1, -1], stops=[2, None], steps=[None, None])  # noqa: E731
    value, (gradient,) = vjp(build, np.arange(6.0).reshape(2, 3), cotangent=np.array([[7.0]]))
    np.testing.assert_array_equal(value, [[5.0]])
    np.testing.assert_array_equal(gradient, [[0.0, 0.0, 0.0], [0.0, 0.0, 7.0]])


def test_where_sends_exactly_nothing_to_the_side_it_did_not_select_even_a_nan():
    mask = [True, False, True]
    cotangent = np.array([1.0, np.nan, 2.0])  # nan where b is selected: a must not see it
    _, (gradient_a, gradient_b) = vjp(
        lambda x, y: ad.NodeWhere("w", [x, y], mask=mask), np.ones(3), np.zeros(3), cotangent=cotangent
    )
    np.testing.assert_array_equal(gradient_a, [1.0, 0.0, 2.0])
    np.testing.assert_array_equal(gradient_b[[0, 2]], [0.0, 0.0])
    assert np.isnan(gradient_b[1])


def test_a_broadcast_where_operand_gets_the_sum_of_its_selected_cotangents_only():
    cotangent = np.array([np.inf, 2.0, 3.0])
    _, (gradient_a, gradient_b) = vjp(
        lambda x, y: ad.NodeWhere("w", [x, y], mask=[False, True, True]), 1.0, np.zeros(3), cotangent=cotangent
    )
    assert gradient_a == 5.0
    np.testing.assert_array_equal(gradient_b, [np.inf, 0.0, 0.0])


def test_concatenate_splits_the_cotangent_by_the_lengths_of_three_operands():
    operands = np.ones(2), np.ones(3), np.ones(1)
    build = lambda *xs: ad.NodeConcatenate("c", list(xs))  # noqa: E731
    _, gradients = vjp(build, *operands, cotangent=np.arange(6.0))
    for gradient, expected in zip(gradients, [[0.0, 1.0], [2.0, 3.0, 4.0], [5.0]]):
        np.testing.assert_array_equal(gradient, expected)


def test_concatenate_of_a_node_with_itself_adds_both_stretches():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeConcatenate("c", [x, x])])
    ad.run({x: np.ones(2)}, cotangent=np.array([1.0, 2.0, 10.0, 20.0]))
    np.testing.assert_array_equal(x.gradients[x], [11.0, 22.0])


def test_stack_along_a_negative_axis_gives_each_operand_its_own_column():
    build = lambda x, y: ad.NodeStack("s", [x, y], axis=-1)  # noqa: E731
    value, (gradient_a, gradient_b) = vjp(
        build, np.array([1.0, 2.0]), np.array([3.0, 4.0]), cotangent=np.array([[1.0, 2.0], [3.0, 4.0]])
    )
    np.testing.assert_array_equal(value, [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(gradient_a, [1.0, 3.0])
    np.testing.assert_array_equal(gradient_b, [2.0, 4.0])


# A negative axis means what numpy means: the same values and gradients as its non-negative twin.
# (stack's axis counts in the result, which has one axis more than the (2, 3) operands.)
NEGATIVE_AXES = [
    (lambda axis: lambda x: ad.NodeCumSum("n", [x], axis=axis), -2, 0, 1),
    (lambda axis: lambda x: ad.NodeCumProd("n", [x], axis=axis), -1, 1, 1),
    (lambda axis: lambda x: ad.NodeTake("n", [x], indices=[2, 0, 2], axis=axis), -1, 1, 1),
    (lambda axis: lambda x, y: ad.NodeConcatenate("n", [x, y], axis=axis), -1, 1, 2),
    (lambda axis: lambda x, y: ad.NodeStack("n", [x, y], axis=axis), -1, 2, 2),
    (lambda axis: lambda x, y: ad.NodeStack("n", [x, y], axis=axis), -3, 0, 2),
    (lambda axis: lambda x: ad.NodeVar("n", [x], axis=axis, ddof=1), -1, 1, 1),
    (lambda axis: lambda x: ad.NodeStd("n", [x], axis=axis), -2, 0, 1),
    (lambda axis: lambda x: ad.NodeNorm("n", [x], axis=axis, keepdims=True), -1, 1, 1),
]


@pytest.mark.parametrize(
    ("node", "negative", "twin", "operands"),
    NEGATIVE_AXES,
    ids=["cumsum", "cumprod", "take", "concatenate", "stack-minus-1", "stack-minus-3", "var", "std", "norm"],
)
def test_a_negative_axis_is_its_non_negative_twin(node, negative, twin, operands):
    values = [np.arange(6.0).reshape(2, 3) - 2 * k for k in range(operands)]
    shape = np.shape(vjp(node(twin), *values)[0])
    cotangent = np.arange(np.prod(shape), dtype=float).reshape(shape)  # a different number at each place
    value, gradients = vjp(node(negative), *values, cotangent=cotangent)
    twin_value, twin_gradients = vjp(node(twin), *values, cotangent=cotangent)
    np.testing.assert_array_equal(value, twin_value)
    for gradient, twin_gradient in zip(gradients, twin_gradients):
        np.testing.assert_array_equal(gradient, twin_gradient)


@pytest.mark.parametrize("node_class", [ad.NodeConcatenate, ad.NodeStack])
@pytest.mark.parametrize("count", [0, 1, 5])
def test_concatenate_and_stack_take_2_to_4_inputs(node_class, count):
    inputs = [ad.NodeInput(f"x{i}") for i in range(count)]
    with pytest.raises(ad.GraphError, match=rf"node 'j' \({node_class.__name__}\) takes 2 to 4 inputs, got {count}"):
        node_class("j", inputs)
    assert all(not x.outputs for x in inputs)  # refused before it was wired into its inputs


def test_a_fixed_arity_node_still_refuses_another_count():
    a = ad.NodeInput("a")
    with pytest.raises(ad.GraphError, match=r"node 'm' \(NodeMinimum\) takes 2 input\(s\), got 3"):
        ad.NodeMinimum("m", [a, a, a])


def test_an_index_out_of_range_is_a_graph_error_naming_the_node():
    with pytest.raises(ad.GraphError, match=r"node 't' \(NodeTake\): operands of shapes \(3,\): index 3 is out"):
        vjp(lambda a: ad.NodeTake("t", [a], indices=[0, 3]), np.ones(3))


def test_a_slice_with_one_entry_per_axis_of_another_rank_is_a_graph_error_naming_the_node():
    with pytest.raises(ad.GraphError, match=r"node 's' \(NodeSlice\): .*1 slice\(s\) for an operand of 2 axes"):
        vjp(lambda a: ad.NodeSlice("s", [a], starts=[0], stops=[1], steps=[1]), np.ones((2, 3)))


# ---- stability: the max is subtracted before exp ---------------------------------------------


@pytest.mark.parametrize(("dtype", "big"), [(np.float64, 1000.0), (np.float32, 100.0)])
def test_logsumexp_of_1000_is_finite_and_exact(dtype, big):
    value, (gradient,) = vjp(lambda x: ad.NodeLogSumExp("l", [x]), np.array([big, big], dtype=dtype))
    assert value.dtype == dtype
    assert value == dtype(big) + np.log(dtype(2))
    np.testing.assert_array_equal(gradient, np.array([0.5, 0.5], dtype=dtype))


def test_logsumexp_of_minus_1000_does_not_underflow_to_minus_infinity():
    value, (gradient,) = vjp(lambda x: ad.NodeLogSumExp("l", [x]), np.array([-1000.0, -1000.0]))
    assert value == -1000.0 + np.log(2.0)
    np.testing.assert_array_equal(gradient, [0.5, 0.5])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy says log(0) = -inf; the gradient there is 0/0
def test_logsumexp_of_minus_infinity_is_minus_infinity_not_nan():
    value, _ = vjp(lambda x: ad.NodeLogSumExp("l", [x], axis=1), np.array([[-np.inf, -np.inf], [0.0, 0.0]]))
    np.testing.assert_array_equal(value, [-np.inf, np.log(2.0)])


@pytest.mark.parametrize(("dtype", "big"), [(np.float64, 1000.0), (np.float32, 100.0)])
def test_softmax_of_1000_is_finite_and_exact(dtype, big):
    a = np.array([[big, big], [big, 0.0]], dtype=dtype)
    value, (gradient,) = vjp(lambda x: ad.NodeSoftmax("s", [x]), a, cotangent=np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert value.dtype == dtype
    np.testing.assert_array_equal(value, np.array([[0.5, 0.5], [1.0, np.exp(-dtype(big))]], dtype=dtype))
    # (v^T J)_j = s_j (v_j - v . s): [0.25, -0.25] for s = [0.5, 0.5]; 0 for s = [1, 0].
    np.testing.assert_allclose(gradient, [[0.25, -0.25], [0.0, 0.0]], atol=1e-30)


@pytest.mark.parametrize(("dtype", "big"), [(np.float64, 1000.0), (np.float32, 100.0)])
def test_log_softmax_of_1000_is_finite_and_exact(dtype, big):
    a = np.array([[big, big], [big, 0.0]], dtype=dtype)
    value, (gradient,) = vjp(lambda x: ad.NodeLogSoftmax("s", [x]), a, cotangent=np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert value.dtype == dtype
    np.testing.assert_array_equal(value, np.array([[-np.log(2), -np.log(2)], [0.0, -big]], dtype=dtype))
    # (v^T J)_j = v_j - softmax_j sum(v): [0.5, -0.5] for softmax [0.5, 0.5]; [0, 0] for [1, 0].
    np.testing.assert_allclose(gradient, [[0.5, -0.5], [0.0, 0.0]], atol=1e-30)


def test_softmax_of_a_scalar_is_1_as_numpy_reduces_a_0d_array_along_axis_minus_1():
    value, (gradient,) = vjp(lambda x: ad.NodeSoftmax("s", [x]), 3.0, cotangent=2.0)
    assert value == 1.0
    assert gradient == 0.0


# ---- far out: softplus, log_sigmoid, logaddexp and sigmoid at +-800 (float64) and +-100 (float32) ---
# e^-800 underflows to 0 in float64; e^-100 is a float32 subnormal (3.7e-44), good to about 1e-44.

FAR_OUT = [(np.float64, 800.0), (np.float32, 100.0)]
SUBNORMAL = {"rtol": 0, "atol": 1e-44}


@pytest.mark.parametrize(("dtype", "big"), FAR_OUT)
def test_softplus_far_out_is_the_operand_or_its_tiny_exponential_and_so_is_its_gradient(dtype, big):
    value, (gradient,) = vjp(lambda x: ad.NodeSoftplus("s", [x]), np.array([-big, big], dtype=dtype))
    assert value.dtype == gradient.dtype == dtype
    assert value[1] == big  # log(1 + e^big) = big + log(1 + e^-big)
    np.testing.assert_allclose(value[0], math.exp(-big), **SUBNORMAL)  # log(1 + e^-big) = e^-big
    # d/da softplus = sigmoid(a): 1 far right, e^-big far left; never nan.
    assert gradient[1] == 1.0
    np.testing.assert_allclose(gradient[0], math.exp(-big), **SUBNORMAL)


@pytest.mark.parametrize(("dtype", "big"), FAR_OUT)
def test_log_sigmoid_far_out_is_minus_softplus_of_minus_the_operand(dtype, big):
    value, (gradient,) = vjp(lambda x: ad.NodeLogSigmoid("s", [x]), np.array([-big, big], dtype=dtype))
    assert value.dtype == gradient.dtype == dtype
    assert value[0] == -big
    np.testing.assert_allclose(value[1], -math.exp(-big), **SUBNORMAL)
    assert gradient[0] == 1.0  # d/da log sigmoid(a) = sigmoid(-a)
    np.testing.assert_allclose(gradient[1], math.exp(-big), **SUBNORMAL)


@pytest.mark.parametrize(("dtype", "big"), FAR_OUT)
def test_logaddexp_far_out_is_the_larger_operand_and_its_gradient_goes_to_it(dtype, big):
    a, b = np.array([big, -big, big, -big], dtype=dtype), np.array([-big, big, big, -big], dtype=dtype)
    value, (gradient_a, gradient_b) = vjp(lambda x, y: ad.NodeLogAddExp("l", [x, y]), a, b)
    assert value.dtype == gradient_a.dtype == gradient_b.dtype == dtype
    log2 = np.log(dtype(2))
    np.testing.assert_array_equal(value, np.array([big, big, big + log2, -big + log2], dtype=dtype))
    # d/da = sigmoid(a - b): all to the larger operand, half each at a tie.
    np.testing.assert_array_equal(gradient_a, [1.0, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(gradient_b, [0.0, 1.0, 0.5, 0.5])


@pytest.mark.parametrize(("dtype", "big"), FAR_OUT)
def test_sigmoid_far_out_is_0_or_1_and_its_gradient_is_not_nan(dtype, big):
    value, (gradient,) = vjp(lambda x: ad.NodeSigmoid("s", [x]), np.array([-big, big], dtype=dtype))
    assert value.dtype == gradient.dtype == dtype
    assert value[1] == 1.0
    np.testing.assert_allclose(value[0], math.exp(-big), **SUBNORMAL)
    assert gradient[1] == 0.0  # s (1 - s) with s = 1
    np.testing.assert_allclose(gradient[0], math.exp(-big), **SUBNORMAL)


# ---- tiny operands: log1p and expm1 keep every digit -------------------------------------------
# At x = 1e-9, log(1 + x) = x - x^2/2 and e^x - 1 = x + x^2/2 to float64's precision (the x^3
# terms are 1e-19 of x); computing 1 + x first loses the digits from the 8th on.


def within_one_ulp(value, expected):
    return abs(value - expected) <= np.spacing(abs(expected))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x", [1e-9, -1e-9])
def test_log1p_and_expm1_of_a_tiny_operand_are_exact_to_an_ulp(x, dtype):
    a = dtype(x)
    x = float(a)  # the operand as the dtype has it
    value, (gradient,) = vjp(lambda x: ad.NodeLog1p("l", [x]), a)
    assert value.dtype == gradient.dtype == dtype
    assert within_one_ulp(value, dtype(x - x * x / 2))
    assert within_one_ulp(gradient, dtype(1 / (1 + x)))  # d/da log(1 + a) = 1 / (1 + a)
    value, (gradient,) = vjp(lambda x: ad.NodeExpm1("e", [x]), a)
    assert value.dtype == gradient.dtype == dtype
    assert within_one_ulp(value, dtype(x + x * x / 2))
    assert within_one_ulp(gradient, dtype(1 + x))  # d/da (e^a - 1) = e^a


# ---- statistics: ddof, and a negative axis -------------------------------------------------------
# Along axis -1 of [[1, 2, 3, 6], [0, 0, 4, 4]]: means 3 and 2, deviations [-2, -1, 0, 3] and
# [-2, -2, 2, 2], sums of squares 14 and 16; var = those / (4 - ddof), d var / d a = 2 dev / (4 - ddof).
SPREAD = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 4.0, 4.0]])
SPREAD_COTANGENT = np.array([1.0, 10.0])
VARIANCES = [
    (0, [3.5, 4.0], [[-1.0, -0.5, 0.0, 1.5], [-10.0, -10.0, 10.0, 10.0]]),
    (1, [14 / 3, 16 / 3], [[-4 / 3, -2 / 3, 0.0, 2.0], [-40 / 3, -40 / 3, 40 / 3, 40 / 3]]),
]


@pytest.mark.parametrize(("ddof", "variance", "variance_gradient"), VARIANCES, ids=["ddof0", "ddof1"])
def test_var_and_std_along_a_negative_axis_divide_by_n_minus_ddof(ddof, variance, variance_gradient):
    build = lambda x: ad.NodeVar("v", [x], axis=-1, ddof=ddof)  # noqa: E731
    value, (gradient,) = vjp(build, SPREAD, cotangent=SPREAD_COTANGENT)
    np.testing.assert_allclose(value, variance, rtol=1e-15)
    np.testing.assert_allclose(gradient, variance_gradient, rtol=1e-15)
    np.testing.assert_allclose(gradient, *central_differences(build, SPREAD, cotangent=SPREAD_COTANGENT), rtol=1e-7)
    # std = sqrt(var), so d std = d var / (2 std).
    build = lambda x: ad.NodeStd("s", [x], axis=-1, ddof=ddof)  # noqa: E731
    value, (gradient,) = vjp(build, SPREAD, cotangent=SPREAD_COTANGENT)
    std = np.sqrt(variance)
    np.testing.assert_allclose(value, std, rtol=1e-15)
    np.testing.assert_allclose(gradient, np.array(variance_gradient) / (2 * std[:, None]), rtol=1e-15)
    np.testing.assert_allclose(gradient, *central_differences(build, SPREAD, cotangent=SPREAD_COTANGENT), rtol=1e-7)


def test_norm_gradient_is_the_operand_over_its_norm():
    value, (gradient,) = vjp(lambda x: ad.NodeNorm("n", [x], axis=0), np.array([[3.0, 0.0], [4.0, -2.0]]))
    np.testing.assert_array_equal(value, [5.0, 2.0])
    np.testing.assert_array_equal(gradient, [[0.6, 0.0], [0.8, -1.0]])


# ---- contractions -----------------------------------------------------------------------------


def test_einsum_trace_puts_the_cotangent_on_the_diagonal():
    value, (gradient,) = vjp(
        lambda x: ad.NodeEinsum("e", [x], subscripts="ii->"), np.arange(9.0).reshape(3, 3), cotangent=2.0
    )
    assert value == 12.0  # 0 + 4 + 8
    np.testing.assert_array_equal(gradient, 2 * np.eye(3))


def test_einsum_diagonal_puts_each_cotangent_on_its_diagonal_element():
    cotangent = np.array([1.0, 10.0, 100.0])
    build = lambda x: ad.NodeEinsum("e", [x], subscripts="ii->i")  # noqa: E731
    value, (gradient,) = vjp(build, np.arange(9.0).reshape(3, 3), cotangent=cotangent)
    np.testing.assert_array_equal(value, [0.0, 4.0, 8.0])
    np.testing.assert_array_equal(gradient, [[1.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 100.0]])


def test_einsum_of_three_operands_gives_each_the_product_of_the_other_two():
    x, y, z = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[5.0, 6.0]])
    build = lambda *xs: ad.NodeEinsum("e", list(xs), subscripts="ij,ij,ij->")  # noqa: E731
    value, (gradient_x, gradient_y, gradient_z) = vjp(build, x, y, z, cotangent=2.0)
    assert value == 1 * 3 * 5 + 2 * 4 * 6
    np.testing.assert_array_equal(gradient_x, [[30.0, 48.0]])  # 2 y z
    np.testing.assert_array_equal(gradient_y, [[10.0, 24.0]])  # 2 x z
    np.testing.assert_array_equal(gradient_z, [[6.0, 16.0]])  # 2 x y


def test_einsum_labels_summed_away_in_one_operand_only_get_the_same_gradient_all_along():
    # out_i = sum_j x_ij * sum_k v_k: d out_i / d x_ij = sum(v), d out_i / d v_k = sum_j x_ij.
    x, v = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([5.0, 6.0, 7.0])
    build = lambda a, b: ad.NodeEinsum("e", [a, b], subscripts="ij,k->i")  # noqa: E731
    value, (gradient_x, gradient_v) = vjp(build, x, v, cotangent=np.array([1.0, 10.0]))
    np.testing.assert_array_equal(value, [54.0, 126.0])
    np.testing.assert_array_equal(gradient_x, [[18.0, 18.0], [180.0, 180.0]])
    np.testing.assert_array_equal(gradient_v, [73.0, 73.0, 73.0])  # 1 * 3 + 10 * 7


def test_einsum_of_a_node_with_itself_adds_both_parts():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeEinsum("e", [x, x], subscripts="i,i->")])
    ad.run({x: np.array([1.0, 2.0])})
    np.testing.assert_array_equal(x.gradients[x], [2.0, 4.0])  # d/dx x.x = 2x


B = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


@pytest.mark.parametrize(
    ("a", "b", "cotangent", "expected_value", "expected_a", "expected_b"),
    [
        # a 1-D a is a row: a @ B = [9, 12, 15]; da = B g, dB = outer(a, g)
        ([1.0, 2.0], B, [1.0, 10.0, 100.0], [9.0, 12.0, 15.0],
         [321.0, 654.0], [[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]]),
        # a 1-D b is a column: B^T @ b = [41, 52, 63]; dA = outer(g, b), db = A^T g
        (B.T, [1.0, 10.0], [1.0, 2.0, 3.0], [41.0, 52.0, 63.0], [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], [14.0, 32.0]),
        # both 1-D: a dot product; da = g b, db = g a
        ([1.0, 2.0], [3.0, 4.0], 2.0, 11.0, [6.0, 8.0], [2.0, 4.0]),
        # a batch of two rows against one B: dB sums a_i^T g_i over the batch
        ([[[1.0, 2.0]], [[3.0, 4.0]]], [[1.0], [10.0]], [[[1.0]], [[2.0]]], [[[21.0]], [[43.0]]],
         [[[1.0, 10.0]], [[2.0, 20.0]]], [[7.0], [10.0]]),
        # one A against a batch of two columns: dA sums g_i b_i^T over the batch
        ([[1.0, 2.0]], [[[1.0], [10.0]], [[100.0], [1000.0]]], [[[1.0]], [[2.0]]], [[[21.0]], [[2100.0]]],
         [[201.0, 2010.0]], [[[1.0], [2.0]], [[2.0], [4.0]]]),
    ],
    ids=["1d-left", "1d-right", "1d-both", "batch-left", "batch-right"],
)  # fmt: skip
def test_matmul_gradients_of_1d_operands_and_broadcast_batches(a, b, cotangent, expected_value, expected_a, expected_b):
    a, b = np.array(a), np.array(b)
    build = lambda x, y: ad.NodeMatmul("m", [x, y])  # noqa: E731
    value, (gradient_a, gradient_b) = vjp(build, a, b, cotangent=np.array(cotangent))
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(gradient_a, expected_a)
    np.testing.assert_array_equal(gradient_b, expected_b)


# ---- windows ------------------------------------------------------------------------------------


def test_conv1d_with_stride_padding_dilation_and_groups_is_its_definition():
    # W = 8, padding 1, dilation 2, K = 3: W + 2 - 2 * 2 - 1 = 5 is not a multiple of stride 2,
    # so W_out = 5 // 2 + 1 = 3 and the last padded position is never read.
    x = np.arange(2 * 4 * 8).reshape(2, 4, 8) % 7 - 3.0
    w = np.arange(6 * 2 * 3).reshape(6, 2, 3) % 5 - 2.0
    cotangent = np.arange(2 * 6 * 3).reshape(2, 6, 3) % 4 - 1.5
    attrs = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    build = lambda a, b: ad.NodeConv1d("c", [a, b], **attrs)  # noqa: E731
    value, (gradient_x, gradient_w) = vjp(build, x, w, cotangent=cotangent)
    assert value.shape == (2, 6, 3)
    np.testing.assert_allclose(value, conv1d_loops(x, w, **attrs), rtol=1e-15)
    numeric_x, numeric_w = central_differences(build, x, w, cotangent=cotangent)
    np.testing.assert_allclose(gradient_x, numeric_x, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gradient_w, numeric_w, rtol=1e-7, atol=1e-8)
    # The windows read padded positions 0, 2, ..., 8: x's positions 1, 3, 5, 7 (padded ones are
    # x's + 1). The even positions of x are never read, and their gradient is exactly 0.
    np.testing.assert_array_equal(gradient_x[:, :, ::2], 0.0)
    assert np.all(gradient_x[:, :, 1::2] != 0.0)


def test_max_pool1d_gives_a_tie_to_the_first_maximum_and_adds_up_overlapping_windows():
    # kernel 3, stride 1 on [1, 3, 3, 2, 3, 0]: windows [1 3 3], [3 3 2], [3 2 3], [2 3 0], all of max 3.
    # The first maximum of each is at 1, 1, 2, 4: position 1 gets the first two windows' cotangents.
    x = np.array([[[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]]])
    build = lambda a: ad.NodeMaxPool1d("p", [a], kernel=3, stride=1)  # noqa: E731
    value, (gradient,) = vjp(build, x, cotangent=np.array([[[1.0, 10.0, 100.0, 1000.0]]]))
    np.testing.assert_array_equal(value, [[[3.0, 3.0, 3.0, 3.0]]])
    np.testing.assert_array_equal(gradient, [[[0.0, 11.0, 100.0, 0.0, 1000.0, 0.0]]])


def test_max_pool1d_without_a_stride_has_windows_side_by_side_and_drops_the_rest():
    x = np.array([[[1.0, 5.0, 4.0, 2.0, 9.0]]])  # windows [1 5], [4 2]; the 9 is in no window
    value, (gradient,) = vjp(lambda a: ad.NodeMaxPool1d("p", [a]), x, cotangent=np.array([[[1.0, 10.0]]]))
    np.testing.assert_array_equal(value, [[[5.0, 4.0]]])
    np.testing.assert_array_equal(gradient, [[[0.0, 1.0, 10.0, 0.0, 0.0]]])


@pytest.mark.parametrize(
    ("build", "values", "message"),
    [
        (lambda a: ad.NodeVar("v", [a], axis=1, ddof=2), [np.ones((3, 2))], "2 element.* need more than ddof = 2"),
        (lambda a, b: ad.NodeEinsum("e", [a, b], subscripts="i,i->"), [np.ones(2), np.ones(3)], "label 'i' has length"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="ij->"), [np.ones(3)], "subscripts 'ij' for operand 0 of 1 axes"),
        (lambda a, b: ad.NodeConv1d("c", [a, b], groups=2), [np.ones((1, 3, 5)), np.ones((2, 1, 2))], "2 group"),
        (lambda a, b: ad.NodeConv1d("c", [a, b]), [np.ones((1, 2, 2)), np.ones((1, 2, 3))], "does not fit"),
        (lambda a: ad.NodeMaxPool1d("p", [a], kernel=4), [np.ones((1, 1, 3))], "does not fit in a width of 3"),
        (lambda a: ad.NodeMaxPool1d("p", [a]), [np.ones((2, 3))], "x must have 3 axes"),
    ],
    ids=["var-ddof", "einsum-lengths", "einsum-rank", "conv1d-groups", "conv1d-narrow", "pool-narrow", "pool-rank"],
)  # fmt: skip
def test_operands_that_do_not_fit_are_a_graph_error_naming_the_node(build, values, message):
    with pytest.raises(ad.GraphError, match=rf"node '\w' \(Node\w+\): operands of shapes .*{message}"):
        vjp(build, *values)


@pytest.mark.parametrize("count", [0, 4])
def test_einsum_takes_1_to_3_inputs(count):
    inputs = [ad.NodeInput(f"x{i}") for i in range(count)]
    with pytest.raises(ad.GraphError, match=rf"node 'e' \(NodeEinsum\) takes 1 to 3 inputs, got {count}"):
        ad.NodeEinsum("e", inputs, subscripts="->")
    assert all(not x.outputs for x in inputs)


# ---- attrs: the format's names and defaults, checked with the node's name --------------------


def test_attrs_default_to_the_format_defaults():
    a = ad.NodeInput("a")
    for node in (ad.NodeReduceMean("m", [a]), ad.NodeReduceMax("m", [a]), ad.NodeLogSumExp("m", [a])):
        assert (node.axis, node.keepdims) == (None, False)
    assert ad.NodeTranspose("t", [a]).axes is None
    assert ad.NodeSoftmax("s", [a]).axis == -1
    assert ad.NodeLogSoftmax("s", [a]).axis == -1
    for node in (ad.NodeReduceMin("m", [a]), ad.NodeReduceProd("m", [a])):
        assert (node.axis, node.keepdims) == (None, False)
    assert ad.NodeCumSum("c", [a]).axis == -1
    assert ad.NodeCumProd("c", [a]).axis == -1
    assert ad.NodeTake("t", [a]).axis == 0
    assert ad.NodeConcatenate("c", [a, a]).axis == 0
    assert ad.NodeStack("s", [a, a]).axis == 0
    for node in (ad.NodeVar("v", [a]), ad.NodeStd("s", [a])):
        assert (node.axis, node.keepdims, node.ddof) == (None, False, 0)
    assert (ad.NodeNorm("n", [a]).axis, ad.NodeNorm("n", [a]).keepdims) == (None, False)
    conv = ad.NodeConv1d("c", [a, a])
    assert (conv.stride, conv.padding, conv.dilation, conv.groups) == (1, 0, 1, 1)
    assert (ad.NodeMaxPool1d("p", [a]).kernel, ad.NodeMaxPool1d("p", [a]).stride) == (2, 2)  # stride None = kernel
    assert ad.NodeMaxPool1d("p", [a], kernel=3, stride=1).stride == 1


def test_list_attrs_are_kept_as_tuples():
    a = ad.NodeInput("a")
    assert ad.NodeReshape("r", [a], shape=[3, 2]).shape == (3, 2)
    assert ad.NodeBroadcastTo("b", [a], shape=[2, 3]).shape == (2, 3)
    assert ad.NodeTranspose("t", [a], axes=[1, 2, 0]).axes == (1, 2, 0)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda a: ad.NodeReduceMean("m", [a], axis=1.5), "node 'm': axis must be an int or None, got 1.5"),
        (lambda a: ad.NodeReduceMax("m", [a], axis=True), "node 'm': axis must be an int or None, got True"),
        (lambda a: ad.NodeLogSumExp("m", [a], keepdims=1), "node 'm': keepdims must be a bool, got 1"),
        (lambda a: ad.NodeSoftmax("s", [a], axis=None), "node 's': axis must be an int, got None"),
        (lambda a: ad.NodeLogSoftmax("s", [a], axis="0"), "node 's': axis must be an int, got '0'"),
        (
            lambda a: ad.NodeTranspose("t", [a], axes=[0, 0]),
            r"node 't': axes must be a permutation of 0..1, got \[0, 0\]",
        ),
        (lambda a: ad.NodeTranspose("t", [a], axes=[-1, 0]), "node 't': axes must be a list of non-negative ints"),
        (lambda a: ad.NodeReshape("r", [a], shape=[-1]), "node 'r': shape must be a list of non-negative ints"),
        (lambda a: ad.NodeReshape("r", [a]), "node 'r': shape must be a list of non-negative ints, got None"),
        (lambda a: ad.NodeBroadcastTo("b", [a], shape=3), "node 'b': shape must be a list of non-negative ints, got 3"),
        (lambda a: ad.NodeCumSum("c", [a], axis=None), "node 'c': axis must be an int, got None"),
        (lambda a: ad.NodeCumProd("c", [a], axis=1.0), "node 'c': axis must be an int, got 1.0"),
        (lambda a: ad.NodeClip("c", [a], lo=0.0), "node 'c': hi must be a number, got None"),
        (lambda a: ad.NodeClip("c", [a], lo="0", hi=1.0), "node 'c': lo must be a number, got '0'"),
        (lambda a: ad.NodeClip("c", [a], lo=1.0, hi=1.0), "node 'c': lo must be less than hi, got lo=1.0, hi=1.0"),
        (lambda a: ad.NodeWhere("w", [a, a], mask=[1, 0]), r"node 'w': mask must be .*bools, got \[1, 0\]"),
        (lambda a: ad.NodeWhere("w", [a, a], mask=[[True], [True, False]]), "node 'w': mask must be"),
        (lambda a: ad.NodeTake("t", [a], indices=[0.0]), r"node 't': indices must be a list of ints, got \[0.0\]"),
        (lambda a: ad.NodeTake("t", [a], indices=[0], axis=None), "node 't': axis must be an int, got None"),
        (lambda a: ad.NodeSlice("s", [a], starts=[0], stops=[1], steps=[0]), "node 's': a step cannot be 0"),
        (lambda a: ad.NodeSlice("s", [a], starts=[0], stops=[1, 2], steps=[1]), "node 's': starts, stops and steps"),
        (lambda a: ad.NodeSlice("s", [a], starts=[0.5], stops=[1], steps=[1]), "node 's': starts must be a list"),
        (lambda a: ad.NodeConcatenate("c", [a, a], axis=None), "node 'c': axis must be an int, got None"),
        (lambda a: ad.NodeStack("s", [a, a], axis="0"), "node 's': axis must be an int, got '0'"),
        (lambda a: ad.NodeVar("v", [a], ddof=-1), "node 'v': ddof must be a non-negative int, got -1"),
        (lambda a: ad.NodeStd("s", [a], ddof=True), "node 's': ddof must be a non-negative int, got True"),
        (lambda a: ad.NodeNorm("n", [a], axis=[0]), r"node 'n': axis must be an int or None, got \[0\]"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="ii"), "node 'e': subscripts must be explicit"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="...i->i"), "node 'e': subscripts must be explicit"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="I->I"), "node 'e': subscripts must be explicit"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="i,j->ij"), "node 'e': subscripts 'i,j->ij' for 1 operand"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="ii->ii"), "node 'e': output labels must be distinct"),
        (lambda a: ad.NodeEinsum("e", [a], subscripts="i->j"), "node 'e': output labels must be distinct input"),
        (lambda a: ad.NodeConv1d("c", [a, a], stride=0), "node 'c': stride must be an int >= 1, got 0"),
        (lambda a: ad.NodeConv1d("c", [a, a], padding=-1), "node 'c': padding must be an int >= 0, got -1"),
        (lambda a: ad.NodeConv1d("c", [a, a], dilation=1.0), "node 'c': dilation must be an int >= 1, got 1.0"),
        (lambda a: ad.NodeConv1d("c", [a, a], groups=0), "node 'c': groups must be an int >= 1, got 0"),
        (lambda a: ad.NodeMaxPool1d("p", [a], kernel=0), "node 'p': kernel must be an int >= 1, got 0"),
        (lambda a: ad.NodeMaxPool1d("p", [a], stride=False), "node 'p': stride must be an int >= 1, got False"),
    ],
)
def test_a_bad_attr_is_a_graph_error_naming_the_node(build, message):
    with pytest.raises(ad.GraphError, match=message):
        build(ad.NodeInput("a"))


def test_a_reshape_to_another_size_is_a_graph_error_naming_the_node():
    with pytest.raises(ad.GraphError, match=r"node 'r' \(NodeReshape\): operands of shapes \(2, 3\)"):
        vjp(lambda a: ad.NodeReshape("r", [a], shape=[4]), np.ones((2, 3)))


# ---- exports -----------------------------------------------------------------------------------

NEW_CLASSES = [
    "NodeNeg", "NodeExp", "NodeLog", "NodeSqrt", "NodeTanh", "NodeSin", "NodeCos", "NodeRelu", "NodeAbs", "NodeDiv",
    "NodeMaximum", "NodePow", "NodeReduceMean", "NodeReduceMax", "NodeTranspose", "NodeReshape", "NodeBroadcastTo",
    "NodeSoftmax", "NodeLogSoftmax", "NodeLogSumExp", "NodeReduceProd", "NodeCumSum", "NodeCumProd", "NodeMinimum",
    "NodeReduceMin", "NodeClip", "NodeWhere", "NodeTake", "NodeSlice", "NodeConcatenate", "NodeStack",
    "NodeSoftplus", "NodeLogSigmoid", "NodeLog1p", "NodeExpm1", "NodeLogAddExp", "NodeErf", "NodeAtan2", "NodeVar",
    "NodeStd", "NodeNorm", "NodeMatmul", "NodeEinsum", "NodeConv1d", "NodeMaxPool1d",
]  # fmt: skip
SEED_NAMES = [
    "GraphError", "NodeAdd", "NodeBase", "NodeDot", "NodeInput", "NodeMult", "NodeOutput", "NodePower",
    "NodeReduceSum", "NodeSigmoid", "NodeSubstract", "NodeSubtract", "sum_to_shape",
]  # fmt: skip


@pytest.mark.parametrize("name", NEW_CLASSES + SEED_NAMES)
def test_every_node_class_is_importable_from_autodiff_and_from_autodiff_nodes(name):
    assert getattr(ad, name) is getattr(autodiff.nodes, name)
    assert name in ad.__all__
