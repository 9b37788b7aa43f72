"""Kink mode: operands exactly on kinks and ties, each backend's answer there judged by the op
table's rule (relu'(0) in [0, 1], abs'(0) in [-1, 1], a tie's parts convex shares that add up
to the cotangent). An answer that matches a reference's passes, a valid one that matches none
is a `convention` finding, an invalid one a `gradient` finding; the references' own
differences there are shown and blame nobody. A default audit never comes near a kink, but
the same operand twice (maximum(x, x)) is no kink and is in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from case_builders import make_case

from oracles.backends import load_engine, load_reference
from oracles.check import Backends, check_case
from oracles.format import reference_values
from oracles.generate import GeneratorConfig, generate_case
from oracles.ops import OPS
from oracles.ops.kinks import case_kinks, judge
from oracles.pipeline import Budget, run_case

REPO = Path(__file__).resolve().parent.parent
BOTH_REFERENCES = ("jax", "torch")


@pytest.fixture(scope="module")
def references():
    return [load_reference(name) for name in BOTH_REFERENCES]


def diagnosed(engine: str, case, references):
    backends = Backends(load_engine(f"examples.broken_engines:{engine}"), references, load_reference("numeric"))
    return run_case(case, backends).result, backends.engine.name


def unary_at_zero(op: str):
    """op(x) with x = [0, 1.5, -0.7]: one element on the kink, two away from it, a random-looking cotangent."""
    return make_case({"x": [3]}, [("y", op, ["x"], {})], "y", {"x": [0.0, 1.5, -0.7]}, cotangent=[0.8, -1.1, 0.6])


def maximum_tie():
    """maximum(a, b) with a tie in the first element only."""
    nodes = [("m", "maximum", ["a", "b"], {})]
    return make_case({"a": [2], "b": [2]}, nodes, "m", {"a": [0.4, 1.0], "b": [0.4, -2.0]}, cotangent=[1.3, -0.5])


# ---- what the references answer ---------------------------------------------------------------


def test_abs_at_zero_shows_the_references_disagreeing_and_blames_nobody(references):
    result, _ = diagnosed("correct", unary_at_zero("abs"), references)

    (record,) = result.kinks
    assert record["kink"] == "abs'(0)"
    assert record["answers"]["jax"] == "1" and record["answers"]["torch"] == "0"
    assert [f.kind for f in result.findings] == ["reference-conventions"]
    assert result.findings[0].backend is None and result.findings[0].op == "abs"
    assert "jax 1" in result.findings[0].detail and "torch 0" in result.findings[0].detail


def test_relu_at_zero_is_the_references_shared_convention_and_an_engine_that_follows_it_passes(references):
    result, engine = diagnosed("correct", unary_at_zero("relu"), references)

    (record,) = result.kinks
    assert record["answers"] == {engine: "0", "jax": "0", "torch": "0"}
    assert record["engine_follows"] == ["jax", "torch"]
    assert result.findings == []


def test_an_engine_whose_relu_derivative_at_zero_is_one_has_a_convention_finding(references):
    result, engine = diagnosed("relu_derivative_one_at_zero", unary_at_zero("relu"), references)

    assert [(f.kind, f.backend, f.op) for f in result.findings] == [("convention", engine, "relu")]
    assert "relu'(0)" in result.findings[0].detail and "gives 1" in result.findings[0].detail


def test_a_valid_answer_between_the_references_is_a_convention_where_they_disagree(references):
    result, engine = diagnosed("abs_derivative_half_at_zero", unary_at_zero("abs"), references)

    kinds = sorted((f.kind, f.backend) for f in result.findings)
    assert kinds == [("convention", engine), ("reference-conventions", None)]


def test_a_maximum_that_gives_neither_side_of_a_tie_any_part_has_a_gradient_finding(references):
    result, engine = diagnosed("maximum_strict_both_sides", maximum_tie(), references)

    (record,) = result.kinks
    assert record["answers"][engine] == "0 / 0" and record["answers"]["torch"] == "0.5 / 0.5"
    assert {(f.kind, f.op) for f in result.findings if f.backend == engine} == {("gradient", "maximum")}


def test_the_same_operand_twice_is_no_kink_and_a_default_audit_catches_a_maximum_x_x_with_gradient_zero():
    # A plain audit of the default generator: maximum(x, x) is in it, and its gradient is the cotangent.
    backends = Backends(load_engine("examples.broken_engines:maximum_strict_both_sides"), [load_reference("torch")])
    for index in range(200):
        case = generate_case(0, index, GeneratorConfig())
        result = check_case(case, backends, index)
        mine = [f for f in result.findings if f.backend == backends.engine.name]
        if mine:
            break
    else:
        pytest.fail("no failure in the first 200 default graphs")
    assert result.kink_nodes == []  # nothing sits on a kink in a default audit
    investigation = run_case(case, backends, index, shrink=Budget()).minimal
    assert investigation is not None
    assert (investigation.kind, investigation.op) == ("gradient", "maximum")
    (node,) = [n for n in investigation.minimal["graph"]["nodes"] if n["op"] == "maximum"]
    assert node["inputs"][0] == node["inputs"][1], "the minimal case is maximum(x, x)"


# ---- the rule of each kink -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shares", "valid"),
    [((0.5, 0.5), True), ((1.0, 0.0), True), ((0.3, 0.7), True), ((0.0, 0.0), False), ((1.0, 1.0), False),
     ((1.5, -0.5), False)],
)  # fmt: skip
def test_a_tie_is_valid_when_its_parts_are_convex_shares_that_add_up_to_the_cotangent(shares, valid):
    kink = OPS["maximum"].kinks[0]
    g = np.array([2.0])
    answer = judge(kink, [np.array([1.0]), np.array([1.0])], {}, g, [shares[0] * g, shares[1] * g], 1e-9)
    assert answer.valid is valid


@pytest.mark.parametrize(
    ("op", "derivative", "valid"),
    [("relu", 0.0, True), ("relu", 1.0, True), ("relu", -0.5, False), ("abs", -1.0, True), ("abs", 1.0, True),
     ("abs", 1.5, False)],
)  # fmt: skip
def test_a_point_kink_is_valid_when_the_local_derivative_lies_in_the_entrys_interval(op, derivative, valid):
    kink = OPS[op].kinks[0]
    g = np.array([-3.0])
    assert judge(kink, [np.array([0.0])], {}, g, [derivative * g], 1e-9).valid is valid


@pytest.mark.parametrize(
    ("vjp", "valid", "summary"),
    [([0.5, 0.5, 0.0], True, "split evenly"), ([1.0, 0.0, 0.0], True, "one takes all"),
     ([0.5, 0.5, 0.5], False, None), ([0.0, 0.0, 0.0], False, None)],
)  # fmt: skip
def test_a_reduce_max_tie_shares_the_cotangent_among_the_tied_maxima_only(vjp, valid, summary):
    kink = OPS["reduce_max"].kinks[0]
    answer = judge(
        kink, [np.array([2.0, 2.0, -1.0])], {"axis": None, "keepdims": False}, np.array(1.0), [np.array(vjp)], 1e-9
    )
    assert answer.valid is valid
    if summary:
        assert answer.summary == summary


# x = [1, 3, 3, 0] in windows of 2, stride 1: [1, 3] and [3, 0] each have one maximum (the
# 3 beside them), [3, 3] a tie. Cotangents 0.5, 2 and -1: 0.5 and -1 are owed to the 3s at
# positions 1 and 2, and the tied window's 2 is theirs to share.
@pytest.mark.parametrize(
    ("vjp", "valid"),
    [([0, 2.5, -1, 0], True), ([0, 0.5, 1, 0], True), ([0, 1.5, 0, 0], True),  # first, last, evenly
     ([0.1, 2.5, -1, 0], False),  # a part off the maxima
     ([0, 2.5, 0, 0], False),  # the second window's -1 missing: the tied window's parts add up to 1.5
     ([0, 3.5, -2, 0], False)],  # parts 1.5 and -0.5 of 2: not a convex share
)  # fmt: skip
def test_a_max_pool1d_tie_shares_its_windows_cotangent_among_the_tied_maxima(vjp, valid):
    kink = OPS["max_pool1d"].kinks[0]
    x, g = np.array([[[1.0, 3.0, 3.0, 0.0]]]), np.array([[[0.5, 2.0, -1.0]]])
    assert judge(kink, [x], {"kernel": 2, "stride": 1}, g, [np.array([[vjp]])], 1e-9).valid is valid


def test_overlapping_tied_windows_are_judged_by_what_they_owe_together():
    # [3, 3, 3] in windows of 2, stride 1: both windows tie, and share the middle element.
    kink, x, g = OPS["max_pool1d"].kinks[0], np.array([[[3.0, 3.0, 3.0]]]), np.array([[[1.0, 1.0]]])
    for vjp, valid in (([1, 1, 0], True), ([0, 1, 1], True), ([0.5, 1, 0.5], True), ([1, 0, 0], False)):
        assert judge(kink, [x], {"kernel": 2, "stride": 1}, g, [np.array([[vjp]])], 1e-9).valid is valid


@pytest.mark.parametrize(
    ("vjp", "summary", "valid"),
    [([[0.5, 0.5, 0], [0, 0.5, 0.5]], "split evenly", True), ([[1, 0, 0], [0, 1, 0]], "one takes all", True),
     ([[0.5, 0.5, 0], [0, 1, 0]], "shares 0..1", True), ([[1, 1, 0], [0, 1, 0]], "one takes all", False)],
)  # fmt: skip
def test_separate_tied_windows_are_each_judged_with_their_own_share(vjp, summary, valid):
    # Channel 0 ties in its first window [1, 1], channel 1 in its second [2, 2]: two ties apart.
    kink, x, g = (
        OPS["max_pool1d"].kinks[0],
        np.array([[[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]]),
        np.array([[[1.0, 0.0], [0.0, 1.0]]]),
    )
    answer = judge(kink, [x], {"kernel": 2, "stride": 1}, g, [np.array([vjp])], 1e-9)
    assert (answer.summary, answer.valid) == (summary, valid)


# ---- the generator in kink mode ----------------------------------------------------------------


def kinks_of(case):
    values = reference_values(case.graph, {name: value.astype(np.float64) for name, value in case.values.items()})
    return {kink.label for _, kink in case_kinks(case.graph, values)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kink_mode_puts_values_exactly_on_every_kind_of_kink(dtype):
    # A max_pool1d needs a result of rank 3: the rarest kink, in about 1 graph in 100.
    seen = set().union(*(kinks_of(generate_case(0, i, GeneratorConfig(kinks=True, dtype=dtype))) for i in range(300)))
    assert seen == {kink.label for op in OPS.values() for kink in op.kinks}


def test_a_default_audit_never_puts_a_value_on_a_kink():
    assert not any(kinks_of(generate_case(0, i, GeneratorConfig())) for i in range(300))


# ---- as a user runs it ---------------------------------------------------------------------------


def test_a_kink_mode_audit_lists_conventions_apart_from_bugs(tmp_path):
    report = tmp_path / "report"
    command = [
        str(Path(sys.executable).parent / "autodiff-audit"), "audit", "--kinks", "--graphs", "60", "--workers", "1",
        "--engine", "examples.broken_engines:relu_derivative_one_at_zero", "--oracles", "jax,torch",
        "--ops", "relu,abs,add,mult,maximum", "--report", str(report),
    ]  # fmt: skip
    # From an empty folder, the plug-in importable as a user's own package would be.
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)

    assert done.returncode == 1, done.stderr
    assert "of them conventions" in done.stdout
    summary = json.loads((report / "report.json").read_text())["summary"]
    rows = {row["kink"]: row for row in summary["conventions"]["kinks"]}
    assert rows["relu'(0)"]["engine"] == {"1": rows["relu'(0)"]["nodes"]}
    assert rows["relu'(0)"]["engine_follows"] == {"no reference": rows["relu'(0)"]["nodes"]}
    assert {g["kind"] for g in summary["groups"]} == {"convention"}
    markdown = (report / "report.md").read_text()
    assert "## Conventions at kinks" in markdown and "## What to fix" not in markdown
