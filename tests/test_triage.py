"""Triage: blame down to the op, by checking every node of a failing case on its own.

Each node becomes a one-node case whose operands hold the references' values at that
node and whose cotangent is the references' adjoint there, so a wrong rule is named where
it is, however many correct nodes lie upstream or downstream of it.
"""

from __future__ import annotations

import numpy as np
import pytest
from case_builders import make_case

from examples.broken_engines import FORWARD, ReverseEngine
from oracles.backends import from_plugin, load_engine, load_reference
from oracles.check import Backends, check_case
from oracles.diagnose import OK, NodeReport, Triage, adjoints, local_names, one_node_case, settle, triage
from oracles.format import Case, case_to_json, reference_values, validate_case
from oracles.generate import GeneratorConfig, generate_case
from oracles.kinds import Kind

X = [0.4, -1.3, 2.1]
W = [1.7, 0.6, -0.9]
V = [0.8, -1.1, 0.35]


# --- helpers ---------------------------------------------------------------------------------


def chain() -> Case:
    """m = x * w, s = sigmoid(m), r = sum(s): the sigmoid sits between two correct nodes."""
    nodes = [("m", "mult", ["x", "w"], {}), ("s", "sigmoid", ["m"], {}), ("r", "reduce_sum", ["s"], {})]
    return make_case({"x": [3], "w": [3]}, nodes, "r", {"x": X, "w": W}, 0.7)


def sigmoid_of_product() -> Case:
    """out = sigmoid(x * w), a vector, with the cotangent V."""
    nodes = [("m", "mult", ["x", "w"], {}), ("s", "sigmoid", ["m"], {})]
    return make_case({"x": [3], "w": [3]}, nodes, "s", {"x": X, "w": W}, V)


def verdicts(result) -> dict[str, str]:
    return {report.name: report.verdict for report in result.nodes}


@pytest.fixture(scope="module")
def torch_reference():
    pytest.importorskip("torch", reason="triage takes its values and adjoints from PyTorch here")
    return load_reference("torch")


def with_torch(engine, torch_reference) -> Backends:
    return Backends(engine, [torch_reference], load_reference("numeric"))


def run_triage(case: Case, engine, torch_reference):
    return triage(case, with_torch(engine, torch_reference))


class MultValuePlusOneThousandth:
    """A plug-in whose mult VALUE is off by 1e-3; gradients come from a correct engine."""

    name = "mult-value-off"

    def __init__(self):
        self.correct = ReverseEngine()

    def evaluate(self, graph, values, cotangent):
        _, gradients = self.correct.evaluate(graph, values, cotangent)
        computed = {name: np.asarray(value) for name, value in values.items()}
        for node in graph["nodes"]:
            operands = [computed[name] for name in node["inputs"]]
            if node["op"] == "mult":
                computed[node["name"]] = operands[0] * operands[1] + 1e-3
            else:
                computed[node["name"]] = np.asarray(FORWARD[node["op"]](*operands, node["attrs"]))
        return computed[graph["output"]], gradients


# --- correct engines -------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["examples.broken_engines:correct", "oracles.backends.autodiff_engine"])
@pytest.mark.parametrize("index", [0, 3, 8])
def test_a_correct_engine_gets_ok_at_every_node(spec, index, torch_reference):
    case = generate_case(0, index, GeneratorConfig(ops=tuple(FORWARD)))  # the ops both engines have
    engine = load_engine(spec)
    assert not check_case(case, with_torch(engine, torch_reference)).findings
    result = run_triage(case, engine, torch_reference)
    assert result.kind is None and result.op is None
    assert set(verdicts(result).values()) == {"ok"}


# --- a wrong local rule is named where it is -------------------------------------------------


def test_a_wrong_sigmoid_rule_is_named_between_correct_nodes(torch_reference):
    engine = load_engine("examples.broken_engines:sigmoid_without_one_minus")
    result = run_triage(chain(), engine, torch_reference)
    assert (result.kind, result.op, result.node) == ("gradient", "sigmoid", "s")
    assert verdicts(result) == {"m": "ok", "s": "gradient", "r": "ok"}


def test_a_wrong_value_is_named_at_the_first_wrong_node_not_at_the_nodes_it_feeds(torch_reference):
    nodes = [
        ("p", "power", ["x"], {"exponent": 2}),
        ("m", "mult", ["p", "w"], {}),
        ("s", "sigmoid", ["m"], {}),
        ("r", "reduce_sum", ["s"], {}),
    ]
    case = make_case({"x": [3], "w": [3]}, nodes, "r", {"x": X, "w": W}, 0.7)
    engine = from_plugin(MultValuePlusOneThousandth(), "mult-value-off", role="engine")
    assert any(f.kind == "value" for f in check_case(case, with_torch(engine, torch_reference)).findings)
    result = run_triage(case, engine, torch_reference)
    assert (result.kind, result.op, result.node) == ("value", "mult", "m")
    assert verdicts(result) == {"p": "ok", "m": "value", "s": "ok", "r": "ok"}


