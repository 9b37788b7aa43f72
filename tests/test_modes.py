"""Forward mode and second order in the check core: what an engine's `jvp` and `hvp` are judged
against (the references, finite differences, and the engine's own other modes), and what the
audit says about the modes it checked."""

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from case_builders import make_case

from oracles.backends import load_reference
from oracles.backends.plugin import from_plugin
from oracles.check import Backends, check_case
from oracles.kinds import Kind

torch_backend = pytest.importorskip("oracles.backends.torch_backend")

ALL_MODES = frozenset({"vjp", "jvp", "hvp"})


def smooth_case():
    """tanh(x * w) summed with weights: a graph whose Hessian is not zero."""
    return make_case(
        {"x": [3], "w": [3]},
        [("p", "mult", ["x", "w"], {}), ("t", "tanh", ["p"], {}), ("s", "sin", ["t"], {})],
        "s",
        {"x": [0.3, -0.7, 1.1], "w": [0.9, 0.4, -1.3]},
        [1.0, -0.5, 2.0],
    )


def engine(**overrides):
    """PyTorch's own answers as an engine under test, with some of them replaced."""
    functions = {"evaluate": torch_backend.evaluate, "jvp": torch_backend.jvp, "hvp": torch_backend.hvp, **overrides}
    plugin = SimpleNamespace(name="engine", **{k: v for k, v in functions.items() if v is not None})
    return from_plugin(plugin, "engine", role="engine")


def with_references(engine_backend, *names, modes=ALL_MODES):
    references = [load_reference(name) for name in names if name != "numeric"]
    numeric = load_reference("numeric") if "numeric" in names else None
    return Backends(engine_backend, references, numeric, modes=frozenset(modes))


def kinds_of(result):
    return {(f.kind, f.quantity) for f in result.findings}


def scaled_jvp(factor):
    def jvp(graph, values, tangents):
        value, tangent = torch_backend.jvp(graph, values, tangents)
        return value, tangent * factor

    return jvp


def test_a_right_engine_passes_every_mode_and_each_mode_counts_its_checks():
    result = check_case(smooth_case(), with_references(engine(), "jax", "torch", "numeric"))
    assert result.findings == []
    assert set(result.mode_checks) == {"vjp", "jvp", "hvp"}
    assert all(count > 0 for count in result.mode_checks.values())
    assert all(margin < 1 for margin in result.mode_margins.values())


def test_a_wrong_jvp_is_blamed_by_the_references_as_a_jvp_finding():
    result = check_case(smooth_case(), with_references(engine(jvp=scaled_jvp(1.01)), "torch", "numeric"))
    assert (Kind.JVP, "jvp") in kinds_of(result)
    # One finding says it: the transpose identity, broken too, is not reported a second time.
    assert Kind.MODE_MISMATCH not in {f.kind for f in result.findings}


def test_without_any_reference_the_transpose_identity_still_catches_a_jvp_that_disagrees_with_the_vjp():
    result = check_case(smooth_case(), with_references(engine(jvp=scaled_jvp(1.01))))
    assert kinds_of(result) == {(Kind.MODE_MISMATCH, "transpose identity")}


def test_an_hvp_that_is_not_symmetric_is_a_mode_mismatch_within_the_engine():
    def lopsided_hvp(graph, values, cotangent, tangents):
        products = torch_backend.hvp(graph, values, cotangent, tangents)
        # H t plus a skew term: the same H t1 for one tangent, not a symmetric operator.
        return {**products, "x": products["x"] + 0.1 * np.roll(tangents["x"], 1)}

    result = check_case(smooth_case(), with_references(engine(hvp=lopsided_hvp)))
    assert (Kind.MODE_MISMATCH, "symmetry") in kinds_of(result)


def test_an_hvp_that_is_not_the_derivative_of_the_engines_own_vjp_is_caught_with_finite_differences_alone():
    def doubled_hvp(graph, values, cotangent, tangents):
        return {n: 2 * p for n, p in torch_backend.hvp(graph, values, cotangent, tangents).items()}

    result = check_case(smooth_case(), with_references(engine(hvp=doubled_hvp), "numeric"))
    assert any(f.kind in (Kind.HVP, Kind.MODE_MISMATCH) and f.backend == "engine" for f in result.findings)


