"""Each oracle on hand-checked cases, the op-table coverage of every backend, and the plug-in loader.

Every expected value and vector-Jacobian product below is written out in closed form in the
test itself (for example, the VJP of sigmoid(a * x) with respect to x is v * s * (1 - s) * a),
so a backend is checked against arithmetic, not against another backend. JAX and PyTorch tests
skip when the package is not installed; the rest needs numpy only.
"""

from __future__ import annotations

import importlib
import sys
import uuid

import numpy as np
import pytest

from examples.broken_engines import FORWARD
from oracles.backends import (
    DEFAULT_ENGINE,
    Backend,
    PluginError,
    Unavailable,
    load_engine,
    load_reference,
)
from oracles.backends import numeric_backend as numeric
from oracles.format import validate_graph
from oracles.ops import OPS

RTOL = 1e-13  # float64: a few roundings of a handful of ops
AD_BACKENDS = ("autodiff", "jax", "torch")


# --- helpers ---------------------------------------------------------------------------------


def make_graph(inputs: dict, nodes: list, output: str, dtype: str = "float64") -> dict:
    """A validated (normalized) graph: what the harness hands every backend.

    `inputs` maps name -> shape; `nodes` is a list of (name, op, [operands]) or (name, op, [operands], attrs).
    """
    return validate_graph(
        {
            "format": "autodiff-graph",
            "version": 1,
            "dtype": dtype,
            "inputs": [{"name": name, "shape": list(shape)} for name, shape in inputs.items()],
            "nodes": [
                {"name": n[0], "op": n[1], "inputs": list(n[2]), **({"attrs": n[3]} if len(n) > 3 else {})}
                for n in nodes
            ],
            "output": output,
        }
    )


def evaluate(backend: Backend, graph: dict, values: dict, cotangent) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run one backend; check the protocol's shape of the answer; return arrays."""
    dtype = np.dtype(graph["dtype"])
    given = {name: np.asarray(value, dtype=dtype) for name, value in values.items()}
    value, gradients = backend.evaluate(graph, given, np.asarray(cotangent, dtype=dtype))
    assert set(gradients) == {entry["name"] for entry in graph["inputs"]}
    for entry in graph["inputs"]:
        assert np.shape(gradients[entry["name"]]) == tuple(entry["shape"]), entry["name"]
    return np.asarray(value), {name: np.asarray(g) for name, g in gradients.items()}


def assert_close(actual, expected, rtol=RTOL, atol=0.0):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture(params=AD_BACKENDS)
def backend(request) -> Backend:
    """Our engine through its plug-in adapter, and the JAX and PyTorch references."""
    if request.param == "autodiff":
        return load_engine(DEFAULT_ENGINE)
    pytest.importorskip(request.param, reason=f"{request.param} is not installed")
    loaded = load_reference(request.param)
    assert isinstance(loaded, Backend), loaded
    return loaded


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# --- add, subtract, mult ---------------------------------------------------------------------


def test_add_of_2x1_and_3_broadcasts_to_2x3_and_sums_each_gradient_back(backend):
    a = np.array([[1.0], [2.0]])
    b = np.array([10.0, 20.0, 30.0])
    v = rng(1).standard_normal((2, 3))
    graph = make_graph({"a": [2, 1], "b": [3]}, [("y", "add", ["a", "b"])], "y")
    value, grads = evaluate(backend, graph, {"a": a, "b": b}, v)
    assert_close(value, [[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]])
    assert_close(grads["a"], [[v[0, 0] + v[0, 1] + v[0, 2]], [v[1, 0] + v[1, 1] + v[1, 2]]])
    assert_close(grads["b"], [v[0, 0] + v[1, 0], v[0, 1] + v[1, 1], v[0, 2] + v[1, 2]])


