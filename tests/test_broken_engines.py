"""An engine with one wrong rule in one of the wider op set's ops is caught by a default audit
within its first 200 graphs, shrunk to a case of at most 3 op nodes, and blamed on that op; an
engine that computes float32 graphs in float64 is a `dtype` finding; the correct reference
engine beside them raises no alarm in either dtype.

The engines are examples/broken_engines.py: a reverse-mode interpreter written apart from
`autodiff`, with one rule replaced per planted bug."""

from __future__ import annotations

import pytest

from examples.broken_engines import NEW_OP_BUGS
from oracles.backends import load_engine, load_reference
from oracles.check import Backends, check_case
from oracles.diagnose import engine_findings
from oracles.generate import GeneratorConfig, generate_case
from oracles.pipeline import Budget, run_case

AUDIT_GRAPHS = 500  # a planted bug must be caught by a default audit (seed 0)
PASSED_GRAPHS = 200  # the graphs of a default audit that the correct engines are shown to pass here


@pytest.fixture(scope="module")
def default_audit_cases():
    """The graphs of a default audit (seed 0), float64, and its first ones in float32."""
    return {
        "float64": [generate_case(0, index) for index in range(AUDIT_GRAPHS)],
        "float32": [generate_case(0, index, GeneratorConfig(dtype="float32")) for index in range(PASSED_GRAPHS)],
    }


@pytest.fixture(scope="module")
def references():
    return [load_reference("torch")], load_reference("numeric")


def first_failure(engine_spec: str, cases, references):
    """(index, case, backends) of the first case the engine fails, or None."""
    engine = load_engine(engine_spec)
    backends = Backends(engine, *references)
    for index, case in enumerate(cases):
        result = check_case(case, backends, index)
        if any(finding.backend == engine.name for finding in result.findings):
            return index, case, backends
    return None


@pytest.mark.parametrize("bug", NEW_OP_BUGS)
def test_a_wrong_rule_in_a_new_op_is_caught_shrunk_to_three_op_nodes_and_blamed_on_its_op(
    bug, default_audit_cases, references
):
    planted_op = NEW_OP_BUGS[bug].op
    failure = first_failure(f"examples.broken_engines:{bug}", default_audit_cases["float64"], references)
    assert failure is not None, f"{bug}: no failure in the first {AUDIT_GRAPHS} graphs of a default audit"
    index, case, backends = failure
    run = run_case(case, backends, index, shrink=Budget())
    finding = engine_findings(run.result, backends)[0]
    assert finding.op == planted_op
    investigation = run.minimal
    assert investigation is not None
    assert investigation.confirmed
    assert investigation.op == planted_op
    assert investigation.minimal_size[0] <= 3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_correct_reference_engine_passes_the_default_audit(dtype, default_audit_cases, references):
    cases = default_audit_cases[dtype][:PASSED_GRAPHS]
    assert first_failure("examples.broken_engines:correct", cases, references) is None


def test_an_engine_that_computes_float32_in_float64_is_a_dtype_finding_on_every_graph(default_audit_cases, references):
    backends = Backends(load_engine("examples.broken_engines:upcast"), *references)
    for case in default_audit_cases["float32"][:20]:
        # Its numbers are closer to the truth than float32's, so dtype is the only finding.
        assert {finding.kind for finding in engine_findings(check_case(case, backends), backends)} == {"dtype"}


def test_the_upcasting_engine_is_right_in_float64(default_audit_cases, references):
    cases = default_audit_cases["float64"][:PASSED_GRAPHS]
    assert first_failure("examples.broken_engines:upcast", cases, references) is None