# --- composition: every local rule right, the whole wrong ------------------------------------


def test_overwritten_fan_out_in_mult_x_x_is_composition(torch_reference):
    case = make_case({"x": [3]}, [("m", "mult", ["x", "x"], {})], "m", {"x": X}, V)
    engine = load_engine("examples.broken_engines:fan_out_overwritten")
    result = run_triage(case, engine, torch_reference)
    assert (result.kind, result.op, result.node) == ("composition", None, None)
    assert verdicts(result) == {"m": "ok"}


def test_the_one_node_check_gives_each_operand_slot_its_own_input():
    assert local_names({"name": "m", "op": "mult", "inputs": ["x", "x"]}) == ["x", "x_2"]


def test_overwritten_fan_out_in_a_diamond_is_composition(torch_reference):
    nodes = [
        ("a", "sigmoid", ["x"], {}),
        ("b", "power", ["x"], {"exponent": 2}),
        ("c", "mult", ["a", "b"], {}),
    ]
    case = make_case({"x": [3]}, nodes, "c", {"x": X}, V)
    engine = load_engine("examples.broken_engines:fan_out_overwritten")
    result = run_triage(case, engine, torch_reference)
    assert (result.kind, result.op, result.node) == ("composition", None, None)
    assert set(verdicts(result).values()) == {"ok"}


# --- adjoints and one-node cases -------------------------------------------------------------


def expected_adjoints() -> dict[str, np.ndarray]:
    # out = sigmoid(m), m = x * w: d sum(v * out) / d out = v, and / d m = v s (1 - s).
    s = 1 / (1 + np.exp(-np.multiply(X, W)))
    return {"s": np.asarray(V), "m": np.asarray(V) * s * (1 - s)}


def test_adjoints_by_an_ad_reference_are_the_hand_computed_ones(torch_reference):
    case = sigmoid_of_product()
    computed = adjoints(case, [torch_reference], reference_values(case.graph, case.values))
    for name, expected in expected_adjoints().items():
        np.testing.assert_allclose(computed[name], expected, rtol=1e-12, atol=1e-15)


def test_adjoints_without_an_ad_reference_are_the_hand_computed_ones_by_central_differences():
    case = sigmoid_of_product()
    computed = adjoints(case, [], reference_values(case.graph, case.values))
    for name, expected in expected_adjoints().items():
        np.testing.assert_allclose(computed[name], expected, rtol=1e-7, atol=1e-10)


def test_a_one_node_case_holds_the_references_values_at_that_node():
    case = chain()
    computed = reference_values(case.graph, case.values)
    adjoint = np.full(3, 0.7)
    sigmoid_node = case.graph["nodes"][1]
    local = one_node_case(case, sigmoid_node, computed, adjoint)
    validate_case(case_to_json(local))
    assert [node["op"] for node in local.graph["nodes"]] == ["sigmoid"]
    assert list(local.values) == ["m"]
    np.testing.assert_array_equal(local.values["m"], np.multiply(X, W))
    np.testing.assert_array_equal(local.cotangent, adjoint)


def test_a_one_node_case_of_mult_x_x_holds_x_in_both_slots():
    case = make_case({"x": [3]}, [("m", "mult", ["x", "x"], {})], "m", {"x": X}, V)
    local = one_node_case(case, case.graph["nodes"][0], reference_values(case.graph, case.values), np.asarray(V))
    validate_case(case_to_json(local))
    assert local.graph["nodes"][0]["inputs"] == ["x", "x_2"]
    np.testing.assert_array_equal(local.values["x"], X)
    np.testing.assert_array_equal(local.values["x_2"], X)


def test_a_one_node_case_is_valid_even_when_the_node_is_named_like_a_second_slot():
    # Node "x_2" = mult(x, x): the second slot must not take the node's own name.
    case = make_case({"x": [3]}, [("x_2", "mult", ["x", "x"], {})], "x_2", {"x": X}, V)
    node = case.graph["nodes"][0]
    local = one_node_case(case, node, reference_values(case.graph, case.values), np.asarray(V))
    validate_case(case_to_json(local))


def test_a_correct_engine_is_not_blamed_for_a_node_named_like_a_second_slot(torch_reference):
    case = make_case({"x": [3]}, [("x_2", "mult", ["x", "x"], {})], "x_2", {"x": X}, V)
    result = run_triage(case, load_engine("examples.broken_engines:correct"), torch_reference)
    assert result.kind is None
    assert verdicts(result) == {"x_2": "ok"}


