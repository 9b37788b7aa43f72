"""The pytest plugin (`pytest --audit-engine SPEC`): one test per generated case.

Every run happens inside pytester, in a fresh folder with no test files unless the test
writes one, and in-process for speed (one runs as a process, for its exit status). The
runs use `--audit-oracles numeric` (or `torch,numeric` where a second reference is the
point), so JAX is never imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import textwrap
from pathlib import Path

import pytest

from examples.broken_engines import FORWARD
from oracles.backends import numeric_backend
from oracles.generate import GeneratorConfig, generate_case
from oracles.ops import OPS

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
ELEMENTWISE = "examples.elementwise_engine"
POWER_WITHOUT_X = "examples.broken_engines:power_without_x"
CORRECT = "examples.broken_engines:correct"  # the same interpreter without a planted bug; every op


def plugin_option() -> list[str]:
    """How to load the plugin: by its entry point's name once the project is installed with it
    (`-p oracles.pytest_plugin` would then register the module twice, which pluggy refuses),
    by its module before."""
    for entry_point in importlib.metadata.entry_points(group="pytest11"):
        if entry_point.value == "oracles.pytest_plugin":
            return ["-p", entry_point.name]
    return ["-p", "oracles.pytest_plugin"]


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """pytest with the plugin, in an empty folder from which the repository's examples import."""
    pytester.syspathinsert(REPO)
    pytester.syspathinsert()  # plug-ins written into the folder by a test
    monkeypatch.setenv("PYTHONPATH", str(REPO), prepend=os.pathsep)

    def run_pytest(*args: str) -> pytest.RunResult:
        return pytester.runpytest(*plugin_option(), *args)

    return run_pytest


def audit_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("autodiff-audit::")]


def test_a_correct_engine_passes_one_test_per_case_from_an_empty_folder(run):
    result = run("--audit-engine", ELEMENTWISE, "--audit-graphs", "10", "--audit-oracles", "numeric")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(
        [f"autodiff-audit: 10 cases of {ELEMENTWISE} against numeric: 10 passed, 0 failed, 0 skipped"]
    )


def test_each_case_has_a_stable_id_of_engine_index_and_seed(run):
    options = ("--audit-engine", ELEMENTWISE, "--audit-graphs", "10", "--audit-oracles", "numeric")

    first, again = run(*options, "--collect-only", "-q"), run(*options, "--collect-only", "-q")

    assert audit_ids(first) == [f"autodiff-audit::{ELEMENTWISE}::g{i:05d}-s0" for i in range(10)]
    assert audit_ids(again) == audit_ids(first)


def test_a_case_id_given_as_an_argument_runs_exactly_that_case(run):
    case = f"autodiff-audit::{ELEMENTWISE}::g00003-s0"

    result = run("--audit-engine", ELEMENTWISE, "--audit-graphs", "10", "--audit-oracles", "numeric", "-v", case)

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{case} PASSED*"])


def test_a_case_id_names_its_case_whatever_audit_graphs_and_seed_say(run):
    case = f"autodiff-audit::{ELEMENTWISE}::g00042-s7"

    result = run("--audit-engine", ELEMENTWISE, "--audit-graphs", "5", "--audit-oracles", "numeric", "-v", case)

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"{case} PASSED*"])


def test_a_k_expression_with_the_case_number_selects_exactly_that_case(run):
    result = run(
        "--audit-engine", ELEMENTWISE, "--audit-graphs", "10", "--audit-oracles", "numeric", "-v", "-k", "g00003"
    )

    result.assert_outcomes(passed=1, deselected=9)
    result.stdout.fnmatch_lines([f"autodiff-audit::{ELEMENTWISE}::g00003-s0 PASSED*"])


def test_a_k_expression_with_an_op_name_selects_the_cases_whose_graph_uses_it(run):
    result = run(
        "--audit-engine", CORRECT, "--audit-graphs", "60", "--audit-oracles", "numeric", "--co", "-q", "-k", "power"
    )

    selected = {int(re.search(r"::g(\d+)-s0$", node_id)[1]) for node_id in audit_ids(result)}
    # The plugin restricts random graphs to the ops the engine declares, in the table's order.
    config = GeneratorConfig(ops=tuple(op for op in OPS if op in FORWARD))
    uses_power = {i for i in range(60) if any(n["op"] == "power" for n in generate_case(0, i, config).graph["nodes"])}
    assert selected == uses_power and 0 < len(selected) < 60


def test_a_wrong_gradient_rule_fails_with_the_minimal_case_node_by_node_and_the_replay_command(run):
    # One op in 52: 60 graphs hold a power (a graph has about 4 nodes) but for a chance of 1 in 200.
    result = run("--audit-engine", POWER_WITHOUT_X, "--audit-graphs", "60", "--audit-oracles", "numeric")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    assert "gradient in op 'power'" in output
    assert re.search(r"^\w+ = power\(\w+; exponent=\d\)   <-- gradient rule wrong here$", output, re.MULTILINE)
    result.stdout.fnmatch_lines(
        [
            '{"graph":{"format":"autodiff-graph",*',
            f"autodiff-audit replay *.json --engine {POWER_WITHOUT_X} --oracles numeric",
        ]
    )
    assert "Traceback" not in output and "def runtest" not in output
    result.stdout.fnmatch_lines(
        [f"autodiff-audit: 60 cases of {POWER_WITHOUT_X} against numeric: * passed, * failed, 0 skipped"]
    )


def test_the_replay_command_of_a_failure_names_a_saved_minimal_case(run, pytester):
    result = run("--audit-engine", POWER_WITHOUT_X, "--audit-oracles", "numeric", "--audit-graphs", "60", "-x")

    replay = next(line for line in result.outlines if line.startswith("autodiff-audit replay "))
    case_file = pytester.path / replay.split()[2]
    assert '"op":"power"' in case_file.read_text()


