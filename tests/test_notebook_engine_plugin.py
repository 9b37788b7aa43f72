"""The notebook's engine behind the plug-in protocol (the adapter at the end of
examples/notebook_engine.py): it reports what the notebook computes, defects included."""

import numpy as np
import pytest

from examples import notebook_engine as nb
from oracles.backends import load_engine


def scalar_inputs(*names):
    return [{"name": name, "shape": []} for name in names]


def graph(inputs, nodes, output):
    return {
        "format": "autodiff-graph",
        "version": 1,
        "dtype": "float64",
        "inputs": inputs,
        "nodes": nodes,
        "output": output,
    }


def node(name, op, *inputs, **attrs):
    entry = {"name": name, "op": op, "inputs": list(inputs)}
    if attrs:
        entry["attrs"] = attrs
    return entry


def scalars(**values):
    return {name: np.array(value, dtype=np.float64) for name, value in values.items()}


ADD_X_X = graph(scalar_inputs("x"), [node("add", "add", "x", "x")], "add")
CUBE = graph(scalar_inputs("x"), [node("mul", "mult", "x", "x"), node("mul2", "mult", "mul", "x")], "mul2")
X_TIMES_A = graph(scalar_inputs("x", "a"), [node("mul", "mult", "x", "a")], "mul")


def test_add_x_x_matches_the_notebook_cell():
    value, gradients = nb.evaluate(ADD_X_X, scalars(x=2.0), np.array(1.0))
    assert value == 4.0
    assert gradients == {"x": 2.0}


def test_x_cubed_matches_the_notebook_cell():
    value, gradients = nb.evaluate(CUBE, scalars(x=4.0), np.array(1.0))
    assert value == 64.0
    assert gradients == {"x": 48.0}


def test_x_times_a_matches_the_notebook_cell():
    value, gradients = nb.evaluate(X_TIMES_A, scalars(x=12.0, a=4.0), np.array(1.0))
    assert value == 48.0
    assert gradients == {"x": 4.0, "a": 12.0}


def test_a_scalar_cotangent_scales_the_gradients():
    _, gradients = nb.evaluate(X_TIMES_A, scalars(x=12.0, a=4.0), np.array(-2.5))
    assert gradients == {"x": -10.0, "a": -30.0}


def test_the_output_may_be_an_input():
    value, gradients = nb.evaluate(graph(scalar_inputs("x"), [], "x"), scalars(x=3.0), np.array(2.5))
    assert value == 3.0
    assert gradients == {"x": 2.5}


def test_power_gradient_lacks_the_factor_x():
    power = graph(scalar_inputs("x"), [node("p", "power", "x", exponent=2)], "p")
    value, gradients = nb.evaluate(power, scalars(x=3.0), np.array(1.0))
    assert value == 9.0
    assert gradients == {"x": 2.0}  # the notebook's answer; the truth is 6


def test_a_tensor_gradient_collapses_to_a_scalar():
    square = graph([{"name": "x", "shape": [3]}], [node("m", "mult", "x", "x")], "m")
    value, gradients = nb.evaluate(square, {"x": np.array([1.0, 2.0, 3.0])}, np.ones(3))
    np.testing.assert_array_equal(value, [1.0, 4.0, 9.0])
    assert np.shape(gradients["x"]) == ()  # the truth is [2, 4, 6]


def test_a_graph_with_dot_raises():
    inputs = [{"name": "x", "shape": [2, 3]}, {"name": "w", "shape": [3, 4]}]
    matmul = graph(inputs, [node("d", "dot", "x", "w")], "d")
    values = {"x": np.arange(6.0).reshape(2, 3), "w": np.arange(12.0).reshape(3, 4)}
    with pytest.raises(ValueError):
        nb.evaluate(matmul, values, np.ones((2, 4)))


def test_an_unused_input_gets_what_the_notebook_gives():
    unused = graph(scalar_inputs("x", "u"), [node("s", "sigmoid", "x")], "s")
    _, gradients = nb.evaluate(unused, scalars(x=0.0, u=1.0), np.array(1.0))
    assert gradients["x"] == 0.25
    assert gradients["u"] == 0.0  # np.sum([]) over no consumers


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (node("p", "power", "x", exponent=3), ["NodePower", "'p'", "exponent 3"]),
        (node("r", "reduce_sum", "x", axis=1, keepdims=False), ["NodeReduceSum", "'r'", "axis 1"]),
        (node("k", "reduce_sum", "x", axis=None, keepdims=True), ["NodeReduceSum", "'k'", "keepdims"]),
    ],
)
def test_accepts_refuses_what_the_notebook_has_no_node_for(entry, words):
    reason = nb.accepts(graph([{"name": "x", "shape": [2, 3]}], [entry], entry["name"]))
    assert isinstance(reason, str)
    assert "\n" not in reason
    for word in words:
        assert word in reason


@pytest.mark.parametrize(
    ("inputs", "entry"),
    [
        ([{"name": "x", "shape": [2, 3]}], node("p", "power", "x", exponent=2)),
        ([{"name": "x", "shape": [2, 3]}], node("p", "power", "x")),
        ([{"name": "x", "shape": [2, 3]}], node("r", "reduce_sum", "x", axis=None, keepdims=False)),
        ([{"name": "x", "shape": [2, 3]}], node("r", "reduce_sum", "x")),
        ([{"name": "x", "shape": [2, 3]}, {"name": "w", "shape": [3]}], node("d", "dot", "x", "w")),
        ([{"name": "x", "shape": [2, 3]}], node("s", "sigmoid", "x")),
        ([{"name": "x", "shape": [2, 3]}, {"name": "b", "shape": [1, 3]}], node("a", "add", "x", "b")),
    ],
)
def test_accepts_takes_everything_else(inputs, entry):
    assert nb.accepts(graph(inputs, [entry], entry["name"])) is None


def test_the_harness_loads_the_module_as_a_plugin():
    backend = load_engine("examples.notebook_engine")
    assert backend.name == "notebook-engine"
    assert backend.ops == {"add", "subtract", "mult", "power", "reduce_sum", "dot", "sigmoid"}
    assert backend.plugin is nb


def test_the_notebook_keeps_its_shared_default_input_list():
    assert isinstance(nb.NodeBase.__init__.__defaults__[0], list)


def test_the_notebook_power_backward_still_returns_two_times_grad():
    x = nb.NodeInput("x", [])
    power = nb.NodePower("p", [x])
    out = nb.NodeOutput("out", [power])
    x.forward(5.0)
    power.forward()
    out.backward()
    power.backward()
    assert power.gradients[x] == 2  # whatever x is