def test_subtract_of_a_scalar_gives_it_minus_the_sum_of_the_cotangent(backend):
    x = np.array([1.5, -2.0, 4.0])
    v = np.array([0.5, -3.0, 2.0])
    graph = make_graph({"x": [3], "s": []}, [("y", "subtract", ["x", "s"])], "y")
    value, grads = evaluate(backend, graph, {"x": x, "s": 0.25}, v)
    assert_close(value, [1.25, -2.25, 3.75])
    assert_close(grads["x"], v)
    assert_close(grads["s"], -(0.5 - 3.0 + 2.0))


def test_subtract_from_a_scalar_gives_the_vector_minus_the_cotangent(backend):
    x = np.array([1.5, -2.0, 4.0])
    v = np.array([0.5, -3.0, 2.0])
    graph = make_graph({"s": [], "x": [3]}, [("y", "subtract", ["s", "x"])], "y")
    value, grads = evaluate(backend, graph, {"s": 1.0, "x": x}, v)
    assert_close(value, [-0.5, 3.0, -3.0])
    assert_close(grads["s"], 0.5 - 3.0 + 2.0)
    assert_close(grads["x"], -v)


def test_mult_of_x_with_itself_gives_twice_v_x(backend):
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    v = rng(2).standard_normal((2, 2))
    graph = make_graph({"x": [2, 2]}, [("y", "mult", ["x", "x"])], "y")
    value, grads = evaluate(backend, graph, {"x": x}, v)
    assert_close(value, x * x)
    # d/dx x*x = 2x: both operand slots contribute v*x.
    assert_close(grads["x"], 2 * v * x)


def test_mult_by_a_scalar_input_sums_its_gradient_over_the_other_operand(backend):
    x = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    v = rng(3).standard_normal((2, 3))
    graph = make_graph({"x": [2, 3], "a": []}, [("y", "mult", ["x", "a"])], "y")
    value, grads = evaluate(backend, graph, {"x": x, "a": -1.5}, v)
    assert_close(value, -1.5 * x)
    assert_close(grads["x"], -1.5 * v)
    assert_close(grads["a"], np.sum(v * x))


# --- power -----------------------------------------------------------------------------------


def test_power_3_gradient_is_3_v_x_squared(backend):
    x = np.array([-1.5, 0.0, 2.0])
    v = np.array([2.0, -1.0, 0.5])
    graph = make_graph({"x": [3]}, [("y", "power", ["x"], {"exponent": 3})], "y")
    value, grads = evaluate(backend, graph, {"x": x}, v)
    assert_close(value, [-3.375, 0.0, 8.0])
    assert_close(grads["x"], [2.0 * 3 * 2.25, 0.0, 0.5 * 3 * 4.0])


def test_power_without_attrs_squares_and_has_gradient_2_v_x(backend):
    x = np.array([-1.5, 3.0])
    v = np.array([0.5, -2.0])
    graph = make_graph({"x": [2]}, [("y", "power", ["x"])], "y")
    value, grads = evaluate(backend, graph, {"x": x}, v)
    assert_close(value, [2.25, 9.0])
    assert_close(grads["x"], [0.5 * 2 * -1.5, -2.0 * 2 * 3.0])


def test_power_0_has_a_zero_gradient_even_at_x_0(backend):
    # x**0 is the constant 1; the rule n x^(n-1) would be 0 * inf = NaN at x = 0.
    graph = make_graph({"x": [3]}, [("y", "power", ["x"], {"exponent": 0})], "y")
    value, grads = evaluate(backend, graph, {"x": [0.0, 1.0, -2.0]}, [1.0, 2.0, 3.0])
    assert_close(value, [1.0, 1.0, 1.0])
    assert_close(grads["x"], [0.0, 0.0, 0.0])


def test_power_minus_2_gradient_is_minus_2_v_over_x_cubed(backend):
    x = np.array([0.5, -2.0])
    v = np.array([1.0, 3.0])
    graph = make_graph({"x": [2]}, [("y", "power", ["x"], {"exponent": -2})], "y")
    value, grads = evaluate(backend, graph, {"x": x}, v)
    assert_close(value, [4.0, 0.25])
    assert_close(grads["x"], [1.0 * -2 / 0.125, 3.0 * -2 / -8.0])