def test_a_bad_engine_spec_is_a_usage_error_of_one_line_naming_it(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO), prepend=os.pathsep)  # a real process, for its real exit status

    result = pytester.runpytest_subprocess(
        *plugin_option(), "--audit-engine", "no_such_package.engine", "--audit-oracles", "numeric"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.strip()]
    assert len(errors) == 1
    assert "no_such_package.engine" in errors[0] and "cannot import" in errors[0]


def test_an_attribute_the_module_lacks_is_a_usage_error(run):
    result = run("--audit-engine", "examples.broken_engines:no_such_engine", "--audit-oracles", "numeric")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'examples.broken_engines:no_such_engine'*has no attribute 'no_such_engine'*"])


def test_without_audit_engine_the_plugin_adds_nothing(run, pytester):
    pytester.makepyfile(test_ordinary="def test_one():\n    assert True\n")

    result = run("-v")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_ordinary.py::test_one PASSED*"])
    assert "autodiff-audit" not in result.stdout.str()


def test_the_argument_autodiff_audit_runs_the_audit_without_the_folders_own_tests(run, pytester):
    pytester.makepyfile(test_ordinary="def test_one():\n    assert True\n")
    options = ("--audit-engine", ELEMENTWISE, "--audit-graphs", "3", "--audit-oracles", "numeric")

    alongside, alone = run(*options), run(*options, "autodiff-audit")

    alongside.assert_outcomes(passed=4)
    alone.assert_outcomes(passed=3)


def test_the_markers_are_registered(run):
    result = run("--markers")

    result.stdout.fnmatch_lines(["@pytest.mark.jax:*", "@pytest.mark.torch:*", "@pytest.mark.slow:*"])


def test_a_test_marked_slow_runs_under_strict_markers(run, pytester):
    pytester.makepyfile(test_marked="import pytest\n\n@pytest.mark.slow\ndef test_long():\n    assert True\n")

    result = run("--strict-markers")

    result.assert_outcomes(passed=1)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_cases_checked_against_torch_carry_the_torch_marker(run):
    options = ("--audit-engine", ELEMENTWISE, "--audit-graphs", "4", "--audit-oracles", "torch,numeric")

    marked, unmarked = (
        run(*options, "--collect-only", "-q", "-m", "torch"),
        run(*options, "--collect-only", "-q", "-m", "jax"),
    )

    assert len(audit_ids(marked)) == 4
    assert audit_ids(unmarked) == []


def test_a_plugin_that_declines_every_graph_has_every_case_skipped_with_its_reason(run, pytester):
    pytester.makepyfile(
        declining_engine=textwrap.dedent(
            """
            from examples.elementwise_engine import evaluate, ops

            name = "declining"


            def accepts(graph):
                return "takes no graphs today"
            """
        )
    )

    result = run("--audit-engine", "declining_engine", "--audit-graphs", "5", "--audit-oracles", "numeric", "-rs")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=5)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]5] autodiff-audit::declining_engine: declining declines the graph: takes no graphs today"]
    )


@pytest.fixture
def torch_imported():
    """PyTorch imported in this process before pytester takes its snapshot of the modules: an
    in-process run that imported it itself would have it dropped when it ends, and PyTorch
    imported a second time in one process crashes it (a later test's segmentation fault)."""
    return pytest.importorskip("torch")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_references_that_disagree_skip_the_case_instead_of_failing_the_engine(torch_imported, run, monkeypatch):
    def doubled(*args):  # finite differences made wrong: the engine and PyTorch outvote them
        return {name: (2 * estimate + 1, bound) for name, (estimate, bound) in original(*args).items()}

    original = numeric_backend.directional_derivatives
    monkeypatch.setattr(numeric_backend, "directional_derivatives", doubled)

    result = run("--audit-engine", ELEMENTWISE, "--audit-graphs", "3", "--audit-oracles", "torch,numeric", "-rs")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=3)
    reason = "references disagree, not the engine's fault: *numeric*"
    result.stdout.fnmatch_lines([f"SKIPPED [[]1] autodiff-audit::{ELEMENTWISE}::g0000?-s0: {reason}"] * 3)


def test_a_kink_mode_failure_re_runs_with_the_options_that_made_its_case(pytester, monkeypatch):
    # In a subprocess: kink mode needs an AD reference, and PyTorch imports once per process.
    monkeypatch.setenv("PYTHONPATH", str(REPO), prepend=os.pathsep)
    spec = "examples.broken_engines:maximum_strict_both_sides"
    options = ["--audit-engine", spec, "--audit-oracles", "torch", "--audit-kinks", "--audit-graphs", "100", "-x"]
    result = pytester.runpytest_subprocess(*plugin_option(), *options)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    rerun = result.outlines[result.outlines.index("re-run:") + 1]
    assert "--audit-kinks" in rerun and "--audit-max-rank" not in rerun
    again = pytester.runpytest_subprocess(*plugin_option(), *shlex.split(rerun)[1:])
    again.assert_outcomes(failed=1)


def test_a_scalar_only_engine_runs_with_max_rank_0(run, pytester):
    pytester.makepyfile(
        scalars_only="""
        from examples.broken_engines import correct

        ops = correct.ops


        def evaluate(graph, values, cotangent):
            shapes = [entry["shape"] for entry in graph["inputs"]]
            if any(shapes):
                raise ValueError(f"this engine has scalars only, got shapes {shapes}")
            return correct.evaluate(graph, values, cotangent)
        """
    )
    result = run(
        "--audit-engine", "scalars_only", "--audit-oracles", "numeric", "--audit-max-rank", "0", "--audit-graphs", "30"
    )

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=30)
