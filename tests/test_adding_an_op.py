"""Adding an op is one table entry, one line per backend map and the engine's node class.

The fixture adds a throwaway op, `cube` (a ** 3, elementwise), exactly that way and nothing
more; the tests then see the generator produce it, the validator check it, the docs table
list it, finite differences cover it, the audit's check pass on it, and the table-driven
tests of `test_op_table.py` run on it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from case_builders import make_case
from test_op_table import assert_backend_computes_the_op

import autodiff
from oracles.backends import autodiff_engine, numeric_backend
from oracles.check import check_case, load_backends
from oracles.format import FormatError, case_to_json, validate_graph
from oracles.generate import GeneratorConfig, case_features, generate_case
from oracles.ops import OPS, Op, op_table_markdown
from oracles.ops.rules import same_shape
from tools.update_docs import render_graph_format_doc

HAVE = {name: importlib.util.find_spec(name) is not None for name in ("jax", "torch")}


class NodeCube(autodiff.NodeBase):
    """The engine's node class, in the notebook's style."""

    arity = 1

    def forward(self, value=None):
        self.value = self.inputs[0].value ** 3

    def backward(self):
        gradient = self.total_gradient()
        a = self.inputs[0].value
        self.store_gradients(gradient, gradient * 3 * a**2)  # d/da a^3 = 3 a^2


@pytest.fixture
def cube(monkeypatch):
    # 1. The op table entry: the defaults for a unary elementwise op (planner, samples, real domain).
    monkeypatch.setitem(OPS, "cube", Op("cube", 1, "elementwise `a ** 3`", same_shape, lambda a, attrs: a**3))
    # 2. One line per backend map.
    if HAVE["jax"]:
        from jax import lax

        from oracles.backends import jax_backend

        monkeypatch.setitem(jax_backend.OPS, "cube", lambda a, attrs: lax.integer_pow(a, 3))
    if HAVE["torch"]:
        from oracles.backends import torch_backend

        monkeypatch.setitem(torch_backend.OPS, "cube", lambda a, attrs: a**3)
    # 3. The engine's node class, and the line that maps the op to it in the engine's plug-in.
    monkeypatch.setitem(autodiff_engine.NODE_CLASSES, "cube", NodeCube)
    return "cube"


def cube_case():
    return make_case({"x": [2, 3]}, [("c", "cube", ["x"], {})], "c", {"x": [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]})


def test_the_generator_produces_the_new_op(cube):
    config = GeneratorConfig(ops=("cube", "add"))
    used = {node["op"] for index in range(40) for node in generate_case(0, index, config).graph["nodes"]}
    assert "cube" in used


def test_the_default_generator_config_includes_the_new_op(cube):
    assert "cube" in GeneratorConfig().ops


def test_the_validator_checks_the_new_op(cube):
    graph = case_to_json(cube_case())["graph"]
    assert validate_graph(graph)["nodes"][0]["op"] == "cube"
    graph["nodes"][0]["inputs"] = ["x", "x"]
    with pytest.raises(FormatError, match=r"graph\.nodes\[0\]\.inputs: 'cube' takes 1 input\(s\), got 2"):
        validate_graph(graph)


def test_the_docs_table_lists_the_new_op(cube):
    assert "| `cube` | 1 | elementwise `a ** 3` |" in op_table_markdown()
    assert "`cube`" in render_graph_format_doc()


def test_finite_differences_cover_the_new_op(cube):
    case = cube_case()
    direction = {"x": np.full((2, 3), 1 / np.sqrt(6))}
    (estimate, bound) = numeric_backend.directional_derivatives(case.graph, case.values, case.cotangent, direction)["x"]
    exact = float(np.sum(3 * case.values["x"] ** 2 * case.cotangent * direction["x"]))
    assert abs(estimate - exact) <= 4 * bound + 1e-9


def test_every_available_backend_agrees_on_the_new_op(cube):
    oracles = (*(name for name in ("jax", "torch") if HAVE[name]), "numeric")
    backends = load_backends(
        "oracles.backends.autodiff_engine", oracles, isolate=False
    )  # the op exists in this process only
    result = check_case(cube_case(), backends)
    assert result.checks > 0 and not result.findings


def test_generated_graphs_of_the_new_op_pass_the_audit_check(cube):
    backends = load_backends("oracles.backends.autodiff_engine", ("numeric",), isolate=False)
    config = GeneratorConfig(ops=("cube", "mult", "reduce_sum"))
    for index in range(20):
        case = generate_case(1, index, config)
        case_features(case)  # coverage reads the new op's (default, empty) features
        assert not check_case(case, backends, index).findings


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend_name", ["autodiff", "jax", "torch"])
def test_the_table_driven_tests_run_on_the_new_op(cube, backend_name, dtype):
    for index in range(len(OPS["cube"].samples)):
        assert_backend_computes_the_op(backend_name, "cube", index, dtype)