# --- reduce_sum ------------------------------------------------------------------------------


X23 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])


def test_reduce_sum_over_axis_0_drops_the_axis_and_copies_the_cotangent_down_it(backend):
    v = np.array([0.5, -1.0, 2.0])
    graph = make_graph({"x": [2, 3]}, [("y", "reduce_sum", ["x"], {"axis": 0, "keepdims": False})], "y")
    value, grads = evaluate(backend, graph, {"x": X23}, v)
    assert_close(value, [5.0, 7.0, 9.0])
    assert_close(grads["x"], [[0.5, -1.0, 2.0], [0.5, -1.0, 2.0]])


def test_reduce_sum_over_axis_0_with_keepdims_keeps_a_size_1_axis(backend):
    v = np.array([[0.5, -1.0, 2.0]])
    graph = make_graph({"x": [2, 3]}, [("y", "reduce_sum", ["x"], {"axis": 0, "keepdims": True})], "y")
    value, grads = evaluate(backend, graph, {"x": X23}, v)
    assert_close(value, [[5.0, 7.0, 9.0]])
    assert_close(grads["x"], [[0.5, -1.0, 2.0], [0.5, -1.0, 2.0]])


def test_reduce_sum_over_axis_minus_1_sums_each_row(backend):
    v = np.array([3.0, -0.5])
    graph = make_graph({"x": [2, 3]}, [("y", "reduce_sum", ["x"], {"axis": -1, "keepdims": False})], "y")
    value, grads = evaluate(backend, graph, {"x": X23}, v)
    assert_close(value, [6.0, 15.0])
    assert_close(grads["x"], [[3.0, 3.0, 3.0], [-0.5, -0.5, -0.5]])


def test_reduce_sum_over_all_with_keepdims_gives_a_1x1_and_spreads_its_cotangent(backend):
    graph = make_graph({"x": [2, 3]}, [("y", "reduce_sum", ["x"], {"axis": None, "keepdims": True})], "y")
    value, grads = evaluate(backend, graph, {"x": X23}, [[-2.5]])
    assert_close(value, [[21.0]])
    assert_close(grads["x"], np.full((2, 3), -2.5))


def test_reduce_sum_over_all_by_default_gives_a_scalar(backend):
    graph = make_graph({"x": [2, 3]}, [("y", "reduce_sum", ["x"])], "y")
    value, grads = evaluate(backend, graph, {"x": X23}, 1.5)
    assert_close(value, 21.0)
    assert_close(grads["x"], np.full((2, 3), 1.5))


# --- dot -------------------------------------------------------------------------------------

# (shape of a, shape of b, expected value, expected vjp for a, expected vjp for b), by hand:
# for y = a @ b, a's VJP is v b^T and b's is a^T v, with vectors read as the obvious row or column.
DOT_COMBOS = {
    "1d_1d": ((3,), (3,), lambda a, b: np.sum(a * b), lambda v, a, b: v * b, lambda v, a, b: v * a),
    "2d_1d": (
        (2, 3),
        (3,),
        lambda a, b: np.array([np.sum(a[i] * b) for i in range(2)]),
        lambda v, a, b: np.outer(v, b),
        lambda v, a, b: np.array([np.sum(a[:, j] * v) for j in range(3)]),
    ),
    "1d_2d": (
        (2,),
        (2, 3),
        lambda a, b: np.array([np.sum(a * b[:, j]) for j in range(3)]),
        lambda v, a, b: np.array([np.sum(b[i] * v) for i in range(2)]),
        lambda v, a, b: np.outer(a, v),
    ),
    "2d_2d": (
        (2, 3),
        (3, 4),
        lambda a, b: np.array([[np.sum(a[i] * b[:, j]) for j in range(4)] for i in range(2)]),
        lambda v, a, b: np.array([[np.sum(v[i] * b[k]) for k in range(3)] for i in range(2)]),
        lambda v, a, b: np.array([[np.sum(a[:, k] * v[:, j]) for j in range(4)] for k in range(3)]),
    ),
}


