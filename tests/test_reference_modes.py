"""The references' forward mode and second order agree with each other and with finite differences.

For every op of the table (its largest sample case, off every kink) and a few composed graphs,
in float64:
- JAX's and PyTorch's J t agree, and both agree with a central difference of the op table's
  numpy forward (numeric_backend.jvp_estimate) within its bound as the harness applies it,
  where it gives one;
- JAX's and PyTorch's H t agree, and both agree with a central difference of JAX's VJP
  (numeric_backend.hvp_estimate) likewise;
- each reference's forward mode is the transpose of its reverse mode: <v, J t> = <J^T v, t>.
Then the protocol's edges (an input the output does not reach, a graph whose VJP is constant,
float32) and the finite differences' own error model.

Tolerances follow the error model of oracles/check/compare.py: rtol times the larger answer's
inf-norm plus the case's scale, since a product that cancels to about 0 (the HVP of std over two
elements, which is linear there) keeps the rounding of the terms that cancelled.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")

from oracles.backends import jax_backend, torch_backend
from oracles.backends import numeric_backend as numeric
from oracles.check.compare import NUMERIC_BOUND_FACTOR
from oracles.format import case_to_json, infer_shapes, validate_graph
from oracles.generate import GeneratorConfig, generate_case, sample_cases
from oracles.ops import OPS

RTOL = 1e-9  # float64, as compare.RTOL
# A finite difference's bound as the harness applies it (compare.py): the truncation estimate
# |D(h) - D(2h)| / 3 is the leading c h^2 term, and the O(h^4) rest may pass it by a fraction.
FD = NUMERIC_BOUND_FACTOR
REFERENCES = {"jax": jax_backend, "torch": torch_backend}
# A few composed graphs (fan-out, chains of ops) beside the one-node cases of each op.
COMPOSED = [f"graph-{index}" for index in range(4)]
CASES = sorted(OPS) + COMPOSED


def _inf(x) -> float:
    return float(np.max(np.abs(x), initial=0.0))


@functools.cache
def case_of(which: str):
    """(graph, values, cotangent, tangents): an op's largest sample case, or a composed graph."""
    if which in OPS:
        case = max(sample_cases(which), key=lambda c: sum(value.size for value in c.values.values()))
    else:
        case = generate_case(17, int(which.split("-")[1]), GeneratorConfig(max_dim=2, max_nodes=6))
    rng = np.random.default_rng(zlib.crc32(which.encode()))
    tangents = {name: rng.standard_normal(np.shape(value)) for name, value in case.values.items()}
    return case_to_json(case)["graph"], case.values, np.asarray(case.cotangent), tangents


@functools.cache
def answers(which: str, reference: str):
    """One reference's (value, VJP), (value, J t) and H t on the case."""
    graph, values, cotangent, tangents = case_of(which)
    backend = REFERENCES[reference]
    return (
        backend.evaluate(graph, values, cotangent),
        backend.jvp(graph, values, tangents),
        backend.hvp(graph, values, cotangent, tangents),
    )


def jvp_scale(which: str) -> float:
    """The size J t's rounding is relative to: the answers, and the tangents themselves."""
    _, tangents = case_of(which)[2:]
    return max([_inf(answers(which, r)[1][1]) for r in REFERENCES] + [_inf(t) for t in tangents.values()])


def hvp_scale(which: str) -> float:
    """compare.py's HVP scale: the answers, the gradient scale times |t|, and |v| times the JVP scale."""
    _, _, cotangent, tangents = case_of(which)
    gradient_scale = max([_inf(cotangent)] + [_inf(g) for r in REFERENCES for g in answers(which, r)[0][1].values()])
    products = [_inf(p) for r in REFERENCES for p in answers(which, r)[2].values()]
    return max([*products, gradient_scale * max(map(_inf, tangents.values())), _inf(cotangent) * jvp_scale(which)])


@pytest.mark.parametrize("which", CASES)
def test_jax_and_torch_jvps_agree(which):
    (jax_value, jax_tangent), (torch_value, torch_tangent) = (answers(which, r)[1] for r in REFERENCES)
    (value, _) = answers(which, "jax")[0]
    assert jax_tangent.shape == torch_tangent.shape == value.shape
    assert jax_tangent.dtype == torch_tangent.dtype == np.float64
    value_scale = max([_inf(value)] + [_inf(x) for x in case_of(which)[1].values()])
    for forward_value in (jax_value, torch_value):  # jvp's value is evaluate's
        assert _inf(forward_value - value) <= RTOL * value_scale
    assert _inf(jax_tangent - torch_tangent) <= RTOL * jvp_scale(which)


