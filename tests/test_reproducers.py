"""What an audit leaves behind for a failure: case files, minimal cases, standalone pytest
reproducers, and reports that show the minimal case node by node.

One small audit of a planted bug (PyTorch and finite differences, one process) is run once
for the module; each test reads one thing off the report directory it wrote.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracles.audit import AuditConfig, run_audit
from oracles.cli import main
from oracles.diagnose import Investigation
from oracles.format import load_case, validate_case
from oracles.generate import GeneratorConfig
from oracles.report import build_report, minimal_file, reproducer_file, write_report

REPO = Path(__file__).resolve().parent.parent
BUG = "examples.broken_engines:power_without_x"
CORRECT = "examples.broken_engines:correct"
SMALL_GRAPHS = GeneratorConfig(max_nodes=4)


# --- helpers ---------------------------------------------------------------------------------


def audit_into(directory: Path, engine: str, graphs: int = 12, seed: int = 0, ops: tuple[str, ...] = ()) -> dict:
    """Audit `engine` on small graphs (of `ops`, if given) against PyTorch and finite differences; write the report."""
    generator = dataclasses.replace(SMALL_GRAPHS, ops=ops) if ops else SMALL_GRAPHS
    config = AuditConfig(
        graphs=graphs, seed=seed, engine=engine, oracles=("torch", "numeric"), generator=generator, workers=1,
        report=directory,
    )  # fmt: skip
    write_report(build_report(run_audit(config)))
    return json.loads((directory / "report.json").read_text())


def run_pytest(test_file: Path) -> subprocess.CompletedProcess:
    """Run one reproducer the way a user would: pytest, from the project (so `examples` imports)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_under(directory: Path) -> set[Path]:
    return {path for sub in ("cases", "reproducers") for path in (directory / sub).glob("*") if path.is_file()}


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> tuple[dict, Path]:
    pytest.importorskip("torch", reason="the audit uses PyTorch as its AD reference")
    directory = tmp_path_factory.mktemp("audit") / "report"
    report = audit_into(directory, BUG, ops=("power", "add", "mult"))
    assert report["summary"]["discrepancies"], "the planted bug was not found: nothing to reproduce"
    return report, directory


@pytest.fixture(scope="module")
def reproducer(audited) -> Path:
    _, directory = audited
    files = sorted((directory / "reproducers").glob("test_case_*.py"))
    assert files, "no reproducer was written"
    return files[0]


# --- the report directory --------------------------------------------------------------------


def test_each_failing_graph_has_a_case_file_that_loads(audited):
    report, directory = audited
    for index in {d["index"] for d in report["discrepancies"]}:
        load_case(directory / "cases" / f"case-{index:05d}.json")


def test_each_shrunk_graph_has_a_minimal_case_file_that_loads(audited):
    report, directory = audited
    shrunk = [m for m in report["minimal_cases"] if m["minimal"] is not None]
    assert shrunk
    for investigation in shrunk:
        path = Path(investigation["case_file"])
        assert path.parent == directory / "cases"
        assert load_case(path).graph == validate_case(investigation["minimal"]).graph


def test_one_graph_in_two_groups_of_the_same_kind_and_op_gets_two_minimal_files():
    def shrunk_for(backend):
        return Investigation(3, "nan-inf", backend, None, None, {}, True, (1, 1), (1, 1), 0, 0.0)

    report = Path("audit-report")
    engine, reference = shrunk_for("autodiff"), shrunk_for("jax")
    assert minimal_file(report, engine) != minimal_file(report, reference)
    assert reproducer_file(report, engine) != reproducer_file(report, reference)


def test_each_shrunk_graph_has_a_reproducer(audited):
    report, directory = audited
    for investigation in report["minimal_cases"]:
        path = Path(investigation["reproducer"])
        assert path.parent == directory / "reproducers" and path.is_file()


def test_a_reproducer_fails_while_the_bug_exists(reproducer):
    completed = run_pytest(reproducer)
    assert completed.returncode == 1, completed.stdout + completed.stderr


