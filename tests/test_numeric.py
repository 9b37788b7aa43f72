"""Numerical gradients: ngrad returns arrays for every element; the directional variant
estimates one directional derivative with two evaluations."""

import subprocess
import sys

import numpy as np
import pytest

import autodiff as ad


def sigmoid_dot_graph():
    x, w = ad.NodeInput("x"), ad.NodeInput("w")
    out = ad.NodeOutput("out", [ad.NodeSigmoid("s", [ad.NodeDot("d", [x, w])])])
    rng = np.random.default_rng(3)
    return x, w, out, {x: rng.standard_normal((2, 3)), w: rng.standard_normal((3, 2))}


def test_ngrad_returns_an_array_per_input_with_its_shape():
    x, w, _, feed = sigmoid_dot_graph()
    numeric = ad.ngrad(feed)
    assert numeric[x].shape == (2, 3) and numeric[w].shape == (3, 2)
    ad.run(feed)
    np.testing.assert_allclose(numeric[x], x.gradients[x], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(numeric[w], w.gradients[w], rtol=1e-7, atol=1e-9)


def test_ngrad_is_a_vjp_with_the_given_cotangent():
    _, w, _, feed = sigmoid_dot_graph()
    v = np.array([[1.0, -2.0], [0.5, 3.0]])
    numeric = ad.ngrad(feed, cotangent=v)
    ad.run(feed, cotangent=v)
    np.testing.assert_allclose(numeric[w], w.gradients[w], rtol=1e-7, atol=1e-9)


def test_ngrad_leaves_the_graph_holding_the_fed_values():
    x, _, out, feed = sigmoid_dot_graph()
    ad.run(feed)
    before = out.value.copy()
    ad.ngrad(feed)
    np.testing.assert_array_equal(out.value, before)
    assert x.value is feed[x]


def test_ngrad_error_is_within_the_documented_eps_to_the_two_thirds():
    # d/dx x^3 = 3x^2, at sizes where the step must scale with |x|. The outputs are
    # differenced elementwise, so x = 1e3 does not drown the error at x = 0.5.
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodePower("p", [x], exponent=3)])
    xv = np.array([1e-3, 0.5, 10.0, 1e3])
    numeric = ad.ngrad({x: xv})[x]
    relative = np.abs(numeric - 3 * xv**2) / np.maximum(1.0, 3 * xv**2)
    assert np.max(relative) < 100 * np.finfo(np.float64).eps ** (2 / 3)


def test_directional_ngrad_matches_the_gradient_along_the_direction():
    x, w, _, feed = sigmoid_dot_graph()
    v = np.array([[1.0, -2.0], [0.5, 3.0]])
    estimate, directions = ad.ngrad_directional(feed, cotangent=v, seed=11)
    ad.run(feed, cotangent=v)
    exact = sum(np.sum(node.gradients[node] * directions[node]) for node in (x, w))
    assert estimate == pytest.approx(exact, rel=1e-7, abs=1e-9)


def test_directional_ngrad_catches_a_wrong_gradient_in_any_input():
    x, w, _, feed = sigmoid_dot_graph()
    estimate, directions = ad.ngrad_directional(feed, seed=5)
    ad.run(feed)
    wrong_w = w.gradients[w] * 1.01
    wrong = np.sum(x.gradients[x] * directions[x]) + np.sum(wrong_w * directions[w])
    assert abs(wrong - estimate) > 1e3 * abs(estimate) * 1e-7


def test_numerical_gradient_needs_exactly_one_output():
    x = ad.NodeInput("x")
    ad.NodeOutput("o1", [x])
    ad.NodeOutput("o2", [ad.NodeSigmoid("s", [x])])
    with pytest.raises(ad.GraphError, match=r"needs one output, found \['o1', 'o2'\]"):
        ad.ngrad({x: 1.0})


def test_the_engine_imports_without_jax_or_torch():
    code = "import sys; sys.modules['jax'] = None; sys.modules['torch'] = None; import autodiff"
    subprocess.run([sys.executable, "-c", code], check=True)
