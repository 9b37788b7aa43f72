"""Forward mode for the ops of elementwise.py, delicate.py and fused.py: each node's
`forward_tangent()` against a central difference of its `forward()` along the input tangents,
in float64 and float32, with the value's shape and dtype; far out (+-800) it stays finite; and,
at kinks and ties as everywhere, it applies the very Jacobian whose transpose `backward()`
applies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest

import autodiff as ad
from autodiff import delicate, elementwise, fused

# ---- operands: fixed, inside each op's domain -----------------------------------------------

REAL = np.array([[0.3, -1.2, 0.7], [1.5, -0.4, 1.9]])  # no 0 (relu, abs), 0.2 or more from clip's +-1
POSITIVE = np.array([[0.5, 1.3, 2.0], [0.8, 1.1, 1.7]])  # log, sqrt, pow's base
COLUMN = np.array([[0.6], [-1.1]])  # (2, 1) against ROW's (3,): a (2, 3) result, no ties, no zero
ROW = np.array([0.9, -0.3, 1.4])
FAR = np.array([-800.0, -30.0, -0.5, 0.0, 0.5, 30.0, 800.0])  # e^800 overflows float64 and float32
FAR_ROWS = np.array([[800.0, -800.0, 0.5], [0.3, -1.2, 0.7]])


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable  # (name, input nodes) -> the node under test
    operands: tuple  # one float64 array per input node


CASES = [
    Case("add", ad.NodeAdd, (COLUMN, ROW)),
    Case("subtract", ad.NodeSubtract, (ROW, COLUMN)),
    Case("mult", ad.NodeMult, (COLUMN, ROW)),
    Case("power_3", partial(ad.NodePower, exponent=3), (REAL,)),
    Case("power_-2", partial(ad.NodePower, exponent=-2), (POSITIVE,)),
    Case("power_0", partial(ad.NodePower, exponent=0), (REAL,)),
    Case("sigmoid", ad.NodeSigmoid, (FAR,)),
    Case("neg", ad.NodeNeg, (REAL,)),
    Case("exp", ad.NodeExp, (REAL,)),
    Case("log", ad.NodeLog, (POSITIVE,)),
    Case("sqrt", ad.NodeSqrt, (POSITIVE,)),
    Case("tanh", ad.NodeTanh, (FAR,)),
    Case("sin", ad.NodeSin, (REAL,)),
    Case("cos", ad.NodeCos, (REAL,)),
    Case("relu", ad.NodeRelu, (REAL,)),
    Case("abs", ad.NodeAbs, (REAL,)),
    Case("clip", partial(ad.NodeClip, lo=-1.0, hi=1.0), (REAL,)),
    Case("div", ad.NodeDiv, (COLUMN, ROW)),
    Case("maximum", ad.NodeMaximum, (COLUMN, ROW)),
    Case("minimum", ad.NodeMinimum, (COLUMN, ROW)),
    # A (2, 3) mask over a (3,) and a 0-d operand: the result is larger than either.
    Case("where", partial(ad.NodeWhere, mask=[[True, False, True], [False, False, True]]), (ROW, np.array(0.25))),
    Case("pow", ad.NodePow, (POSITIVE, REAL)),
    Case("softplus", ad.NodeSoftplus, (FAR,)),
    Case("log_sigmoid", ad.NodeLogSigmoid, (FAR,)),
    Case("log1p", ad.NodeLog1p, (POSITIVE - 1.4,)),
    Case("expm1", ad.NodeExpm1, (REAL,)),
    Case("logaddexp", ad.NodeLogAddExp, (FAR, FAR[::-1])),
    Case("logaddexp_broadcast", ad.NodeLogAddExp, (COLUMN, ROW)),
    Case("erf", ad.NodeErf, (REAL,)),
    Case("atan2", ad.NodeAtan2, (COLUMN, ROW)),
    Case("softmax", ad.NodeSoftmax, (FAR_ROWS,)),
    Case("softmax_axis_0", partial(ad.NodeSoftmax, axis=0), (FAR_ROWS,)),
    Case("log_softmax", ad.NodeLogSoftmax, (FAR_ROWS,)),
    Case("log_softmax_axis_0", partial(ad.NodeLogSoftmax, axis=0), (FAR_ROWS,)),
    Case("logsumexp", ad.NodeLogSumExp, (FAR_ROWS,)),
    Case("logsumexp_axis_1", partial(ad.NodeLogSumExp, axis=1), (FAR_ROWS,)),
    Case("logsumexp_axis_0_keepdims", partial(ad.NodeLogSumExp, axis=0, keepdims=True), (FAR_ROWS,)),
]

# Kinks and ties, where the derivative is a convention: backward()'s, which the tangent must share.
KINKS = [
    Case("relu_at_0", ad.NodeRelu, (np.array([-1.0, 0.0, 2.0]),)),
    Case("abs_at_0", ad.NodeAbs, (np.array([-1.0, 0.0, 2.0]),)),
    Case("clip_on_its_bounds", partial(ad.NodeClip, lo=-1.0, hi=1.0), (np.array([-2.0, -1.0, 0.0, 1.0, 2.0]),)),
    Case("maximum_at_ties", ad.NodeMaximum, (np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0]))),
    Case("minimum_at_ties", ad.NodeMinimum, (np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0]))),
    Case("maximum_at_broadcast_ties", ad.NodeMaximum, (np.array([[1.0], [2.0]]), np.array([1.0, 2.0, 0.0]))),
    Case("minimum_at_broadcast_ties", ad.NodeMinimum, (np.array([[1.0], [2.0]]), np.array([1.0, 2.0, 0.0]))),
    Case("power_0_at_0", partial(ad.NodePower, exponent=0), (np.array([0.0, 1.0, -2.0]),)),
    Case("pow_with_base_0", ad.NodePow, (np.array([0.0, 0.0, 1.5]), np.array([2.0, 3.0, -0.5]))),
    Case("where", partial(ad.NodeWhere, mask=[[True], [False]]), (ROW, COLUMN)),
]


def tangents_for(operands):
    rng = np.random.default_rng(0)  # any directions will do
    return [rng.uniform(-1.0, 1.0, np.shape(operand)) for operand in operands]


def node_on_inputs(build, count: int):
    """The node under test, built on `count` fresh input nodes."""
    inputs = [ad.NodeInput(f"x{i}") for i in range(count)]
    return build("node", inputs), inputs


def tangent_at(node, inputs, operands, tangents):
    for x, operand, tangent in zip(inputs, operands, tangents):
        x.value, x.tangent = operand, tangent
    node.forward()
    node.forward_tangent()
    return node.tangent


def central_difference(node, inputs, operands, tangents, h=1e-6):
    """(f(x + h t) - f(x - h t)) / 2h, and the size of its rounding error."""
    values = []
    for step in (h, -h):
        for x, operand, tangent in zip(inputs, operands, tangents):
            x.value = operand + step * tangent
        node.forward()
        values.append(np.asarray(node.value, dtype=np.float64))
    rounding = 4 * np.finfo(np.float64).eps * np.max(np.abs(values)) / h
    return (values[0] - values[1]) / (2 * h), rounding


# ---- the tangent is the derivative along the input tangents --------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_tangent_is_the_central_difference_along_the_input_tangents(case):
    node, inputs = node_on_inputs(case.build, len(case.operands))
    tangents = tangents_for(case.operands)
    expected, rounding = central_difference(node, inputs, case.operands, tangents)
    tangent = tangent_at(node, inputs, case.operands, tangents)
    assert np.shape(tangent) == np.shape(node.value)
    assert tangent.dtype == np.float64
    np.testing.assert_allclose(tangent, expected, rtol=1e-6, atol=1e-9 + rounding)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_a_float32_tangent_stays_float32_finite_and_close(case):
    node, inputs = node_on_inputs(case.build, len(case.operands))
    tangents = tangents_for(case.operands)
    expected, _ = central_difference(node, inputs, case.operands, tangents)
    as_float32 = [np.asarray(array, dtype=np.float32) for array in (*case.operands, *tangents)]
    tangent = tangent_at(node, inputs, as_float32[: len(inputs)], as_float32[len(inputs) :])
    assert np.shape(tangent) == np.shape(node.value)
    assert tangent.dtype == np.float32
    assert np.all(np.isfinite(tangent))
    np.testing.assert_allclose(tangent, expected, rtol=1e-4, atol=1e-5)


def test_a_float32_operand_against_a_float64_one_gets_the_float64_results_dtype():
    node, (a, b) = node_on_inputs(ad.NodeMult, 2)
    tangent = tangent_at(node, [a, b], [ROW.astype(np.float32), COLUMN], tangents_for([ROW, COLUMN]))
    assert node.value.dtype == tangent.dtype == np.float64


@pytest.mark.parametrize(
    ("node_class", "operands", "tangents"),
    [
        (ad.NodeAdd, (0.3, -1.2), (0.5, -0.25)),
        (ad.NodeSubtract, (0.3, -1.2), (0.5, -0.25)),
        (ad.NodeMult, (0.3, -1.2), (0.5, -0.25)),
        (ad.NodePower, (0.3,), (0.5,)),
        (ad.NodeSigmoid, (-800.0,), (0.5,)),
        (ad.NodeSigmoid, (0.7,), (0.5,)),
        (ad.NodeNeg, (0.3,), (0.5,)),
    ],
    ids=lambda x: getattr(x, "__name__", None),
)
def test_the_notebooks_python_float_graphs_get_python_float_tangents(node_class, operands, tangents):
    node, inputs = node_on_inputs(node_class, len(operands))
    expected, _ = central_difference(node, inputs, operands, tangents)
    tangent = tangent_at(node, inputs, operands, tangents)
    assert type(tangent) is float
    assert tangent == pytest.approx(float(expected), rel=1e-6, abs=1e-12)


# ---- the tangent rule is backward's Jacobian, kinks and ties included ----------------------


def jacobian_of_the_tangent_rule(node, inputs, operands):
    """Column k: the tangent along the k-th unit tangent of all the inputs' elements."""
    sizes = [np.size(operand) for operand in operands]
    columns = []
    for k in range(sum(sizes)):
        unit = np.zeros(sum(sizes))
        unit[k] = 1.0
        pieces = np.split(unit, np.cumsum(sizes)[:-1])
        tangents = [piece.reshape(np.shape(operand)) for piece, operand in zip(pieces, operands)]
        columns.append(np.ravel(tangent_at(node, inputs, operands, tangents)))
    return np.stack(columns, axis=1)


