"""Adding an op: what the op table drives by itself, and what must be added by hand.

The fixture adds a throwaway op, `cube` (a ** 3, elementwise), with the table entry, one line
per backend map and the engine's node class, and nothing more; the tests then see the
generator produce it, the validator check it, the docs table list it, finite differences
cover it, the audit's check pass on it, and the table-driven tests of `test_op_table.py` run
on it. The full list of what an op touches is docs/adding-an-op.md.

The planted engines of the selftest (oracles/selftest/planted.py) are not driven by the
table: the `ReverseEngine` needs the op in its FORWARD and VJP tables, and the battery needs a
planted bug in the op's rule, or a reason why not in NOT_PLANTED. The tests below fail until
both are there, and the fixture shows that they do fail for an op added without them.
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
from oracles.selftest import planted
from oracles.selftest.run import battery
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

    def forward_tangent(self):
        a = self.inputs[0]
        self.tangent = 3 * a.value**2 * a.tangent  # d(a^3) = 3 a^2 da


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


# ---- the planted engines of the selftest --------------------------------------------------------


def ops_the_planted_engine_lacks() -> list[str]:
    """The ops of the table that the planted `ReverseEngine` cannot compute: not in its forward
    table (its `ops`) or not in its VJP table."""
    engine = planted.ReverseEngine()
    return sorted(op for op in OPS if op not in engine.ops or op not in engine.vjp)


def planted_ops() -> set[str]:
    """The ops whose local rule at least one bug of the selftest battery breaks."""
    return {bug.op for bug in battery() if bug.category == "local rule"}


def ops_missing_a_planted_bug() -> list[str]:
    """The ops of the table with no planted bug in the selftest battery and no reason in NOT_PLANTED."""
    return sorted(set(OPS) - planted_ops() - set(planted.NOT_PLANTED))


def stale_not_planted_reasons() -> dict[str, str]:
    """The entries of NOT_PLANTED that no longer hold: {op: what is wrong with it}."""
    stale = {}
    for op, reason in planted.NOT_PLANTED.items():
        if op not in OPS:
            stale[op] = "not an op of the table"
        elif op in planted_ops():
            stale[op] = "has a planted bug in the battery"
        elif not (isinstance(reason, str) and reason.strip()):
            stale[op] = "no reason given"
    return stale


def test_the_planted_engine_computes_every_op_of_the_table():
    assert ops_the_planted_engine_lacks() == [], (
        "add the op to FORWARD and VJP in oracles/selftest/planted.py (docs/adding-an-op.md)"
    )


def test_the_planted_engines_forward_and_vjp_tables_are_the_op_table():
    assert set(planted.FORWARD) == set(OPS), "FORWARD in oracles/selftest/planted.py is not the op table"
    assert set(planted.VJP) == set(OPS), "VJP in oracles/selftest/planted.py is not the op table"


def test_every_op_has_a_planted_bug_or_a_reason_why_not():
    assert ops_missing_a_planted_bug() == [], (
        "plant a bug in the op's rule (NEW_OP_BUGS in oracles/selftest/planted.py), "
        "or say why not in NOT_PLANTED there (docs/adding-an-op.md)"
    )


def test_not_planted_names_only_ops_of_the_table_that_have_no_planted_bug():
    assert stale_not_planted_reasons() == {}


def test_an_op_added_without_the_planted_engine_is_missing_from_it_and_from_the_battery(cube):
    assert ops_the_planted_engine_lacks() == ["cube"]
    assert ops_missing_a_planted_bug() == ["cube"]


def test_a_stale_reason_in_not_planted_is_reported(cube, monkeypatch):
    monkeypatch.setitem(planted.NOT_PLANTED, "frobnicate", "no such op")
    monkeypatch.setitem(planted.NOT_PLANTED, "abs", "abs has abs_gradient_without_sign")
    monkeypatch.setitem(planted.NOT_PLANTED, "cube", " ")
    assert stale_not_planted_reasons() == {
        "frobnicate": "not an op of the table",
        "abs": "has a planted bug in the battery",
        "cube": "no reason given",
    }


def test_with_its_planted_rules_and_bug_the_new_op_is_complete_and_the_bug_is_caught(cube, monkeypatch):
    monkeypatch.setitem(planted.FORWARD, "cube", lambda a, attrs: a * a * a)
    monkeypatch.setitem(planted.VJP, "cube", lambda g, y, a, attrs: (3 * g * a * a,))
    bug = planted.Bug("cube", lambda g, y, a, attrs: (g * a * a,))  # the factor 3 dropped
    monkeypatch.setitem(planted.NEW_OP_BUGS, "cube_gradient_without_three", bug)
    monkeypatch.setitem(planted.BUGS, "cube_gradient_without_three", bug)
    assert ops_the_planted_engine_lacks() == [] and ops_missing_a_planted_bug() == []

    # Engines made now, since the module's own were made before the op existed.
    monkeypatch.setattr(planted, "correct", planted.ReverseEngine())
    monkeypatch.setattr(planted, "cube_gradient_without_three", planted.ReverseEngine("cube_gradient_without_three"),
                        raising=False)  # fmt: skip
    correct = load_backends("oracles.selftest.planted:correct", ("numeric",), isolate=False)
    broken = load_backends("oracles.selftest.planted:cube_gradient_without_three", ("numeric",), isolate=False)
    assert not check_case(cube_case(), correct).findings
    assert check_case(cube_case(), broken).findings