def test_a_reproducer_passes_once_the_engine_is_correct(reproducer, tmp_path):
    source = reproducer.read_text()
    line = f"ENGINE = {BUG!r}"
    assert source.count(line) == 1
    fixed = tmp_path / reproducer.name
    fixed.write_text(source.replace(line, f"ENGINE = {CORRECT!r}"))
    completed = run_pytest(fixed)
    assert completed.returncode == 0, completed.stdout + completed.stderr


# --- report.json -----------------------------------------------------------------------------


def test_every_discrepancy_names_its_kind_op_and_minimal_case_and_keeps_its_case(audited):
    report, _ = audited
    for d in report["discrepancies"]:
        assert d["kind"] == "gradient"
        assert d["op"] == "power"
        minimal = validate_case(d["minimal"])
        assert len(minimal.graph["nodes"]) <= len(validate_case(d["case"]).graph["nodes"])


def test_groups_gather_the_discrepancies_by_kind_backend_and_op(audited):
    report, _ = audited
    groups = report["summary"]["groups"]
    keys = [(g["kind"], g["backend"], g["op"]) for g in groups]
    assert len(keys) == len(set(keys))
    for group in groups:
        members = [
            d
            for d in report["discrepancies"]
            if (d["kind"], d["backend"], d["op"]) == (group["kind"], group["backend"], group["op"])
        ]
        assert group["discrepancies"] == len(members)
        assert sorted(group["graphs"]) == sorted({d["index"] for d in members})
    assert sum(g["discrepancies"] for g in groups) == len(report["discrepancies"])


# --- report.md -------------------------------------------------------------------------------


def test_report_md_shows_the_minimal_case_node_by_node(audited):
    report, directory = audited
    markdown = (directory / "report.md").read_text()
    investigation = next(
        m for m in report["minimal_cases"] if m["index"] == report["summary"]["groups"][0]["minimal_from"]
    )
    for node in investigation["minimal"]["graph"]["nodes"]:
        assert re.search(rf"^{re.escape(node['name'])} = {node['op']}\(", markdown, re.MULTILINE), node
    assert "  val: expected " in markdown
    assert re.search(r"^  gra .*expected .*actual .*<-- differs$", markdown, re.MULTILINE)


def test_report_md_gives_the_replay_and_pytest_commands(audited):
    report, directory = audited
    markdown = (directory / "report.md").read_text()
    investigation = next(
        m for m in report["minimal_cases"] if m["index"] == report["summary"]["groups"][0]["minimal_from"]
    )
    assert f"autodiff-audit replay {investigation['case_file']} --engine {BUG}" in markdown
    assert f"pytest {investigation['reproducer']}" in markdown


# --- replay and re-audit ---------------------------------------------------------------------


def test_replay_of_a_minimal_case_exits_1_for_the_broken_engine(audited, capsys):
    _, directory = audited
    minimal = sorted((directory / "cases").glob("case-*-minimal.json"))[0]
    assert main(["replay", str(minimal), "--engine", BUG, "--oracles", "torch,numeric"]) == 1


def test_replay_of_a_minimal_case_exits_0_for_a_correct_engine(audited, capsys):
    _, directory = audited
    minimal = sorted((directory / "cases").glob("case-*-minimal.json"))[0]
    assert main(["replay", str(minimal), "--engine", CORRECT, "--oracles", "torch,numeric"]) == 0


def test_a_clean_second_audit_into_the_same_directory_leaves_no_case_files(audited, tmp_path):
    _, first = audited
    directory = tmp_path / "report"
    shutil.copytree(first, directory)
    report = audit_into(directory, CORRECT)
    assert report["summary"]["discrepancies"] == 0
    assert files_under(directory) == set()


def test_a_second_audit_into_the_same_directory_keeps_only_its_own_case_files(audited, tmp_path):
    _, first = audited
    directory = tmp_path / "report"
    shutil.copytree(first, directory)
    report = audit_into(directory, "examples.broken_engines:subtract_sign", graphs=6, seed=3, ops=("subtract", "mult"))
    assert report["summary"]["discrepancies"]
    named = {d["case_file"] for d in report["discrepancies"]} | {m["case_file"] for m in report["minimal_cases"]}
    named |= {m["reproducer"] for m in report["minimal_cases"] if m.get("reproducer")}
    assert {str(path) for path in files_under(directory)} == {name for name in named if name}
