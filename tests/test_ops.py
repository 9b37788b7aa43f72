"""Each op's analytic gradient agrees with central differences, on scalars, on tensors,
under broadcasting, and in float32; and each op's value is numpy's."""

import numpy as np
import pytest

import autodiff as ad

RNG = np.random.default_rng(20261126)


def vjp_and_ngrad(build, values, cotangent=None):
    """Build the graph over fresh inputs, run it, and return (output value,
    analytic VJPs, numerical VJPs) keyed by input position."""
    inputs = [ad.NodeInput(f"x{i}") for i in range(len(values))]
    out = ad.NodeOutput("out", [build(*inputs)])
    feed = dict(zip(inputs, values))
    ad.run(feed, cotangent=cotangent)
    analytic = [node.gradients[node] for node in inputs]
    value = out.value
    numeric = ad.ngrad(feed, cotangent=cotangent)
    return value, analytic, [numeric[node] for node in inputs]


def assert_gradients_match(analytic, numeric, values, rtol=1e-6, atol=1e-7):
    for got, expected, value in zip(analytic, numeric, values):
        assert np.shape(got) == np.shape(value)
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


BINARY = {
    "add": (ad.NodeAdd, np.add),
    "subtract": (ad.NodeSubtract, np.subtract),
    "mult": (ad.NodeMult, np.multiply),
}

BROADCAST_PAIRS = [
    ((), ()),
    ((3,), (3,)),
    ((2, 3), ()),
    ((), (2, 3)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((4, 1, 3), (2, 1)),
    ((1,), (2, 2)),
]


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_binary_op_gradient_is_summed_back_to_each_operand_shape(op, shapes):
    node_class, reference = BINARY[op]
    a, b = (RNG.standard_normal(shape) for shape in shapes)
    out_shape = np.broadcast_shapes(*shapes)
    v = RNG.standard_normal(out_shape)
    value, analytic, numeric = vjp_and_ngrad(lambda x, y: node_class(op, [x, y]), [a, b], v)
    np.testing.assert_array_equal(value, reference(a, b))
    assert_gradients_match(analytic, numeric, [a, b])


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_op_on_python_scalars(op):
    node_class, reference = BINARY[op]
    value, analytic, numeric = vjp_and_ngrad(lambda x, y: node_class(op, [x, y]), [1.5, -2.0])
    assert value == reference(1.5, -2.0)
    assert_gradients_match(analytic, numeric, [1.5, -2.0])


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, -1, -2])
def test_power_gradient_is_n_times_x_to_the_n_minus_1(exponent):
    x = RNG.uniform(0.5, 2.0, size=(2, 3)) * RNG.choice([-1, 1], size=(2, 3))
    value, analytic, numeric = vjp_and_ngrad(lambda a: ad.NodePower("p", [a], exponent=exponent), [x])
    np.testing.assert_allclose(value, x**exponent)
    np.testing.assert_allclose(analytic[0], exponent * x ** (exponent - 1) if exponent else 0 * x)
    assert_gradients_match(analytic, numeric, [x])


def test_power_defaults_to_the_notebooks_square():
    assert ad.NodePower("p", [ad.NodeInput("x")]).exponent == 2


def test_power_exponent_must_be_an_integer():
    with pytest.raises(ad.GraphError, match=r"node 'p': exponent must be an integer, got 2\.5"):
        ad.NodePower("p", [ad.NodeInput("x")], exponent=2.5)


@pytest.mark.parametrize(
    "axis, keepdims", [(None, False), (None, True), (0, False), (1, False), (2, True), (-1, False), (1, True)]
)
def test_reduce_sum_gradient_spreads_over_the_summed_axis(axis, keepdims):
    x = RNG.standard_normal((2, 3, 4))
    out_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
    v = RNG.standard_normal(out_shape)
    value, analytic, numeric = vjp_and_ngrad(lambda a: ad.NodeReduceSum("r", [a], axis=axis, keepdims=keepdims), [x], v)
    np.testing.assert_allclose(value, np.sum(x, axis=axis, keepdims=keepdims))
    assert_gradients_match(analytic, numeric, [x])


def test_reduce_sum_of_a_scalar_is_itself():
    value, analytic, _ = vjp_and_ngrad(lambda a: ad.NodeReduceSum("r", [a]), [2.5])
    assert value == 2.5 and analytic[0] == 1.0


DOT_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((3, 3), (3, 3)), ((1, 5), (5, 1))]


@pytest.mark.parametrize("shapes", DOT_SHAPES, ids=str)
def test_dot_gradient_follows_numpy_matmul(shapes):
    a, b = (RNG.standard_normal(shape) for shape in shapes)
    v = RNG.standard_normal(np.shape(a @ b))
    value, analytic, numeric = vjp_and_ngrad(lambda x, y: ad.NodeDot("d", [x, y]), [a, b], v)
    np.testing.assert_allclose(value, a @ b)
    assert_gradients_match(analytic, numeric, [a, b])


def test_dot_gradient_is_transposed_for_a_non_symmetric_case():
    # With v = ones and square operands a missing transpose can hide; a random v cannot.
    a, b = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.0, 1.0], [5.0, -1.0]])
    v = np.array([[1.0, 0.0], [0.0, 0.0]])
    _, analytic, _ = vjp_and_ngrad(lambda x, y: ad.NodeDot("d", [x, y]), [a, b], v)
    np.testing.assert_array_equal(analytic[0], v @ b.T)
    np.testing.assert_array_equal(analytic[1], a.T @ v)


def test_dot_of_scalars_is_an_error_that_names_the_node():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    ad.NodeOutput("out", [ad.NodeDot("d", [x, y])])
    with pytest.raises(ad.GraphError, match="node 'd' \\(NodeDot\\): operands of shapes \\(\\), \\(\\)"):
        ad.run({x: 1.0, y: 2.0})


def test_sigmoid_value_and_gradient():
    x = np.linspace(-30, 30, 13)
    value, analytic, numeric = vjp_and_ngrad(lambda a: ad.NodeSigmoid("s", [a]), [x])
    np.testing.assert_allclose(value, 1 / (1 + np.exp(-x)), rtol=1e-15)
    assert_gradients_match(analytic, numeric, [x])


@pytest.mark.parametrize(
    "build, arity",
    [
        (lambda x, y: ad.NodeAdd("n", [x, y]), 2),
        (lambda x, y: ad.NodeMult("n", [x, y]), 2),
        (lambda x, y: ad.NodeDot("n", [x, y]), 2),
        (lambda x: ad.NodeSigmoid("n", [x]), 1),
        (lambda x: ad.NodePower("n", [x], exponent=3), 1),
        (lambda x: ad.NodeReduceSum("n", [x], axis=0), 1),
    ],
)
def test_float32_in_gives_float32_values_and_gradients(build, arity):
    values = [RNG.standard_normal((3, 3)).astype(np.float32) for _ in range(arity)]
    value, analytic, numeric = vjp_and_ngrad(build, values)
    assert value.dtype == np.float32
    for gradient in analytic:
        assert gradient.dtype == np.float32
    # float32 central differences are good to about eps^(2/3) ~ 2.4e-5 relative.
    assert_gradients_match(analytic, numeric, values, rtol=2e-3, atol=2e-3)