@pytest.mark.parametrize("combo", list(DOT_COMBOS))
def test_dot_vjp_is_the_cotangent_times_the_other_operand_transposed(backend, combo):
    a_shape, b_shape, value_of, vjp_a, vjp_b = DOT_COMBOS[combo]
    r = rng(4)
    a, b = r.standard_normal(a_shape), r.standard_normal(b_shape)
    out_shape = np.shape(value_of(a, b))
    v = r.standard_normal(out_shape)  # random, non-symmetric: a ones cotangent hides transposition bugs
    graph = make_graph({"a": a_shape, "b": b_shape}, [("y", "dot", ["a", "b"])], "y")
    value, grads = evaluate(backend, graph, {"a": a, "b": b}, v)
    assert_close(value, value_of(a, b), rtol=1e-12)
    assert_close(grads["a"], vjp_a(v, a, b), rtol=1e-12)
    assert_close(grads["b"], vjp_b(v, a, b), rtol=1e-12)


# --- sigmoid ---------------------------------------------------------------------------------


def test_sigmoid_at_plus_and_minus_30_and_1000_is_finite_and_right(backend):
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    v = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    graph = make_graph({"x": [5]}, [("s", "sigmoid", ["x"])], "s")
    value, grads = evaluate(backend, graph, {"x": x}, v)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grads["x"]))
    e30 = np.exp(-30.0)
    assert_close(value, [0.0, e30 / (1 + e30), 0.5, 1 / (1 + e30), 1.0], rtol=1e-14, atol=0.0)
    # sigma'(x) = e^-|x| / (1 + e^-|x|)^2. Backends form s (1 - s), exact only to about eps in
    # absolute terms once s rounds near 1, hence the absolute tolerance.
    slope30 = e30 / (1 + e30) ** 2
    assert_close(grads["x"], v * np.array([0.0, slope30, 0.25, slope30, 0.0]), rtol=1e-12, atol=1e-15)


def test_sigmoid_of_a_times_x_has_vjp_v_s_1_minus_s_times_the_other_factor(backend):
    x = np.array([0.5, -1.0, 2.0])
    a = 0.75
    v = np.array([1.0, -2.0, 0.5])
    graph = make_graph({"x": [3], "a": []}, [("m", "mult", ["a", "x"]), ("s", "sigmoid", ["m"])], "s")
    value, grads = evaluate(backend, graph, {"x": x, "a": a}, v)
    s = 1 / (1 + np.exp(-a * x))
    assert_close(value, s)
    assert_close(grads["x"], v * s * (1 - s) * a)
    assert_close(grads["a"], np.sum(v * s * (1 - s) * x))


# --- graph structure -------------------------------------------------------------------------


def test_fan_out_accumulates_the_contributions_of_every_use(backend):
    # y = x * a + x: x is used twice, so its VJP is v a + v.
    x = np.array([1.0, -2.0])
    a = np.array([3.0, 0.5])
    v = np.array([0.25, -4.0])
    graph = make_graph({"x": [2], "a": [2]}, [("m", "mult", ["x", "a"]), ("y", "add", ["m", "x"])], "y")
    value, grads = evaluate(backend, graph, {"x": x, "a": a}, v)
    assert_close(value, x * a + x)
    assert_close(grads["x"], v * a + v)
    assert_close(grads["a"], v * x)


def test_a_diamond_through_sigmoid_gives_the_chain_rule_of_s_cubed(backend):
    # s = sigmoid(x); y = s * s^2 = s^3, so dy/dx = 3 s^2 s (1 - s).
    x = np.array([0.3, -1.2])
    v = np.array([2.0, -0.5])
    graph = make_graph(
        {"x": [2]},
        [("s", "sigmoid", ["x"]), ("q", "power", ["s"], {"exponent": 2}), ("y", "mult", ["s", "q"])],
        "y",
    )
    value, grads = evaluate(backend, graph, {"x": x}, v)
    s = 1 / (1 + np.exp(-x))
    assert_close(value, s**3)
    assert_close(grads["x"], v * 3 * s**2 * s * (1 - s))


