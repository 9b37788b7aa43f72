"""`autodiff-audit`: exit codes, reports and messages.

Exit 0 clean, 1 a discrepancy, 2 a usage or input error printed as ONE line on stderr, never a
traceback. The CLI is called in-process (`oracles.cli.main`) for speed; one test runs it as a
subprocess. Audits are tiny and, where JAX is not the point, use `--oracles torch,numeric` or
`--oracles numeric` (JAX compiles per shape).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from oracles.cli import main
from oracles.format import save_case, validate_case
from oracles.generate import GeneratorConfig, generate_case
from oracles.ops import OPS

REPO = Path(__file__).resolve().parent.parent
BROKEN = "examples.broken_engines"


# --- helpers ---------------------------------------------------------------------------------


def audit(tmp_path: Path, *args: str, report: str = "report") -> tuple[int, dict, str]:
    """Run a small single-process audit; return the exit code, report.json and report.md."""
    directory = tmp_path / report
    code = main(["audit", "--workers", "1", "--report", str(directory), *args])
    return code, json.loads((directory / "report.json").read_text()), (directory / "report.md").read_text()


def usage_error(capsys, args: list[str]) -> str:
    """Assert exit 2 with exactly one line on stderr (no traceback); return that line."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write a plug-in module under a fresh name on sys.path; return its import name."""
    directory = tmp_path / "plugins"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))

    def write(source: str, wrapping_our_engine: bool = False) -> str:
        name = f"cli_plugin_{uuid.uuid4().hex[:12]}"
        header = WRAPPED if wrapping_our_engine else ""
        (directory / f"{name}.py").write_text(header + textwrap.dedent(source))
        return name

    return write


# Our own engine, wrapped: such a plug-in changes exactly one thing about its answer.
WRAPPED = "import numpy as np\nfrom oracles.backends import autodiff_engine\n"


def needs(*packages: str) -> None:
    for package in packages:
        pytest.importorskip(package, reason=f"{package} is not installed")


def power_case(tmp_path: Path) -> Path:
    """A saved case that contains a power node."""
    config = GeneratorConfig(ops=("power", "add"))
    for index in range(50):
        case = generate_case(0, index, config)
        if any(node["op"] == "power" for node in case.graph["nodes"]):
            path = tmp_path / "power-case.json"
            save_case(case, path)
            return path
    raise AssertionError("no generated case with a power node")


# --- audit: a clean engine -------------------------------------------------------------------


def test_audit_of_our_engine_exits_0_and_writes_both_reports(tmp_path):
    needs("torch")
    code, report, markdown = audit(tmp_path, "--graphs", "10", "--oracles", "torch,numeric")
    assert code == 0
    assert report["discrepancies"] == []
    assert markdown.startswith("# Audit of `autodiff`: PASS")


def test_audit_report_json_has_the_documented_summary(tmp_path):
    code, report, _ = audit(tmp_path, "--graphs", "5", "--oracles", "numeric", "--seed", "3")
    assert code == 0
    summary = report["summary"]
    assert summary["graphs"] == 5
    assert summary["checks"] > 0
    assert summary["discrepancies"] == 0
    assert summary["backends"]["engine"] == "autodiff"
    assert summary["backends"]["references"] == ["numeric"]
    assert summary["backends"]["unavailable"] == {}
    assert set(summary["ops"]) == set(OPS)
    for entry in summary["ops"].values():
        assert set(entry) >= {"graphs", "checks", "max_margin", "failures"}
    assert summary["seed"] == 3
    assert set(summary["versions"]) >= {"python", "numpy", "jax", "torch"}
    assert isinstance(summary["wall_seconds"], float)
    assert isinstance(report["discrepancies"], list)


def test_audit_against_all_three_references_is_clean(tmp_path):
    needs("jax", "torch")
    code, report, _ = audit(tmp_path, "--graphs", "5")
    assert code == 0
    assert report["summary"]["backends"]["references"] == ["jax", "torch", "numeric"]


def test_audit_prints_the_summary_and_where_the_report_is(tmp_path, capsys):
    audit(tmp_path, "--graphs", "3", "--oracles", "numeric")
    out = capsys.readouterr().out
    assert "3 graphs" in out and "no discrepancies" in out
    assert str(tmp_path / "report" / "report.json") in out