@pytest.mark.parametrize("which", CASES)
def test_jvps_agree_with_finite_differences_of_the_forward(which):
    graph, values, _, tangents = case_of(which)
    estimate = numeric.jvp_estimate(graph, values, tangents)
    if estimate is None:
        pytest.skip("finite differences cannot judge this case (the differences do not behave as c h^2)")
    difference, bound = estimate
    for reference in REFERENCES:
        tangent = answers(which, reference)[1][1]
        assert _inf(tangent - difference) <= FD * bound + RTOL * jvp_scale(which), reference


@pytest.mark.parametrize("which", CASES)
def test_jax_and_torch_hvps_agree(which):
    values = case_of(which)[1]
    jax_products, torch_products = (answers(which, r)[2] for r in REFERENCES)
    assert set(jax_products) == set(torch_products) == set(values)
    for name, value in values.items():
        assert jax_products[name].shape == torch_products[name].shape == np.shape(value), name
        assert jax_products[name].dtype == torch_products[name].dtype == np.float64, name
        assert _inf(jax_products[name] - torch_products[name]) <= RTOL * hvp_scale(which), name


@pytest.mark.parametrize("which", CASES)
def test_hvps_agree_with_finite_differences_of_the_jax_vjp(which):
    graph, values, cotangent, tangents = case_of(which)
    estimate = numeric.hvp_estimate(
        lambda moved: jax_backend.evaluate(graph, moved, cotangent)[1], values, tangents, n_ops=len(graph["nodes"])
    )
    if estimate is None:
        pytest.skip("finite differences cannot judge this case (the differences do not behave as c h^2)")
    differences, bounds = estimate
    for reference in REFERENCES:
        for name, difference in differences.items():
            product = answers(which, reference)[2][name]
            assert _inf(product - difference) <= FD * bounds[name] + RTOL * hvp_scale(which), (reference, name)


@pytest.mark.parametrize("reference", sorted(REFERENCES))
@pytest.mark.parametrize("which", CASES)
def test_forward_mode_is_the_transpose_of_reverse_mode(which, reference):
    # <v, J t> = <J^T v, t>: two inner products of one quantity, each within its rounding.
    _, _, cotangent, tangents = case_of(which)
    (_, gradients), (_, tangent), _ = answers(which, reference)
    forward = float(np.sum(cotangent * tangent))
    reverse = sum(float(np.sum(gradients[name] * t)) for name, t in tangents.items())
    l2 = np.linalg.norm
    gradient_scale = max([_inf(cotangent)] + [_inf(g) for g in gradients.values()])
    tolerance = RTOL * (
        l2(cotangent) * (l2(tangent) + np.sqrt(tangent.size) * jvp_scale(which))
        + sum(l2(t) * (l2(gradients[n]) + np.sqrt(t.size) * gradient_scale) for n, t in tangents.items())
    )
    assert abs(forward - reverse) <= tolerance


# --- the protocol's edges ------------------------------------------------------------------


