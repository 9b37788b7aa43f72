"""One regression test per defect of the seed notebook's engine.

Each test runs the same graph through the notebook's engine (examples/notebook_engine.py,
kept verbatim) to show the defect is real, and through `autodiff` to show it is fixed.
"""

import warnings

import numpy as np
import pytest

import autodiff as ad
from examples import notebook_engine as nb


def test_power_gradient_has_the_factor_x():
    """Defect: NodePower.backward returns 2 * grad; the rule is 2 * x * grad.

    At x = 3 the notebook computes d(x^2)/dx = 2; the truth is 6.
    """
    x = nb.NodeInput("x", [])
    p = nb.NodePower("p", [x])
    out = nb.NodeOutput("out", [p])
    nb.run({x: 3.0}, [x, p, out])
    assert x.gradients[x] == 2.0  # the notebook's wrong answer

    x = ad.NodeInput("x")
    out = ad.NodeOutput("out", [ad.NodePower("p", [x])])
    ad.run({x: 3.0})
    assert x.gradients[x] == 6.0


def test_fan_out_gradients_keep_the_tensor_shape():
    """Defect: every backward does np.sum([...]) over its consumers, collapsing tensors.

    For sum(x * x) at x = [1, 2, 3] the notebook gives the scalar 36 (np.sum of both
    contributions [1,2,3] and [1,2,3] times 3); the truth is [2, 4, 6].
    """
    x = nb.NodeInput("x", [])
    m = nb.NodeMult("m", [x, x])
    s = nb.NodeReduceSum("s", [m])
    out = nb.NodeOutput("out", [s])
    nb.run({x: np.array([1.0, 2.0, 3.0])}, [x, m, s, out])
    assert np.shape(x.gradients[x]) == ()
    assert x.gradients[x] == 36.0

    x = ad.NodeInput("x")
    out = ad.NodeOutput("out", [ad.NodeReduceSum("s", [ad.NodeMult("m", [x, x])])])
    ad.run({x: np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(x.gradients[x], [2.0, 4.0, 6.0])


def test_dot_graph_runs_backward():
    """Defect: the collapsed scalar gradient reaches NodeDot, whose `scalar @ matrix` crashes.

    The notebook raises on sum(x @ w); the truth is ones @ w.T for x and x.T @ ones for w.
    """
    xv, wv = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    x, w = nb.NodeInput("x", []), nb.NodeInput("w", [])
    d = nb.NodeDot("d", [x, w])
    s = nb.NodeReduceSum("s", [d])
    out = nb.NodeOutput("out", [s])
    with pytest.raises(ValueError):
        nb.run({x: xv, w: wv}, [x, w, d, s, out])

    x, w = ad.NodeInput("x"), ad.NodeInput("w")
    out = ad.NodeOutput("out", [ad.NodeReduceSum("s", [ad.NodeDot("d", [x, w])])])
    ad.run({x: xv, w: wv})
    np.testing.assert_array_equal(x.gradients[x], np.ones((2, 4)) @ wv.T)
    np.testing.assert_array_equal(w.gradients[w], xv.T @ np.ones((2, 4)))


def test_nodes_do_not_share_a_default_input_list():
    """Defect: `input_nodes=[]` is one list shared by every node built without inputs.

    In the notebook, two NodeInputs built bare share `inputs`; appending to one's inputs
    appends to the other's.
    """
    a, b = nb.NodeInput("a"), nb.NodeInput("b")
    assert a.inputs is b.inputs

    a, b = ad.NodeInput("a"), ad.NodeInput("b")
    assert a.inputs is not b.inputs
    a.inputs.append(b)
    assert b.inputs == []


def test_subtracting_a_node_from_itself_has_gradient_zero():
    """Defect: a node used twice by one op stores one contribution, overwritten.

    For x - x the notebook keeps only -1 and counts it twice (x.outputs lists the node
    twice): gradient -2. The truth is 0.
    """
    x = nb.NodeInput("x", [])
    d = nb.NodeSubstract("d", [x, x])
    out = nb.NodeOutput("out", [d])
    nb.run({x: 5.0}, [x, d, out])
    assert x.gradients[x] == -2.0

    x = ad.NodeInput("x")
    out = ad.NodeOutput("out", [ad.NodeSubtract("d", [x, x])])
    ad.run({x: 5.0})
    assert x.gradients[x] == 0.0


def test_node_order_is_derived_not_typed_by_hand():
    """Defect: the notebook runs nodes in the order the caller lists; a wrong order
    silently computes with stale or missing values. Here the order is derived, and a
    wrong listed order is an error that names the node."""
    x = ad.NodeInput("x")
    mul = ad.NodeMult("mul", [x, x])
    out = ad.NodeOutput("out", [mul])
    ad.run({x: 3.0})
    assert x.gradients[x] == 6.0
    with pytest.raises(ad.GraphError, match="node 'mul': input 0 'x' is not listed before it"):
        ad.run({x: 3.0}, [mul, x, out])


def test_output_is_seeded_with_a_cotangent_of_its_shape():
    """Defect: NodeOutput.backward seeds the scalar 1, whatever the output's shape, and
    cannot take a cotangent. Here the seed is ones of the output's shape, or a given v."""
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, x])])
    ad.run({x: np.array([1.0, 2.0])}, cotangent=np.array([10.0, -1.0]))
    np.testing.assert_array_equal(x.gradients[x], [20.0, -4.0])


def test_sigmoid_does_not_overflow_at_large_negative_inputs():
    """Defect: 1 / (1 + exp(-x)) overflows exp for x = -1000 (a RuntimeWarning, and
    exp(1000) = inf). Here sigmoid(+-1000) is exact with no warning."""
    with pytest.warns(RuntimeWarning):
        nb.NodeSigmoid("s")._sigmoid(np.array([-1000.0]))

    x = ad.NodeInput("x")
    s = ad.NodeSigmoid("s", [x])
    ad.NodeOutput("out", [s])
    # Underflow to 0 is the right answer here; overflow and NaN are what must not happen.
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        ad.run({x: np.array([-1000.0, 0.0, 1000.0])})
    np.testing.assert_array_equal(s.value, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(x.gradients[x], [0.0, 0.25, 0.0])
    ad.run({x: -1000.0})
    assert s.value == 0.0 and x.gradients[x] == 0.0