def test_a_jvp_that_raises_is_a_crash_finding_in_forward_mode_not_a_crash_of_the_harness():
    def raising_jvp(graph, values, tangents):
        raise NotImplementedError("no forward mode for tanh")

    result = check_case(smooth_case(), with_references(engine(jvp=raising_jvp), "torch"))
    crashes = [f for f in result.findings if f.kind == Kind.CRASH]
    assert [(f.backend, f.quantity) for f in crashes] == [("engine", "jvp")]
    assert "no forward mode for tanh" in crashes[0].detail


def test_an_hvp_of_the_wrong_shape_is_a_shape_finding():
    def flat_hvp(graph, values, cotangent, tangents):
        return {n: p.reshape(-1, 1) for n, p in torch_backend.hvp(graph, values, cotangent, tangents).items()}

    result = check_case(smooth_case(), with_references(engine(hvp=flat_hvp), "torch"))
    assert {(f.kind, f.quantity) for f in result.findings if f.backend == "engine"} == {(Kind.SHAPE, "hvp")}


def test_only_the_modes_asked_for_are_checked():
    wrong_everywhere = engine(jvp=scaled_jvp(2.0), hvp=lambda *a: {})
    result = check_case(smooth_case(), with_references(wrong_everywhere, "torch", modes={"vjp"}))
    assert result.findings == []
    assert set(result.mode_checks) == {"vjp"}


def test_second_order_is_not_judged_at_a_kink_and_forward_mode_only_by_the_transpose_identity():
    at_kink = make_case(
        {"x": [2]}, [("r", "relu", ["x"], {}), ("e", "exp", ["r"], {})], "e", {"x": [0.0, 0.5]}, [1.0, 1.0]
    )
    result = check_case(at_kink, with_references(engine(hvp=lambda *a: {}), "jax", "torch", "numeric"))
    assert result.kink_nodes == ["r"]
    assert "hvp" not in result.mode_checks
    forward_checks = result.mode_checks["jvp"]
    assert forward_checks == 1  # the transpose identity, and nothing against the references


def run_cli(*arguments, cwd):
    command = [sys.executable, "-m", "oracles", *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_report_says_which_modes_ran_and_why_the_others_did_not(tmp_path):
    done = run_cli(
        "audit", "--graphs", "4", "--ops", "mult,tanh,reduce_sum", "--modes", "vjp,jvp", "--oracles", "torch,numeric",
        "--no-failures", "--workers", "1", "--report", str(tmp_path / "r"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "r" / "report.json").read_text())["summary"]
    rows = {row["name"]: row for row in summary["derivative_modes"]}
    assert rows["vjp"]["checked"] and rows["jvp"]["checked"] and rows["jvp"]["checks"] > 0
    assert not rows["hvp"]["checked"] and rows["hvp"]["why_not"] == "not asked for (--modes)"
    assert "| jvp (forward) | yes |" in (tmp_path / "r" / "report.md").read_text()
    assert "hvp not checked: not asked for (--modes)" in done.stdout


def test_an_unknown_mode_is_one_line_and_exit_2(tmp_path):
    done = run_cli("audit", "--modes", "vjp,forward", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown derivative mode 'forward'" in done.stderr


@pytest.mark.parametrize(
    "bug, kind, shows",
    [
        ("sin_tangent_uses_sin", "jvp", "jvp (J t1): expected "),
        ("tanh_vjp_value_constant", "hvp", "(H t1): expected "),
    ],
)
def test_the_minimal_case_of_a_forward_or_second_order_group_shows_its_tangent_and_answers(tmp_path, bug, kind, shows):
    done = run_cli(
        "audit", "--engine", f"oracles.selftest.planted:{bug}", "--graphs", "30", "--ops", "sin,tanh,mult,add",
        "--oracles", "torch,numeric", "--no-failures", "--workers", "1", "--report", str(tmp_path / "r"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    markdown = (tmp_path / "r" / "report.md").read_text()
    section = markdown[markdown.index(f"### {kind} in `{bug.split('_')[0]}`") :]
    view = section[: section.index("```bash")]
    assert "\ntangent t1: " in view
    assert any(shows in line and line.endswith("<-- differs") for line in view.splitlines())