def test_an_input_that_does_not_reach_the_output_gets_zeros_of_its_shape(backend):
    graph = make_graph({"x": [2], "unused": [3, 2]}, [("y", "power", ["x"], {"exponent": 2})], "y")
    value, grads = evaluate(backend, graph, {"x": [1.0, 2.0], "unused": np.ones((3, 2))}, [1.0, 1.0])
    assert_close(value, [1.0, 4.0])
    assert_close(grads["unused"], np.zeros((3, 2)))


def test_an_output_that_is_an_input_returns_it_and_the_cotangent_as_its_vjp(backend):
    graph = make_graph({"x": [2, 2], "w": [3]}, [], "x")
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    v = np.array([[0.5, -1.0], [2.0, 0.0]])
    value, grads = evaluate(backend, graph, {"x": x, "w": [1.0, 2.0, 3.0]}, v)
    assert_close(value, x)
    assert_close(grads["x"], v)
    assert_close(grads["w"], np.zeros(3))


def test_a_float32_graph_returns_float32_value_and_gradients(backend):
    graph = make_graph(
        {"x": [2, 3], "w": [3]},
        [("d", "dot", ["x", "w"]), ("s", "sigmoid", ["d"]), ("y", "reduce_sum", ["s"], {"axis": 0})],
        "y",
        dtype="float32",
    )
    x = np.array([[0.5, -1.0, 0.25], [1.0, 0.0, -0.5]], dtype=np.float32)
    w = np.array([1.0, 0.5, -2.0], dtype=np.float32)
    value, grads = evaluate(backend, graph, {"x": x, "w": w}, np.float32(2.0))
    assert value.dtype == np.float32
    assert grads["x"].dtype == np.float32 and grads["w"].dtype == np.float32
    d = x.astype(np.float64) @ w.astype(np.float64)
    s = 1 / (1 + np.exp(-d))
    g = 2.0 * s * (1 - s)
    assert_close(value, np.sum(s), rtol=1e-6)
    assert_close(grads["x"], np.outer(g, w), rtol=1e-5, atol=1e-7)
    assert_close(grads["w"], x.T.astype(np.float64) @ g, rtol=1e-5, atol=1e-7)


# --- the numeric oracle ----------------------------------------------------------------------


def smooth_graph_case():
    """p = sigmoid(W @ x) ** 3 with its value and exact VJPs, by hand."""
    graph = make_graph(
        {"W": [2, 3], "x": [3]},
        [("d", "dot", ["W", "x"]), ("s", "sigmoid", ["d"]), ("p", "power", ["s"], {"exponent": 3})],
        "p",
    )
    r = rng(5)
    W, x, v = r.standard_normal((2, 3)), r.standard_normal(3), r.standard_normal(2)
    s = 1 / (1 + np.exp(-(W @ x)))
    g = v * 3 * s**2 * s * (1 - s)  # cotangent at d
    return graph, {"W": W, "x": x}, v, s**3, {"W": np.outer(g, x), "x": W.T @ g}


def test_numeric_forward_value_is_the_hand_value():
    graph, values, _, expected, _ = smooth_graph_case()
    value = numeric.forward_value(graph, values)
    assert value.dtype == np.float64
    assert_close(value, expected)


def test_numeric_forward_value_of_float32_values_is_computed_in_float64():
    graph = make_graph({"x": [2]}, [("y", "mult", ["x", "x"])], "y", dtype="float32")
    value = numeric.forward_value(graph, {"x": np.array([0.1, 3.0], dtype=np.float32)})
    assert value.dtype == np.float64
    x = np.float64(np.float32(0.1))
    assert_close(value, [x * x, 9.0], rtol=0)