class WhereCrashesAndProdIsNanAtZero(ReverseEngine):
    """Two bugs in one case: reduce_prod's gradient is NaN at a zero (the `out / a` rule), and
    where's gradient raises."""

    def __init__(self):
        super().__init__()
        self.name = "where-crashes-prod-nan"

        def crash(*args):
            raise ValueError("non-broadcastable output operand")

        def divided(g, y, a, attrs):
            with np.errstate(all="ignore"):
                return (np.broadcast_to(g * y / a, a.shape),)

        self.vjp = {**self.vjp, "where": crash, "reduce_prod": divided}


def test_a_crash_is_blamed_on_the_op_that_crashes_not_on_an_earlier_wrong_rule(torch_reference):
    from oracles.diagnose import diagnose

    nodes = [
        ("p", "reduce_prod", ["y"], {"axis": None, "keepdims": False}),
        ("w", "where", ["x", "p"], {"mask": False}),
    ]
    case = make_case({"x": [2], "y": [2]}, nodes, "w", {"x": [1.0, 2.0], "y": [0.0, 3.0]}, [0.5, -1.5])
    engine = from_plugin(WhereCrashesAndProdIsNanAtZero(), "where-crashes-prod-nan", role="engine")
    backends = with_torch(engine, torch_reference)
    settled = diagnose(case, check_case(case, backends), backends).result.findings
    assert {(f.kind, f.op) for f in settled if f.backend == engine.name} == {("crash", "where")}
    assert verdicts(run_triage(case, engine, torch_reference)) == {"p": "nan-inf", "w": "crash"}


# --- settling a finding by the nodes' verdicts in each derivative mode -----------------------


def judged(kind: Kind, mode: str, *nodes: tuple[str, dict[str, str]]) -> tuple[Kind, str | None]:
    """settle(kind, ...) in `mode` for a case whose nodes (op, {mode: local verdict}) triage judged
    in order; a node with no verdict is right, and the culprit is the first wrong one."""
    reports = [
        NodeReport(name=f"n{i}", op=op, inputs=[], local_inputs=[], attrs={}, value=0.0, adjoint=0.0,
                   verdict=next(iter(modes.values()), OK), modes=dict(modes))
        for i, (op, modes) in enumerate(nodes)
    ]  # fmt: skip
    wrong = next((r for r in reports if r.verdict != OK), None)
    local = Triage(
        Kind(wrong.verdict) if wrong else Kind.COMPOSITION, wrong.op if wrong else None, wrong and wrong.name, reports
    )
    return settle(kind, local, mode)


def test_a_finding_is_explained_by_a_node_wrong_in_its_own_mode_and_takes_that_nodes_kind():
    assert judged(Kind.GRADIENT, "vjp", ("sin", {}), ("exp", {"vjp": "gradient"})) == (Kind.GRADIENT, "exp")
    assert judged(Kind.JVP, "jvp", ("sin", {"jvp": "jvp"}), ("exp", {})) == (Kind.JVP, "sin")
    assert judged(Kind.HVP, "hvp", ("sin", {}), ("exp", {"hvp": "hvp"})) == (Kind.HVP, "exp")


def test_a_wrong_value_explains_a_finding_in_every_mode_as_a_value_bug():
    for kind, mode in [(Kind.GRADIENT, "vjp"), (Kind.JVP, "jvp"), (Kind.HVP, "hvp")]:
        assert judged(kind, mode, ("sin", {"vjp": "value"}), ("exp", {})) == (Kind.VALUE, "sin")


def test_second_order_is_explained_by_a_wrong_vjp_or_jvp_rule_keeping_its_own_kind():
    # Forward over reverse computes H t with both rules: the op is the one whose rule is wrong.
    assert judged(Kind.HVP, "hvp", ("sin", {}), ("exp", {"vjp": "gradient"})) == (Kind.HVP, "exp")
    assert judged(Kind.HVP, "hvp", ("tanh", {"jvp": "jvp"}), ("exp", {})) == (Kind.HVP, "tanh")


def test_first_order_is_not_explained_by_a_node_wrong_only_in_another_mode():
    assert judged(Kind.GRADIENT, "vjp", ("sin", {"jvp": "jvp"})) == (Kind.COMPOSITION, None)
    assert judged(Kind.JVP, "jvp", ("sin", {"hvp": "hvp"})) == (Kind.COMPOSITION, None)
    assert judged(Kind.JVP, "jvp", ("sin", {"vjp": "gradient"})) == (Kind.COMPOSITION, None)


def test_a_crash_goes_to_the_node_that_crashes_in_its_mode_or_to_a_culprit_wrong_in_that_mode():
    assert judged(Kind.CRASH, "jvp", ("sin", {"vjp": "crash"}), ("exp", {"jvp": "crash"})) == (Kind.CRASH, "exp")
    assert judged(Kind.NAN_INF, "vjp", ("sin", {"vjp": "gradient"})) == (Kind.NAN_INF, "sin")
    # A crash in forward mode is not blamed on a node whose reverse-mode rule is wrong.
    assert judged(Kind.CRASH, "jvp", ("sin", {"vjp": "gradient"})) == (Kind.CRASH, None)
