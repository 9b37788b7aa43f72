"""Gradients are right in every graph shape, and a graph that cannot run says why."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad


def test_fan_out_to_three_consumers_adds_all_three_contributions():
    x = ad.NodeInput("x")
    a = ad.NodeMult("a", [x, x])  # 2x
    b = ad.NodeSigmoid("b", [x])  # s(1-s)
    c = ad.NodePower("c", [x], exponent=3)  # 3x^2
    total = ad.NodeAdd("t", [ad.NodeAdd("ab", [a, b]), c])
    ad.NodeOutput("out", [ad.NodeReduceSum("r", [total])])
    xv = np.array([[0.5, -1.0], [2.0, 0.25]])
    ad.run({x: xv})
    s = 1 / (1 + np.exp(-xv))
    np.testing.assert_allclose(x.gradients[x], 2 * xv + s * (1 - s) + 3 * xv**2)
    assert x.gradients[x].shape == (2, 2)


def test_diamond_adds_both_paths():
    x = ad.NodeInput("x")
    left = ad.NodeMult("left", [x, x])
    right = ad.NodeSigmoid("right", [x])
    ad.NodeOutput("out", [ad.NodeMult("join", [left, right])])
    ad.run({x: 0.7})
    s = 1 / (1 + np.exp(-0.7))
    assert x.gradients[x] == pytest.approx(2 * 0.7 * s + 0.7**2 * s * (1 - s))


def test_same_operand_twice_in_mult_counts_both_sides():
    x = ad.NodeInput("x")
    m = ad.NodeMult("m", [x, x])
    ad.NodeOutput("out", [m])
    ad.run({x: np.array([1.0, -2.0])}, cotangent=np.array([3.0, 5.0]))
    np.testing.assert_array_equal(m.gradients[x], [6.0, -20.0])
    np.testing.assert_array_equal(x.gradients[x], [6.0, -20.0])
    assert x.outputs == [m]  # consumers are listed once each


def test_default_cotangent_is_ones_of_the_output_shape():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, x])])
    ad.run({x: np.array([[1.0, 2.0, 3.0]])})
    np.testing.assert_array_equal(x.gradients[x], [[2.0, 4.0, 6.0]])


def test_cotangent_of_the_wrong_shape_names_the_output():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, x])])
    with pytest.raises(ad.GraphError, match="output 'out': cotangent of shape \\(3,\\), expected \\(2,\\)"):
        ad.run({x: np.ones(2)}, cotangent=np.ones(3))


def test_graph_without_a_node_output_seeds_its_last_node():
    x = ad.NodeInput("x")
    m = ad.NodeMult("m", [x, x])
    ad.run({x: 3.0}, [x, m])
    assert x.gradients[x] == 6.0


def test_input_that_does_not_reach_the_output_gets_zeros_of_its_shape():
    x, unused = ad.NodeInput("x"), ad.NodeInput("unused")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, x])])
    dead = ad.NodeSigmoid("dead", [unused])
    nodes = [x, unused, dead, *x.outputs, *x.outputs[0].outputs]
    ad.run({x: 2.0, unused: np.ones((2, 3))}, nodes)
    np.testing.assert_array_equal(unused.gradients[unused], np.zeros((2, 3)))
    assert x.gradients[x] == 4.0


def test_running_twice_gives_the_same_gradients():
    x, w = ad.NodeInput("x"), ad.NodeInput("w")
    ad.NodeOutput("out", [ad.NodeReduceSum("r", [ad.NodeDot("d", [x, w])])])
    feed = {x: np.arange(6.0).reshape(2, 3), w: np.arange(3.0)}
    ad.run(feed)
    first = (x.gradients[x].copy(), w.gradients[w].copy())
    ad.run(feed)
    np.testing.assert_array_equal(x.gradients[x], first[0])
    np.testing.assert_array_equal(w.gradients[w], first[1])


def test_a_consumer_outside_the_run_does_not_leak_its_old_gradient():
    x = ad.NodeInput("x")
    other = ad.NodeOutput("other", [ad.NodeMult("m2", [x, x])])
    ad.run({x: 5.0}, [x, *other.inputs, other])
    out = ad.NodeOutput("out", [ad.NodeAdd("a", [x, x])])
    ad.run({x: 5.0}, [x, *out.inputs, out])
    assert x.gradients[x] == 2.0


def test_100000_node_chain_runs_without_recursion_error():
    x = ad.NodeInput("x")
    node = x
    for i in range(100_000):
        node = ad.NodeAdd(f"n{i}", [node, x]) if i % 2 else ad.NodeSubtract(f"n{i}", [node, x])
    ad.NodeOutput("out", [node])
    ad.run({x: 1.0})
    assert x.gradients[x] == 1.0  # +1 from the chain's start, the +1s and -1s cancel


def test_order_is_derived_from_any_fed_input():
    x, a = ad.NodeInput("x"), ad.NodeInput("a")
    mul = ad.NodeMult("mul", [x, a])
    out = ad.NodeOutput("out", [mul])
    order = ad.run({x: 12.0, a: 4.0})
    assert set(order) == {x, a, mul, out}
    assert order.index(mul) > max(order.index(x), order.index(a)) and order[-1] is out


def test_cycle_is_an_error_that_names_its_nodes():
    x = ad.NodeInput("x")
    a = ad.NodeAdd("a", [x, x])
    b = ad.NodeMult("b", [a, x])
    a.inputs[1] = b  # rewire by hand into a cycle a -> b -> a
    b.outputs.append(a)
    with pytest.raises(ad.GraphError, match="cycle through nodes b -> a -> b"):
        ad.topological_order([b])


def test_wrong_number_of_inputs_names_the_node():
    with pytest.raises(ad.GraphError, match="node 'add' \\(NodeAdd\\) takes 2 input\\(s\\), got 1"):
        ad.NodeAdd("add", [ad.NodeInput("x")])


def test_an_input_that_is_not_a_node_names_the_node():
    with pytest.raises(ad.GraphError, match=r"node 'add': input 1 is 3\.0, not a node"):
        ad.NodeAdd("add", [ad.NodeInput("x"), 3.0])


def test_feed_value_of_the_declared_shape_is_checked():
    x = ad.NodeInput("x", shape=(2, 3))
    ad.NodeOutput("out", [ad.NodeSigmoid("s", [x])])
    with pytest.raises(ad.GraphError, match="input 'x': fed a value of shape \\(3,\\), expected \\(2, 3\\)"):
        ad.run({x: np.ones(3)})


def test_operands_that_do_not_broadcast_name_the_node():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    ad.NodeOutput("out", [ad.NodeAdd("sum_xy", [x, y])])
    with pytest.raises(ad.GraphError, match="node 'sum_xy' \\(NodeAdd\\): operands of shapes \\(3,\\), \\(4,\\)"):
        ad.run({x: np.ones(3), y: np.ones(4)})


def test_an_input_left_out_of_the_feed_is_named():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    ad.NodeOutput("out", [ad.NodeAdd("a", [x, y])])
    with pytest.raises(ad.GraphError, match="input 'y' has no value: put it in the feed"):
        ad.run({x: 1.0})


@given(
    st.data(),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
)
def test_sum_to_shape_undoes_every_numpy_broadcast(data, shape):
    # Broadcasting a to `target` and summing back must give the number of copies made of each element.
    target = data.draw(hnp.broadcastable_shapes(shape, min_dims=len(shape), max_dims=4, max_side=3))
    target = np.broadcast_shapes(shape, target)
    copies = ad.sum_to_shape(np.ones(target), shape)
    assert np.shape(copies) == shape
    np.testing.assert_array_equal(copies, np.full(shape, np.prod(target) / max(np.prod(shape), 1)))


def test_a_nested_list_in_the_feed_is_a_tensor():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeAdd("a", [x, x])])
    ad.run({x: [[1, 2], [3, 4]]})
    np.testing.assert_array_equal(x.gradients[x], np.full((2, 2), 2.0))


def test_division_by_zero_in_a_python_scalar_power_names_the_node():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodePower("inverse", [x], exponent=-1)])
    with pytest.raises(ad.GraphError, match="node 'inverse' \\(NodePower\\)"):
        ad.run({x: 0})


def test_the_notebook_spelling_of_subtract_still_works():
    assert ad.NodeSubstract is ad.NodeSubtract
