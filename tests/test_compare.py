"""The comparison: the error model's tolerances, findings for NaN, crashes and shapes, and
blame by majority."""

import numpy as np
import pytest

from oracles.check import RTOL, Evaluation, NumericResult, compare
from oracles.crash import RAISED, Crash

SHAPES = {"x": (2,), "w": (2, 2)}
VALUE = np.array([1.0, -2.0])
GRADS = {"x": np.array([0.5, 0.25]), "w": np.array([[1.0, 2.0], [3.0, 4.0]])}


def ev(name, role="reference", value=VALUE, gradients=None, crash=None):
    return Evaluation(name, role, value=value, gradients=dict(GRADS if gradients is None else gradients), crash=crash)


def run(evaluations, numeric=None, dtype="float64"):
    return compare(dtype, (2,), SHAPES, 2.0, evaluations, numeric)


def kinds(verdict):
    return sorted((f.kind, f.backend, f.input) for f in verdict.findings)


def test_identical_results_pass_with_zero_margin():
    verdict = run([ev("engine", "engine"), ev("jax"), ev("torch")])
    assert verdict.passed
    assert len(verdict.checks) == 3 * 3  # value + 2 gradients, 3 pairs each
    assert max(c.margin for c in verdict.checks) == 0.0


def test_rounding_sized_differences_pass_and_show_their_margin():
    nudged = {"x": GRADS["x"] * (1 + 1e-14), "w": GRADS["w"]}
    verdict = run([ev("engine", "engine", gradients=nudged), ev("jax"), ev("torch")])
    assert verdict.passed
    worst = max(c.margin for c in verdict.checks)
    assert 0 < worst < 0.1


def test_engine_that_disagrees_with_agreeing_references_is_blamed():
    wrong = {"x": GRADS["x"] * 2, "w": GRADS["w"]}
    verdict = run([ev("engine", "engine", gradients=wrong), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("gradient", "engine", "x")]
    finding = verdict.findings[0]
    assert finding.expected == GRADS["x"].tolist() and finding.actual == (GRADS["x"] * 2).tolist()
    assert finding.margin > 1e6


def test_a_wrong_value_is_a_value_finding():
    verdict = run([ev("engine", "engine", value=VALUE + 1), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("value", "engine", None)]


def test_an_outvoted_reference_is_reported_as_references_disagree_not_pinned_on_the_engine():
    wrong = {"x": GRADS["x"], "w": -GRADS["w"]}
    verdict = run([ev("engine", "engine"), ev("jax"), ev("torch", gradients=wrong)])
    assert kinds(verdict) == [("references-disagree", "torch", "w")]


def test_references_that_split_evenly_name_no_one():
    wrong = {"x": GRADS["x"] + 1, "w": GRADS["w"]}
    verdict = run([ev("jax"), ev("torch", gradients=wrong), ev("engine", "engine", gradients=wrong)])
    # engine and torch agree, jax disagrees: 2 of 3 is a strict majority, so jax is outvoted.
    assert kinds(verdict) == [("references-disagree", "jax", "x")]
    verdict = run([ev("jax"), ev("torch", gradients=wrong)])
    assert kinds(verdict) == [("references-disagree", None, "x")]


def test_a_crash_is_a_finding_and_the_others_are_still_compared():
    verdict = run([ev("engine", "engine", crash=Crash(RAISED, "ZeroDivisionError", "boom")), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("crash", "engine", None)]
    assert verdict.checks  # jax against torch still ran


def test_a_gradient_of_the_wrong_shape_is_a_shape_finding():
    wrong = {"x": GRADS["x"], "w": GRADS["w"].ravel()}
    verdict = run([ev("engine", "engine", gradients=wrong), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("shape", "engine", "w")]
    assert "of shape [4], expected [2, 2]" in verdict.findings[0].detail


def test_a_missing_gradient_is_a_shape_finding():
    verdict = run([ev("engine", "engine", gradients={"x": GRADS["x"]}), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("shape", "engine", "w")]
    assert "missing" in verdict.findings[0].detail


def test_nan_in_one_backend_only_is_a_finding():
    verdict = run([ev("engine", "engine", value=np.array([np.nan, 1.0])), ev("jax"), ev("torch")])
    assert kinds(verdict) == [("nan-inf", "engine", None)]


def test_nan_in_every_backend_is_reported_without_blame():
    bad = np.array([np.inf, 1.0])
    verdict = run([ev("engine", "engine", value=bad), ev("jax", value=bad)])
    assert kinds(verdict) == [("nan-inf", None, None)]


def numeric_result(gradients, bound=1e-12, directions=None):
    rng = np.random.default_rng(0)
    directions = directions or {n: (d := rng.standard_normal(s)) / np.linalg.norm(d) for n, s in SHAPES.items()}
    estimates = {n: (float(np.sum(gradients[n] * directions[n])), bound) for n in SHAPES}
    return NumericResult(VALUE.copy(), directions, estimates)


def test_finite_differences_break_a_tie_between_engine_and_one_reference():
    wrong = {"x": GRADS["x"] * 3, "w": GRADS["w"]}
    verdict = run([ev("engine", "engine", gradients=wrong), ev("jax")], numeric=numeric_result(GRADS))
    assert kinds(verdict) == [("gradient", "engine", "x")]


def test_finite_differences_within_their_bound_pass():
    verdict = run([ev("engine", "engine")], numeric=numeric_result(GRADS, bound=1e-9))
    assert verdict.passed
    assert any("numeric" in c.backends for c in verdict.checks)


def test_finite_differences_alone_can_blame_the_engine():
    wrong = {"x": GRADS["x"], "w": GRADS["w"].T}
    verdict = run([ev("engine", "engine", gradients=wrong)], numeric=numeric_result(GRADS))
    assert kinds(verdict) == [("gradient", "engine", "w")]
    assert "directional_derivative" in verdict.findings[0].expected


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tolerance_scales_with_the_dtype(dtype):
    error = 10 * RTOL["float64"] * 4.0  # ten times the float64 tolerance at this magnitude
    nudged = {"x": GRADS["x"], "w": GRADS["w"] + error}
    verdict = run([ev("engine", "engine", gradients=nudged), ev("jax")], dtype=dtype)
    # The stand-in results are float64 arrays, a dtype finding of their own in a float32 case.
    numbers = [finding for finding in verdict.findings if finding.kind != "dtype"]
    assert (not numbers) == (dtype == "float32")