def test_an_unavailable_reference_is_reported_and_the_audit_still_runs(tmp_path):
    # A `jax` that cannot be imported, first on the path of the real command and its workers.
    (tmp_path / "no_jax" / "jax").mkdir(parents=True)
    (tmp_path / "no_jax" / "jax" / "__init__.py").write_text("raise ImportError('jax is not here')\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "no_jax"), str(REPO)])}
    command = [str(Path(sys.executable).parent / "autodiff-audit"), "audit", "--graphs", "3",
               "--oracles", "jax,numeric", "--report", str(tmp_path / "report")]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["summary"]["backends"]["references"] == ["numeric"]
    assert "jax is not here" in report["summary"]["backends"]["unavailable"]["jax"]
    assert "unavailable: jax" in (tmp_path / "report" / "report.md").read_text()


def test_audit_report_does_not_depend_on_the_number_of_workers(tmp_path):
    args = ("--engine", f"{BROKEN}:power_without_x", "--ops", "power,add", "--graphs", "6", "--oracles", "numeric")
    _, one, _ = audit(tmp_path, *args, report="one")
    code = main(["audit", "--workers", "2", "--report", str(tmp_path / "two"), *args])
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert code == 1 and two["summary"]["workers"] == 2
    drop = ("case_file", "minimal_file")  # paths under each report directory
    assert [{k: v for k, v in d.items() if k not in drop} for d in one["discrepancies"]] == [
        {k: v for k, v in d.items() if k not in drop} for d in two["discrepancies"]
    ]
    assert one["summary"]["ops"] == two["summary"]["ops"]


# --- audit: the planted bugs are found and blamed on the broken engine -----------------------

PLANTED = {
    "power_without_x": ("--ops", "power,add,mult", "--graphs", "30"),
    "dot_missing_transpose": ("--ops", "dot,add", "--graphs", "40"),
    "fan_out_overwritten": ("--graphs", "20"),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_audit_of_a_broken_engine_exits_1_and_blames_it(tmp_path, bug):
    needs("torch")
    code, report, _ = audit(tmp_path, "--engine", f"{BROKEN}:{bug}", "--oracles", "torch,numeric", *PLANTED[bug])
    assert code == 1
    assert report["discrepancies"]
    assert {d["backend"] for d in report["discrepancies"]} == {f"broken:{bug}"}
    # Lost fan-out accumulation breaks no single rule: triage calls it composition.
    assert {d["kind"] for d in report["discrepancies"]} <= {"gradient", "value", "composition"}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_each_discrepancy_carries_a_valid_case_and_the_arrays(tmp_path, bug):
    needs("torch")
    _, report, _ = audit(tmp_path, "--engine", f"{BROKEN}:{bug}", "--oracles", "torch,numeric", *PLANTED[bug])
    for d in report["discrepancies"]:
        validate_case(d["case"])
        assert d["quantity"] in ("gradient", "value")
        assert d["input"] is None or d["input"] in {entry["name"] for entry in d["case"]["graph"]["inputs"]}
        assert d["expected"] is not None and d["actual"] is not None


def test_report_md_names_the_failure_and_how_to_replay_it(tmp_path):
    spec = f"{BROKEN}:power_without_x"
    _, _, markdown = audit(
        tmp_path, "--engine", spec, "--ops", "power,add,mult", "--graphs", "30", "--oracles", "numeric"
    )
    assert "FAIL" in markdown
    assert "gradient in broken:power_without_x" in markdown
    assert "autodiff-audit replay" in markdown and f"--engine {spec}" in markdown


def test_the_case_file_of_a_discrepancy_replays_to_the_same_finding(tmp_path, capsys):
    spec = f"{BROKEN}:power_without_x"
    _, report, _ = audit(tmp_path, "--engine", spec, "--ops", "power,add", "--graphs", "20", "--oracles", "numeric")
    case_file = report["discrepancies"][0]["case_file"]
    capsys.readouterr()
    assert main(["replay", case_file, "--engine", spec, "--oracles", "numeric"]) == 1
    assert "FINDING gradient in broken:power_without_x" in capsys.readouterr().out


# --- audit: plug-ins that misbehave ----------------------------------------------------------


def test_a_plugin_whose_evaluate_raises_is_a_crash_finding_and_the_report_is_written(tmp_path, plugin):
    module = plugin(
        """
        name = "raiser"

        def evaluate(graph, values, cotangent):
            raise RuntimeError("planted failure")
        """
    )
    code, report, markdown = audit(tmp_path, "--engine", module, "--graphs", "3", "--oracles", "numeric")
    assert code == 1
    assert {(d["kind"], d["backend"]) for d in report["discrepancies"]} == {("crash", "raiser")}
    assert all("planted failure" in d["detail"] for d in report["discrepancies"])
    assert "crash in raiser" in markdown


def test_a_plugin_returning_a_gradient_of_the_wrong_shape_is_a_shape_finding(tmp_path, plugin):
    module = plugin(
        """
        name = "wrong-shape"

        def evaluate(graph, values, cotangent):
            value, gradients = autodiff_engine.evaluate(graph, values, cotangent)
            return value, {n: np.zeros(np.shape(g) + (2,)) for n, g in gradients.items()}
        """,
        wrapping_our_engine=True,
    )
    code, report, _ = audit(tmp_path, "--engine", module, "--graphs", "3", "--oracles", "numeric")
    assert code == 1
    assert {(d["kind"], d["backend"]) for d in report["discrepancies"]} == {("shape", "wrong-shape")}


def test_a_plugin_returning_nan_in_the_value_is_a_nan_inf_finding(tmp_path, plugin):
    module = plugin(
        """
        name = "nan-value"

        def evaluate(graph, values, cotangent):
            value, gradients = autodiff_engine.evaluate(graph, values, cotangent)
            return np.full(np.shape(value), np.nan), gradients
        """,
        wrapping_our_engine=True,
    )
    code, report, _ = audit(tmp_path, "--engine", module, "--graphs", "3", "--oracles", "numeric")
    assert code == 1
    assert {(d["kind"], d["backend"], d["quantity"]) for d in report["discrepancies"]} == {
        ("nan-inf", "nan-value", "value")
    }


def test_a_plugin_with_ops_add_only_gets_graphs_of_add_only(tmp_path, plugin):
    # Its gradients are doubled, so that every graph is a discrepancy and its case is in the report.
    module = plugin(
        """
        name = "add-only"
        ops = {"add"}

        def evaluate(graph, values, cotangent):
            value, gradients = autodiff_engine.evaluate(graph, values, cotangent)
            return value, {n: 2 * g for n, g in gradients.items()}
        """,
        wrapping_our_engine=True,
    )
    code, report, _ = audit(tmp_path, "--engine", module, "--graphs", "8", "--oracles", "numeric")
    assert code == 1
    assert list(report["summary"]["ops"]) == ["add"]
    assert {d["index"] for d in report["discrepancies"]} == set(range(8))
    assert {node["op"] for d in report["discrepancies"] for node in d["case"]["graph"]["nodes"]} == {"add"}


def test_a_plugin_supporting_none_of_the_requested_ops_is_a_usage_error_naming_it(tmp_path, plugin, capsys):
    module = plugin(
        """
        name = "dot-only"
        ops = {"dot"}

        def evaluate(graph, values, cotangent):
            raise AssertionError("never called")
        """
    )
    line = usage_error(capsys, ["audit", "--engine", module, "--ops", "add", "--report", str(tmp_path / "r")])
    assert "dot-only" in line and "add" in line


def test_a_plugin_returning_strings_is_a_finding_not_a_harness_crash(tmp_path, plugin):
    module = plugin(
        """
        name = "strings"

        def evaluate(graph, values, cotangent):
            value, gradients = autodiff_engine.evaluate(graph, values, cotangent)
            return np.full(np.shape(value), "x"), gradients
        """,
        wrapping_our_engine=True,
    )
    code, report, _ = audit(tmp_path, "--engine", module, "--graphs", "3", "--oracles", "numeric")
    assert code == 1
    assert report["discrepancies"]
    assert {d["backend"] for d in report["discrepancies"]} == {"strings"}


def test_a_plugin_returning_complex_values_is_a_discrepancy(tmp_path, plugin):
    # The real parts are right; the imaginary parts must not be silently dropped.
    module = plugin(
        """
        name = "complex"

        def evaluate(graph, values, cotangent):
            value, gradients = autodiff_engine.evaluate(graph, values, cotangent)
            return value + 1j, {n: g + 1j for n, g in gradients.items()}
        """,
        wrapping_our_engine=True,
    )
    code, report, _ = audit(tmp_path, "--engine", module, "--graphs", "3", "--oracles", "numeric")
    assert code == 1
    assert {d["backend"] for d in report["discrepancies"]} == {"complex"}


# --- usage errors: exit 2, one line on stderr naming the problem -----------------------------


def test_an_unknown_subcommand_is_a_usage_error_naming_it(capsys):
    line = usage_error(capsys, ["frobnicate"])
    assert "'frobnicate'" in line


def test_no_subcommand_is_a_usage_error(capsys):
    line = usage_error(capsys, [])
    assert "command" in line


def test_zero_graphs_is_a_usage_error_naming_the_option(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--graphs", "0", "--report", str(tmp_path / "r")])
    assert "--graphs" in line and "0" in line


def test_a_non_integer_graph_count_is_a_usage_error_naming_it(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--graphs", "abc", "--report", str(tmp_path / "r")])
    assert "--graphs" in line and "'abc'" in line


def test_an_unknown_op_is_a_usage_error_naming_it_and_the_known_ops(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--ops", "add,nope", "--report", str(tmp_path / "r")])
    assert "--ops" in line and "'nope'" in line and "reduce_sum" in line


def test_an_empty_op_list_is_a_usage_error(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--ops", ",", "--report", str(tmp_path / "r")])
    assert "--ops" in line


def test_an_unknown_oracle_is_a_usage_error_naming_it(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--oracles", "nope", "--report", str(tmp_path / "r")])
    assert "--oracles" in line and "'nope'" in line


def test_unknown_engine_module_is_a_usage_error_naming_it(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--engine", "no.such.module", "--report", str(tmp_path / "r")])
    assert "--engine" in line and "no.such.module" in line


def test_unknown_engine_attribute_is_a_usage_error_naming_it(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--engine", f"{BROKEN}:nope", "--report", str(tmp_path / "r")])
    assert "'nope'" in line


def test_an_engine_without_evaluate_is_a_usage_error(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--engine", f"{BROKEN}:BUGS", "--report", str(tmp_path / "r")])
    assert "evaluate" in line


def test_min_nodes_above_max_nodes_is_a_usage_error_naming_both(tmp_path, capsys):
    args = ["audit", "--min-nodes", "5", "--max-nodes", "2", "--report", str(tmp_path / "r")]
    line = usage_error(capsys, args)
    assert "--min-nodes 5" in line and "--max-nodes 2" in line


def test_a_report_path_under_a_regular_file_is_a_usage_error_naming_it(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / "file" / "report"
    line = usage_error(capsys, ["audit", "--graphs", "1", "--oracles", "numeric", "--report", str(target)])
    assert "--report" in line and str(target) in line and "cannot write" in line


def test_an_unsupported_dtype_is_a_usage_error_naming_it(tmp_path, capsys):
    line = usage_error(capsys, ["audit", "--dtype", "float16", "--report", str(tmp_path / "r")])
    assert "--dtype" in line and "float16" in line


def test_a_negative_seed_is_a_usage_error_naming_the_seed_option(tmp_path, capsys):
    args = ["audit", "--seed", "-1", "--graphs", "1", "--oracles", "numeric", "--report", str(tmp_path / "r")]
    line = usage_error(capsys, args)
    assert "--seed" in line


def test_a_usage_error_in_a_subprocess_is_one_line_on_stderr_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "oracles", "audit", "--graphs", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "--graphs" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


# --- replay ----------------------------------------------------------------------------------


def test_replay_of_a_saved_case_exits_0_and_prints_each_backends_value_and_gradients(tmp_path, capsys):
    needs("torch")
    case = generate_case(0, 3)
    path = tmp_path / "case.json"
    save_case(case, path)
    assert main(["replay", str(path), "--oracles", "torch,numeric"]) == 0
    out = capsys.readouterr().out
    assert str(path) in out
    for backend in ("autodiff", "torch"):
        assert f"  {backend}: value = " in out
        for entry in case.graph["inputs"]:
            assert f"  {backend}: vjp[{entry['name']}] = " in out
    assert "FINDING" not in out and "pass" in out


def test_replay_with_a_broken_engine_exits_1_and_prints_a_finding(tmp_path, capsys):
    path = power_case(tmp_path)
    code = main(["replay", str(path), "--engine", f"{BROKEN}:power_without_x", "--oracles", "numeric"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FINDING gradient in broken:power_without_x" in out
    assert "FAIL" in out


def test_replay_of_invalid_json_is_a_usage_error_naming_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"graph": {\n  "inputs": [,]}}\n')
    line = usage_error(capsys, ["replay", str(path)])
    assert str(path) in line and "invalid JSON" in line and "line 2" in line


def test_replay_of_a_missing_file_is_a_usage_error_naming_it(tmp_path, capsys):
    path = tmp_path / "absent.json"
    line = usage_error(capsys, ["replay", str(path)])
    assert str(path) in line


def test_replay_of_a_case_with_an_undefined_name_is_a_usage_error_naming_the_place(tmp_path, capsys):
    case = {
        "graph": {
            "inputs": [{"name": "x", "shape": [2]}],
            "nodes": [{"name": "y", "op": "mult", "inputs": ["x", "w"]}],
            "output": "y",
        },
        "values": {"x": [1.0, 2.0]},
    }
    path = tmp_path / "undefined.json"
    path.write_text(json.dumps(case))
    line = usage_error(capsys, ["replay", str(path)])
    assert f"{path}.graph.nodes[0].inputs[1]" in line and "'w'" in line


def test_replay_checks_every_file_before_running_any(tmp_path, capsys):
    good = tmp_path / "good.json"
    save_case(generate_case(0, 1), good)
    line = usage_error(capsys, ["replay", str(good), str(tmp_path / "absent.json"), "--oracles", "numeric"])
    assert "absent.json" in line
    assert capsys.readouterr().out == ""


# --- ops -------------------------------------------------------------------------------------


def test_ops_prints_every_op_and_every_backend(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    for op in OPS:
        assert f"`{op}`" in out
    header = out.splitlines()[0]
    for backend in ("autodiff", "jax", "torch", "numeric"):
        assert backend in header