def jacobian_of_backward(node, inputs, operands):
    """Row m: backward()'s parts for the m-th unit cotangent, all the inputs' elements in a row."""
    for x, operand in zip(inputs, operands):
        x.value = operand
    node.forward()
    rows = []
    for m in range(np.size(node.value)):
        cotangent = np.zeros(np.size(node.value))
        cotangent[m] = 1.0
        node.seed = cotangent.reshape(np.shape(node.value))
        node.backward()
        rows.append(np.concatenate([np.ravel(node.gradients[x]) for x in inputs]))
    node.seed = None
    return np.stack(rows)


@pytest.mark.parametrize("case", KINKS + CASES, ids=lambda case: case.id)
def test_tangent_rule_applies_the_jacobian_whose_transpose_backward_applies(case):
    node, inputs = node_on_inputs(case.build, len(case.operands))
    forward_mode = jacobian_of_the_tangent_rule(node, inputs, case.operands)
    reverse_mode = jacobian_of_backward(node, inputs, case.operands)
    np.testing.assert_allclose(forward_mode, reverse_mode, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("node_class", [ad.NodeMaximum, ad.NodeMinimum])
def test_a_tie_gives_half_of_each_operands_tangent(node_class):
    node, inputs = node_on_inputs(node_class, 2)
    tangent = tangent_at(node, inputs, [np.array([1.0]), np.array([1.0])], [np.array([2.0]), np.array([4.0])])
    assert tangent.tolist() == [3.0]


@pytest.mark.parametrize("node_class", [ad.NodeMaximum, ad.NodeMinimum])
def test_the_max_or_min_of_a_node_with_itself_passes_its_whole_tangent(node_class):
    x = ad.NodeInput("x")
    node = node_class("itself", [x, x])
    assert tangent_at(node, [x], [REAL], [POSITIVE]).tolist() == POSITIVE.tolist()


# ---- coverage ------------------------------------------------------------------------------


def node_classes_of(module):
    return {
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ad.NodeBase) and value.__module__ == module.__name__
    }


@pytest.mark.parametrize("module", [elementwise, delicate, fused], ids=lambda module: module.__name__)
def test_every_node_class_has_its_own_tangent_rule_and_a_case(module):
    checked = {type(node_on_inputs(case.build, len(case.operands))[0]) for case in CASES}
    for node_class in node_classes_of(module):
        assert "forward_tangent" in vars(node_class), node_class.__name__
        assert node_class in checked, node_class.__name__
