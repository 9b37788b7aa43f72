"""Graph-aware shrinking: the smallest valid case on which a failure persists.

`shrink(case, still_fails)` knows nothing about engines: these tests drive it with
hand-made predicates (so each behaviour is seen alone), then with real planted bugs
through `investigate`, which shrinks, confirms and triages a failing case.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from types import SimpleNamespace

import numpy as np
import pytest
from case_builders import case_around, make_case

from examples.broken_engines import SEED_BUGS as BUGS
from oracles.audit import AuditConfig, _Audit
from oracles.backends import load_engine, load_reference
from oracles.check import Backends, CaseResult, Finding
from oracles.diagnose import engine_findings, shrink
from oracles.diagnose.shrink import size
from oracles.format import Case, case_to_json, reference_values, validate_case
from oracles.generate import GeneratorConfig, generate_case
from oracles.kinds import Kind
from oracles.pipeline import Budget, run_case
from oracles.workers import Workers

ELEMENTWISE = GeneratorConfig(min_nodes=10, max_nodes=10, ops=("add", "mult", "power", "sigmoid", "reduce_sum"))


# --- helpers ---------------------------------------------------------------------------------


def ten_node_case(op: str) -> Case:
    """The first generated case of exactly 10 op nodes that contains `op`, with tensor inputs."""
    for index in range(200):
        case = generate_case(0, index, ELEMENTWISE)
        ops = [node["op"] for node in case.graph["nodes"]]
        if len(ops) == 10 and op in ops and any(np.size(v) > 1 for v in case.values.values()):
            return case
    raise AssertionError(f"no 10-node case with {op!r} among the first 200")


def ops_of(case: Case) -> list[str]:
    return [node["op"] for node in case.graph["nodes"]]


def has_power(case: Case) -> bool:
    return "power" in ops_of(case)


def has_a_value_above_half(case: Case) -> bool:
    return any(np.any(v > 0.5) for v in case.values.values())


def has_a_matrix_output(case: Case) -> bool:
    graph = case.graph
    return np.ndim(reference_values(graph, case.values)[graph["output"]]) == 2


def uses_a_value_twice(case: Case) -> bool:
    operands = [name for node in case.graph["nodes"] for name in node["inputs"]]
    return len(operands) != len(set(operands))


PREDICATES = {
    "contains a power node": has_power,
    "an input value is above 0.5": has_a_value_above_half,
    "the output is a matrix": has_a_matrix_output,
    "a value is used twice": uses_a_value_twice,
}


# --- structure -------------------------------------------------------------------------------


def test_a_failure_that_needs_a_power_node_shrinks_to_one_power_node():
    case = ten_node_case("power")
    result = shrink(case, has_power)
    assert ops_of(result.case) == ["power"]
    assert all(np.size(value) <= 1 for value in result.case.values.values())


def test_a_failure_that_needs_a_large_value_shrinks_to_one_input_holding_one():
    case = ten_node_case("power")
    result = shrink(case, has_a_value_above_half)
    assert has_a_value_above_half(result.case)
    assert result.case.graph["nodes"] == []
    assert [np.ndim(v) for v in result.case.values.values()] == [0]
    assert [float(v) for v in result.case.values.values()] == [1.0]


def cases_where(predicate, count: int = 3) -> list[Case]:
    """The first `count` generated cases (6 to 10 op nodes) on which `predicate` holds."""
    config = GeneratorConfig(min_nodes=6, max_nodes=10)
    found = [case for case in (generate_case(1, index, config) for index in range(100)) if predicate(case)]
    assert len(found) >= count, "too few generated cases to shrink"
    return found[:count]


@pytest.mark.parametrize("predicate", PREDICATES.values(), ids=PREDICATES.keys())
def test_the_shrunk_case_is_valid_and_still_fails(predicate):
    for case in cases_where(predicate):
        result = shrink(case, predicate)
        assert predicate(result.case)
        reloaded = validate_case(case_to_json(result.case))
        assert case_to_json(reloaded) == case_to_json(result.case)


def test_a_node_can_be_replaced_by_a_fresh_input_holding_its_value():
    # Only m's value matters (sigmoid of exactly 1.5 * 2.5); neither x nor w alone has it.
    case = make_case(
        {"x": [], "w": []},
        [("m", "mult", ["x", "w"], {}), ("s", "sigmoid", ["m"], {})],
        "s",
        {"x": 1.5, "w": 2.5},
    )

    def sigmoid_of_the_product(candidate: Case) -> bool:
        computed = reference_values(candidate.graph, candidate.values)
        return any(
            node["op"] == "sigmoid" and float(computed[node["inputs"][0]]) == 3.75 for node in candidate.graph["nodes"]
        )

    result = shrink(case, sigmoid_of_the_product)
    assert result.case.graph["inputs"] == [{"name": "m", "shape": []}]
    assert ops_of(result.case) == ["sigmoid"]
    assert float(result.case.values["m"]) == 3.75


def test_unused_inputs_are_dropped_along_with_a_shrunk_shape():
    case = make_case({"x": [2], "u": []}, [("s", "sigmoid", ["x"], {})], "s", {"x": [0.3, 1.0], "u": 0.7}, [1.0, 1.0])
    result = shrink(case, lambda candidate: "sigmoid" in ops_of(candidate))
    assert [entry["name"] for entry in result.case.graph["inputs"]] == ["x"]


def test_an_unused_input_is_dropped_even_when_nothing_else_shrinks():
    # sigmoid(x) with x = 1 is already minimal; the unused scalar u must still go.
    case = make_case({"x": [], "u": []}, [("s", "sigmoid", ["x"], {})], "s", {"x": 1.0, "u": 1.0})
    result = shrink(case, lambda candidate: "sigmoid" in ops_of(candidate))
    assert [entry["name"] for entry in result.case.graph["inputs"]] == ["x"]


# --- shapes and values -----------------------------------------------------------------------


def largest_input(case: Case) -> np.ndarray:
    return max(case.values.values(), key=np.size)


SHAPE_PREDICATES = {
    "anything": (lambda case: True, []),
    "an input of rank at least 1": (lambda case: np.ndim(largest_input(case)) >= 1, [1]),
    "an input of at least 2 elements": (lambda case: np.size(largest_input(case)) >= 2, [2]),
    "an input of at least 4 elements": (lambda case: np.size(largest_input(case)) >= 4, [2, 2]),
}


@pytest.mark.parametrize(("predicate", "expected"), SHAPE_PREDICATES.values(), ids=SHAPE_PREDICATES.keys())
def test_shapes_move_towards_scalars_and_sizes_one_and_two(predicate, expected):
    x = np.arange(9.0).reshape(3, 3) / 7
    case = make_case({"x": [3, 3]}, [("r", "reduce_sum", ["x"], {})], "r", {"x": x.tolist()})
    result = shrink(case, predicate)
    assert [entry["shape"] for entry in result.case.graph["inputs"]] == [expected]


def test_values_move_towards_small_integers():
    case = make_case({"x": []}, [("p", "power", ["x"], {"exponent": 2})], "p", {"x": 2.71})
    result = shrink(case, lambda candidate: float(candidate.values["x"]) > 1.2)
    assert float(result.case.values["x"]) == 2.0  # 1 fails the predicate; 2 is the next simplest


def test_values_move_towards_halves():
    case = make_case({"x": []}, [("p", "power", ["x"], {"exponent": 2})], "p", {"x": 0.61})
    result = shrink(case, lambda candidate: 0.2 < float(candidate.values["x"]) < 0.7)
    assert float(result.case.values["x"]) == 0.5


def test_the_cotangent_moves_towards_one():
    case = make_case({"x": []}, [("p", "power", ["x"], {"exponent": 2})], "p", {"x": 1.0}, 0.37)
    result = shrink(case, lambda candidate: "power" in ops_of(candidate))
    assert float(result.case.cotangent) == 1.0


# --- budget ----------------------------------------------------------------------------------


def test_shrinking_stops_after_max_steps():
    result = shrink(ten_node_case("power"), lambda candidate: True, max_steps=5)
    assert result.steps <= 5
    assert result.exhausted


def test_shrinking_stops_close_to_max_seconds():
    def slow_failure(candidate: Case) -> bool:
        time.sleep(0.05)
        return True

    # A ten-node case takes more than 4 accepted steps (of 0.05 s each) to shrink to one node.
    result = shrink(ten_node_case("power"), slow_failure, max_seconds=0.2)
    assert result.exhausted
    assert 0.2 <= result.seconds <= 0.2 + 0.05 + 0.2


def test_a_case_with_nothing_to_remove_comes_back_unchanged():
    case = make_case({"x": []}, [("s", "sigmoid", ["x"], {})], "s", {"x": 1.0})
    result = shrink(case, lambda candidate: "sigmoid" in ops_of(candidate))
    assert case_to_json(result.case) == case_to_json(case)
    assert result.accepted == 0
    assert not result.exhausted


def test_a_failure_that_no_candidate_keeps_leaves_the_case_unchanged():
    case = ten_node_case("power")
    result = shrink(case, lambda candidate: False)
    assert case_to_json(result.case) == case_to_json(case)
    assert result.accepted == 0
    assert not result.exhausted


# --- planted bugs, through investigate -------------------------------------------------------


@pytest.fixture(scope="module")
def torch_reference():
    pytest.importorskip("torch", reason="the planted-bug investigations use PyTorch as the reference")
    return load_reference("torch")


def investigate_planted_bug(bug: str, case: Case, torch_reference):
    engine = load_engine(f"examples.broken_engines:{bug}")
    backends = Backends(engine, [torch_reference], load_reference("numeric"))
    run = run_case(case, backends, 0, shrink=Budget())
    assert engine_findings(run.result, backends), f"{bug}: the case does not fail"
    assert run.minimal is not None
    return run.minimal


def fan_out_case() -> Case:
    """s = sigmoid(x) feeds both mult(s, w) and add(_, s): its gradient arrives along two paths."""
    nodes = [
        ("s", "sigmoid", ["x"], {}),
        ("a", "mult", ["s", "w"], {}),
        ("b", "add", ["a", "s"], {}),
        ("r", "reduce_sum", ["b"], {"axis": None, "keepdims": False}),
    ]
    return make_case({"x": [3], "w": [3]}, nodes, "r", {"x": [0.4, -1.3, 2.1], "w": [1.7, 0.6, -0.9]})


def assert_small_and_confirmed(investigation) -> None:
    minimal = validate_case(investigation.minimal)
    assert len(minimal.graph["nodes"]) <= 3
    assert all(np.size(value) <= 4 for value in minimal.values.values())
    assert investigation.confirmed


@pytest.mark.parametrize("bug", BUGS)
def test_a_planted_wrong_rule_shrinks_to_a_small_confirmed_case_that_names_its_op(bug, torch_reference):
    op = BUGS[bug][0]
    investigation = investigate_planted_bug(bug, case_around(op, avoid=(op,)), torch_reference)
    assert_small_and_confirmed(investigation)
    assert investigation.op == BUGS[bug][0]
    assert investigation.kind in ("gradient", "value")


def test_overwritten_fan_out_shrinks_to_a_small_confirmed_composition_case(torch_reference):
    investigation = investigate_planted_bug("fan_out_overwritten", fan_out_case(), torch_reference)
    assert_small_and_confirmed(investigation)
    assert investigation.kind == "composition"
    assert investigation.op is None


def test_a_rule_that_is_right_at_one_still_shrinks_to_a_small_integer():
    # The notebook's power gradient 2 (for 2 x) is right at x = 1: the minimal case needs x = 2.
    case = make_case({"x": []}, [("p", "power", ["x"], {"exponent": 2})], "p", {"x": 1.37})
    result = shrink(case, lambda candidate: float(candidate.values["x"]) != 1.0)
    assert float(result.case.values["x"]) == 2.0


def test_value_simplification_never_cycles():
    case = make_case({"x": []}, [("p", "power", ["x"], {"exponent": 2})], "p", {"x": 1.37})
    result = shrink(case, lambda candidate: True, max_steps=1000)
    assert not result.exhausted and result.steps < 50


# --- data in attrs ---------------------------------------------------------------------------


def test_a_join_drops_the_operands_a_failure_does_not_need():
    # Fails while x (the only input holding a 5) is among the operands: the others go.
    nodes = [("j", "concatenate", ["x", "y", "z", "y"], {"axis": 0})]
    case = make_case({"x": [1], "y": [2], "z": [1]}, nodes, "j", {"x": [5.0], "y": [1.0, 2.0], "z": [3.0]})

    def joins_x(candidate):
        return any(node["op"] == "concatenate" and "x" in node["inputs"] for node in candidate.graph["nodes"])

    (join,) = shrink(case, joins_x).case.graph["nodes"]
    assert len(join["inputs"]) == 2 and "x" in join["inputs"]


def test_a_take_keeps_only_the_repeat_a_failure_needs():
    def has_a_repeat(candidate):
        indices = [n["attrs"]["indices"] for n in candidate.graph["nodes"] if n["op"] == "take"]
        return any(len(set(i)) < len(i) for i in indices)

    nodes = [("t", "take", ["x"], {"indices": [0, 2, 1, 2, -3], "axis": 0})]
    result = shrink(make_case({"x": [3]}, nodes, "t", {"x": [1.0, 2.0, 3.0]}), has_a_repeat)
    (take,) = result.case.graph["nodes"]
    assert len(take["attrs"]["indices"]) == 2 and has_a_repeat(result.case)


def test_a_where_mask_shrinks_to_a_single_boolean():
    nodes = [("w", "where", ["x", "y"], {"mask": [[True, False, True], [False, False, True]]})]
    case = make_case({"x": [2, 3], "y": [2, 3]}, nodes, "w", {"x": [[1.0] * 3] * 2, "y": [[2.0] * 3] * 2})
    result = shrink(case, lambda candidate: any(n["op"] == "where" for n in candidate.graph["nodes"]))
    assert [node["attrs"]["mask"] for node in result.case.graph["nodes"]] == [True]


# Each bug's op between correct nodes, on a case that shows the bug (a negative axis for the joins).
THIRD_WAVE_CASES = {
    "take_overwrites_repeats": ("take", {"x": [4]}, ["x"], {"indices": [1, -3, 2], "axis": 0}),
    "where_to_both_sides": ("where", {"x": [2, 3], "y": [3]}, ["x", "y"], {"mask": [[True], [False]]}),
    "concatenate_split_as_axis_0": ("concatenate", {"x": [3, 1], "y": [3, 2], "z": [3, 1]}, ["x", "y", "z"],
                                    {"axis": -1}),
    "stack_negative_axis_off_by_one": ("stack", {"x": [2, 3], "y": [2, 3]}, ["x", "y"], {"axis": -2}),
}  # fmt: skip


@pytest.mark.parametrize("bug", THIRD_WAVE_CASES)
def test_a_planted_bug_of_the_third_wave_shrinks_to_one_node_blamed_on_its_op(bug, torch_reference):
    op, shapes, operands, attrs = THIRD_WAVE_CASES[bug]
    rng = np.random.default_rng(7)
    values = {name: rng.normal(size=shape) for name, shape in shapes.items()}
    nodes = [(f"{name}_in", "sin", [name], {}) for name in shapes] + [
        ("y_op", op, [f"{name}_in" for name in operands], attrs),
        ("out", "tanh", ["y_op"], {}),
    ]
    case = make_case(shapes, nodes, "out", {name: value.tolist() for name, value in values.items()})
    case = validate_case({**case_to_json(case), "cotangent": rng.normal(size=np.shape(case.cotangent)).tolist()})
    investigation = investigate_planted_bug(bug, case, torch_reference)
    minimal = validate_case(investigation.minimal)
    assert [node["op"] for node in minimal.graph["nodes"]] == [op]
    assert investigation.op == op and investigation.confirmed


class _PoolThatDiesWhileShrinking(Workers):
    """A process pool whose worker died under the first shrink; the second cannot even be submitted."""

    name, lost, description = "pool", (BrokenProcessPool,), "a pool that dies"

    def __init__(self):
        self.submitted = 0

    def submit(self, function, *arguments) -> Future:
        self.submitted += 1
        if self.submitted > 1:
            raise BrokenProcessPool("the pool is broken")
        future: Future = Future()
        future.set_exception(BrokenProcessPool("a process in the pool was terminated abruptly"))
        return future


def test_a_shrink_whose_worker_died_is_reported_as_lost_not_as_never_tried():
    engine = SimpleNamespace(name="engine", ops=frozenset(ELEMENTWISE.ops))
    config = AuditConfig(graphs=2, generator=ELEMENTWISE)
    audit = _Audit(config, engine, None, threading.Event())
    failing = [
        CaseResult(index, {}, ["sin"], 1, 0.0, [Finding(Kind.GRADIENT, "engine", "a", None, "wrong", op=op)], {})
        for index, op in enumerate(["sigmoid", "power"])
    ]
    audit.done = {0: failing}

    investigations = audit.shrink(_PoolThatDiesWhileShrinking())

    assert [(i.index, i.op, i.minimal) for i in investigations] == [(0, "sigmoid", None), (1, "power", None)]
    assert all(i.error.startswith("the worker shrinking it was lost (BrokenProcessPool: ") for i in investigations)
    assert investigations[0].original_size == size(generate_case(config.seed, 0, ELEMENTWISE))