def test_numeric_directional_derivative_matches_the_exact_vjp_within_its_bound():
    graph, values, v, _, vjps = smooth_graph_case()
    directions = numeric.random_directions(values, rng(6))
    estimates = numeric.directional_derivatives(graph, values, v, directions)
    assert set(estimates) == {"W", "x"}
    for name, (estimate, bound) in estimates.items():
        exact = float(np.sum(vjps[name] * directions[name]))
        assert abs(estimate - exact) <= bound, name


def test_numeric_error_bound_of_a_smooth_graph_is_below_1e_6_relative():
    graph, values, v, _, vjps = smooth_graph_case()
    directions = numeric.random_directions(values, rng(7))
    for name, (_, bound) in numeric.directional_derivatives(graph, values, v, directions).items():
        assert 0 < bound < 1e-6 * np.linalg.norm(vjps[name]), name


def test_numeric_gives_no_estimate_where_the_function_varies_faster_than_its_step():
    # sin(exp(x)) at x = 12 oscillates with a period of about 2pi / 162755 in x, while the step
    # is about 7e-5: the central differences at h, 2h and 4h are far from the derivative (20839)
    # and from each other. A 100,000-graph audit met such a case as a false alarm.
    graph = make_graph({"x": [1], "z": [1]}, [("e", "exp", ["x"]), ("s", "sin", ["e"]), ("t", "add", ["s", "z"])], "t")
    values = {"x": np.array([12.0]), "z": np.array([0.5])}
    directions = {"x": np.ones(1), "z": np.ones(1)}
    estimates = numeric.directional_derivatives(graph, values, np.ones(1), directions)
    assert "x" not in estimates  # not judged, as at a kink
    assert estimates["z"][0] == pytest.approx(1.0)  # the smooth input still is


def test_numeric_directional_derivative_of_an_unused_input_is_exactly_0():
    graph = make_graph({"x": [2], "unused": [3]}, [("y", "sigmoid", ["x"])], "y")
    values = {"x": np.array([0.5, -1.0]), "unused": np.array([1.0, 2.0, 3.0])}
    directions = numeric.random_directions(values, rng(8))
    estimate, _ = numeric.directional_derivatives(graph, values, np.ones(2), directions)["unused"]
    assert estimate == 0.0


def test_numeric_random_directions_are_unit_vectors_with_the_input_shapes():
    values = {"s": np.array(2.0), "v": np.ones(3), "m": np.ones((2, 3))}
    directions = numeric.random_directions(values, rng(9))
    assert set(directions) == {"s", "v", "m"}
    for name, direction in directions.items():
        assert np.shape(direction) == values[name].shape
        assert np.linalg.norm(np.ravel(direction)) == pytest.approx(1.0, rel=1e-14)


def test_numeric_random_directions_are_reproducible_from_the_generator_seed():
    values = {"v": np.ones(4), "m": np.ones((2, 2))}
    first, second = numeric.random_directions(values, rng(10)), numeric.random_directions(values, rng(10))
    for name in values:
        np.testing.assert_array_equal(first[name], second[name])


# --- every op of the table in every backend --------------------------------------------------


@pytest.mark.parametrize("name", ["autodiff_engine", "jax_backend", "torch_backend", "numeric_backend"])
def test_every_op_in_the_table_is_in_every_backends_ops(name):
    if name in ("jax_backend", "torch_backend"):
        package = name.removesuffix("_backend")
        pytest.importorskip(package, reason=f"{package} is not installed")
    module = importlib.import_module(f"oracles.backends.{name}")
    missing = sorted(set(OPS) - set(module.ops))
    assert not missing, f"{name} lacks op(s) {missing}"


@pytest.mark.parametrize("package", ["jax", "torch"])
def test_every_op_in_the_table_has_an_oracle_mapping(package):
    pytest.importorskip(package, reason=f"{package} is not installed")
    module = importlib.import_module(f"oracles.backends.{package}_backend")
    missing = sorted(set(OPS) - set(module.OPS))
    assert not missing, f"{package} has no mapping for op(s) {missing}"