def graph_of(inputs: dict, nodes: list, output: str, dtype: str = "float64") -> dict:
    return validate_graph({
        "format": "autodiff-graph", "version": 1, "dtype": dtype,
        "inputs": [{"name": name, "shape": list(shape)} for name, shape in inputs.items()],
        "nodes": [{"name": n, "op": op, "inputs": list(operands)} for n, op, operands in nodes],
        "output": output,
    })  # fmt: skip


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_an_input_the_output_does_not_reach_gets_zeros_of_its_shape(reference):
    graph = graph_of({"x": [2], "unused": [3]}, [("y", "sin", ["x"])], "y")
    values = {"x": np.array([0.5, -1.0]), "unused": np.array([1.0, 2.0, 3.0])}
    tangents = {"x": np.array([1.0, 2.0]), "unused": np.array([4.0, 5.0, 6.0])}
    products = REFERENCES[reference].hvp(graph, values, np.array([1.0, -1.0]), tangents)
    np.testing.assert_array_equal(products["unused"], np.zeros(3))
    # d/dx of v cos(x) along t is -v sin(x) t
    np.testing.assert_allclose(products["x"], -np.array([1.0, -1.0]) * np.sin(values["x"]) * tangents["x"], rtol=1e-14)
    _, tangent = REFERENCES[reference].jvp(graph, values, tangents)
    np.testing.assert_allclose(tangent, np.cos(values["x"]) * tangents["x"], rtol=1e-14)


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_a_graph_whose_vjp_is_constant_has_a_zero_hvp(reference):
    # y = x + w: its VJP is the cotangent itself, which depends on no input (PyTorch's has no grad_fn).
    graph = graph_of({"x": [2], "w": [2]}, [("y", "add", ["x", "w"])], "y")
    values = {"x": np.array([0.5, -1.0]), "w": np.array([2.0, 3.0])}
    tangents = {"x": np.array([1.0, 2.0]), "w": np.array([4.0, 5.0])}
    products = REFERENCES[reference].hvp(graph, values, np.array([1.0, -1.0]), tangents)
    for name in values:
        np.testing.assert_array_equal(products[name], np.zeros(2))
        assert products[name].dtype == np.float64


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_a_float32_case_is_answered_in_float32_with_each_input_shape(reference):
    graph = graph_of({"x": [2, 3], "s": []}, [("m", "mult", ["x", "s"]), ("y", "tanh", ["m"])], "y", "float32")
    values = {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "s": np.float32(0.5)}
    tangents = {"x": np.ones((2, 3), np.float32), "s": np.float32(1.0)}
    value, tangent = REFERENCES[reference].jvp(graph, values, tangents)
    assert value.dtype == tangent.dtype == np.float32 and tangent.shape == (2, 3)
    products = REFERENCES[reference].hvp(graph, values, np.ones((2, 3), np.float32), tangents)
    assert {name: (p.dtype, p.shape) for name, p in products.items()} == {
        "x": (np.float32, (2, 3)),
        "s": (np.float32, ()),
    }


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_softplus_far_out_has_a_finite_second_derivative(reference):
    # softplus''(a) = sigmoid(a)(1 - sigmoid(a)), about exp(-|a|): 0 in float64 at +-800, never NaN
    # (torch.logaddexp's double backward is inf / inf there; torch_backend.SECOND_ORDER avoids it).
    # Far out, exp(-40) is below the rounding of |v| |t| = 1 (JAX's exp(a - out) rule gives 0 at +40).
    graph = graph_of({"a": [4]}, [("y", "softplus", ["a"])], "y")
    values = {"a": np.array([-800.0, -40.0, 40.0, 800.0])}
    products = REFERENCES[reference].hvp(graph, values, np.ones(4), {"a": np.ones(4)})
    assert np.all(np.isfinite(products["a"]))
    np.testing.assert_allclose(products["a"], [0.0, np.exp(-40.0), np.exp(-40.0), 0.0], rtol=0, atol=RTOL)


# --- the finite differences' error model -----------------------------------------------------


def test_jvp_estimate_of_a_product_is_the_product_rule_within_its_bound():
    graph = graph_of({"x": [3], "w": [3]}, [("y", "mult", ["x", "w"])], "y")
    values = {"x": np.array([0.5, -2.0, 3.0]), "w": np.array([1.5, 0.25, -1.0])}
    tangents = {"x": np.array([1.0, -1.0, 0.5]), "w": np.array([2.0, 0.0, -3.0])}
    estimate, bound = numeric.jvp_estimate(graph, values, tangents)
    exact = tangents["x"] * values["w"] + values["x"] * tangents["w"]
    assert estimate.shape == (3,) and _inf(estimate - exact) <= bound < 1e-9


def test_jvp_estimate_gives_nothing_where_the_function_varies_faster_than_its_step():
    # sin(exp(x)) at x = 12 (as in test_backends): the differences at h, 2h, 4h do not follow h^2.
    graph = graph_of({"x": [1]}, [("e", "exp", ["x"]), ("s", "sin", ["e"])], "s")
    assert numeric.jvp_estimate(graph, {"x": np.array([12.0])}, {"x": np.ones(1)}) is None


def cubic_vjp(dtype):
    """The VJP (cotangent 1) of f(x) = sum(x^3) / 3, computed in `dtype`: x^2, whose H t is 2 x t."""
    return lambda values: {"x": np.asarray(values["x"], dtype=dtype) ** 2}