def test_the_engine_adapter_has_a_node_class_for_every_op():
    from oracles.backends.autodiff_engine import NODE_CLASSES

    assert sorted(set(OPS) - set(NODE_CLASSES)) == []


# --- the plug-in loader ----------------------------------------------------------------------


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """Write a module file under a fresh name on sys.path; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"plugin_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        return name

    return write


def test_load_engine_takes_the_plugins_name_attribute():
    engine = load_engine("examples.broken_engines:correct")
    assert engine.name == "reverse-engine"
    assert engine.role == "engine"
    assert engine.ops == frozenset(FORWARD)


def test_load_engine_of_a_module_without_a_name_shows_the_spec(plugin_module):
    module = plugin_module("def evaluate(graph, values, cotangent):\n    return 0.0, {}\n")
    assert load_engine(module).name == module


def test_a_loaded_engine_evaluates_through_the_plugin():
    engine = load_engine("examples.broken_engines:correct")
    graph = make_graph({"x": [2]}, [("y", "power", ["x"], {"exponent": 3})], "y")
    value, grads = evaluate(engine, graph, {"x": [2.0, -1.0]}, [1.0, 2.0])
    assert_close(value, [8.0, -1.0])
    assert_close(grads["x"], [12.0, 6.0])


def test_a_plugin_without_evaluate_is_a_plugin_error_saying_so(plugin_module):
    module = plugin_module("name = 'no evaluate here'\n")
    with pytest.raises(PluginError, match=r"no callable evaluate"):
        load_engine(module)


def test_a_plugin_whose_ops_name_an_unknown_op_is_a_plugin_error_naming_it(plugin_module):
    module = plugin_module("ops = {'add', 'frobnicate'}\ndef evaluate(graph, values, cotangent):\n    pass\n")
    with pytest.raises(PluginError, match=r"'frobnicate'"):
        load_engine(module)


def test_a_plugin_whose_ops_is_not_a_collection_is_a_plugin_error(plugin_module):
    module = plugin_module("ops = 3\ndef evaluate(graph, values, cotangent):\n    pass\n")
    with pytest.raises(PluginError, match=r"ops must be a set"):
        load_engine(module)


def test_a_plugin_with_an_ops_subset_is_loaded_with_that_subset(plugin_module):
    module = plugin_module("ops = ['add', 'dot']\ndef evaluate(graph, values, cotangent):\n    pass\n")
    assert load_engine(module).ops == frozenset({"add", "dot"})


def test_a_missing_engine_module_is_a_plugin_error_naming_it():
    with pytest.raises(PluginError, match=r"no_such_engine_module"):
        load_engine("no_such_engine_module:engine")


def test_a_missing_engine_attribute_is_a_plugin_error_naming_it():
    with pytest.raises(PluginError, match=r"no attribute 'not_an_engine'"):
        load_engine("examples.broken_engines:not_an_engine")


def test_an_engine_spec_without_a_module_is_a_plugin_error():
    with pytest.raises(PluginError, match=r"package\.module"):
        load_engine(":correct")


def test_an_engine_module_that_raises_on_import_is_a_plugin_error_naming_the_exception(plugin_module):
    module = plugin_module("raise RuntimeError('broken at import')\n")
    with pytest.raises(PluginError, match=r"RuntimeError: broken at import"):
        load_engine(module)


def test_an_unknown_reference_is_a_plugin_error_listing_the_known_ones():
    with pytest.raises(PluginError, match=r"'nope'.*jax, torch, numeric"):
        load_reference("nope")


def test_a_reference_whose_package_cannot_be_imported_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # makes `import jax` raise ImportError
    monkeypatch.delitem(sys.modules, "oracles.backends.jax_backend", raising=False)
    loaded = load_reference("jax")
    assert isinstance(loaded, Unavailable)
    assert loaded.name == "jax"
    assert "jax" in loaded.reason