def test_hvp_estimate_of_a_float64_vjp_is_2xt_within_a_float64_bound():
    values, tangents = {"x": np.array([0.5, -2.0, 3.0])}, {"x": np.array([1.0, -1.0, 0.5])}
    estimates, bounds = numeric.hvp_estimate(cubic_vjp(np.float64), values, tangents)
    assert _inf(estimates["x"] - 2 * values["x"] * tangents["x"]) <= bounds["x"] < 1e-9


def test_hvp_estimate_of_a_float32_vjp_has_a_bound_of_float32_rounding():
    values = {"x": np.array([0.5, -2.0, 3.0], dtype=np.float32)}
    tangents = {"x": np.array([1.0, -1.0, 0.5])}
    estimates, bounds = numeric.hvp_estimate(cubic_vjp(np.float32), values, tangents)
    exact = 2 * values["x"].astype(np.float64) * tangents["x"]
    assert _inf(estimates["x"] - exact) <= bounds["x"]
    assert bounds["x"] > np.finfo(np.float32).eps * _inf(exact)  # float32's rounding, not float64's


def test_hvp_estimate_leaves_out_an_input_it_cannot_judge_and_keeps_the_others():
    def vjp(values):  # d/dx of sin(exp(x)) varies far faster than the step at x = 12; z's is z^2
        x, z = values["x"], values["z"]
        return {"x": np.cos(np.exp(x)) * np.exp(x), "z": z**2}

    values, tangents = {"x": np.array([12.0]), "z": np.array([1.5])}, {"x": np.ones(1), "z": np.ones(1)}
    estimates, _ = numeric.hvp_estimate(vjp, values, tangents)
    assert set(estimates) == {"z"}
    np.testing.assert_allclose(estimates["z"], [3.0], rtol=1e-9)


def _graph(inputs: dict, nodes: list, output: str, dtype: str = "float64") -> dict:
    return validate_graph({
        "dtype": dtype,
        "inputs": [{"name": n, "shape": s} for n, s in inputs.items()],
        "nodes": [{"name": n, "op": op, "inputs": operands, "attrs": attrs} for n, op, operands, attrs in nodes],
        "output": output,
    })  # fmt: skip


@pytest.mark.parametrize(
    ("where", "graph", "values"),
    [
        # torch.cumprod's backward divides by the operand: differentiated again at 1e-9, it cancels terms of 1e18.
        ("cumprod of tiny operands", _graph({"a": [3]}, [("c", "cumprod", ["a"], {"axis": 0})], "c"),
         {"a": np.array([1.5e-9, 1.3e-9, -2.1e-9])}),
        # torch.pow's backward masks an exponent of 0: its derivative in the exponent is 1 / a there, not 0.
        ("pow at exponent 0", _graph({"a": [2], "b": [2]}, [("p", "pow", ["a", "b"], {})], "p"),
         {"a": np.array([0.7, 1.9]), "b": np.array([0.0, 1.5])}),
        # torch.prod's backward divides too (graph 304 of a float32 audit, seed 23).
        ("prod of a tiny operand", _graph({"x0": [1], "x1": [1]}, [
            ("l0", "log1p", ["x1"], {}), ("m1", "matmul", ["x0", "l0"], {}), ("l2", "log1p", ["m1"], {}),
            ("p3", "reduce_prod", ["l2"], {"axis": None, "keepdims": True}), ("s4", "sigmoid", ["p3"], {}),
            ("e5", "exp", ["s4"], {})], "e5", dtype="float32"),
         {"x0": np.array([0.9171900153160095], np.float32), "x1": np.array([-6.05127170594244e-10], np.float32)}),
    ],
)  # fmt: skip
def test_where_pytorch_differentiates_its_own_backward_wrong_its_hvp_still_agrees_with_jax(where, graph, values):
    rng = np.random.default_rng(3)
    tangents = {name: rng.standard_normal(value.shape) for name, value in values.items()}
    tangents = {name: t.astype(graph["dtype"]) for name, t in tangents.items()}
    cotangent = np.ones(infer_shapes(graph)[graph["output"]], dtype=graph["dtype"])
    by_jax = jax_backend.hvp(graph, values, cotangent, tangents)
    by_torch = torch_backend.hvp(graph, values, cotangent, tangents)
    rtol = {"float64": RTOL, "float32": 2e-3}[graph["dtype"]]  # compare.RTOL
    for name in values:
        scale = max(_inf(by_jax[name]), 1.0)
        assert _inf(by_jax[name] - by_torch[name]) <= rtol * scale, (where, name, by_jax[name], by_torch[name])
