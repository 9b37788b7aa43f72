"""docs/report.schema.json describes every report.json the harness writes: each test runs the real
command line (`python -m oracles`) in a subprocess, the way a user's CI does, and validates the
report it wrote. Audits: the default engine with every reference, a planted bug (exit 1, with
minimal cases), kink mode, float32, tiered mode, an audit stopped by SIGINT, a campaign cut by
--time and resumed, an audit on a local Dask cluster; and a selftest. The last tests take real
reports and give them the rarer forms the harness can write (NaN/Infinity tokens, the placeholder
of a lost worker's graphs), which the schema must accept, and break them in a few ways, which it
must reject: the schema is not vacuous."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from report_schema import REPO, ReportSchemaError, validate_report

FAST = ("--oracles", "torch,numeric")  # where JAX is not the point: no JAX start-up and compiles
TIMEOUT = 300


def requires(*modules: str) -> None:
    """Skip unless every module is installed. (Looked up, not imported: importing JAX and PyTorch
    into the test process would cost seconds and memory the audits themselves need.)"""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


def cli(*args: str, expect: int | tuple[int, ...] = (0, 1)) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "oracles", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT)  # fmt: skip
    expected = (expect,) if isinstance(expect, int) else expect
    assert done.returncode in expected, f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def audit(folder: Path, *args: str, expect: int | tuple[int, ...] = (0, 1)) -> dict:
    """Run `autodiff-audit audit ARGS` into `folder`, with a failure database of its own beside it,
    and return its validated report."""
    cli("audit", *args, "--report", str(folder), "--failures", str(folder.parent / f"{folder.name}-failures"),
        expect=expect)  # fmt: skip
    return validate_report(folder / "report.json")


@pytest.fixture(scope="module")
def planted_report(tmp_path_factory) -> dict:
    """A failing audit of a planted bug: discrepancies, groups and minimal cases (shared with the
    negative test, which breaks copies of it)."""
    requires("torch")
    folder = tmp_path_factory.mktemp("planted") / "report"
    return audit(folder, "--engine", "oracles.selftest.planted:power_without_x", "--graphs", "30", "--seed", "1",
                 "--ops", "power,add,mult", *FAST, expect=1)  # fmt: skip


@pytest.fixture(scope="module")
def selftest_report(tmp_path_factory) -> dict:
    requires("torch")
    folder = tmp_path_factory.mktemp("selftest") / "report"
    # Three ops: most planted bugs survive (exit 1), which is the quick way through every bug.
    cli("selftest", "--graphs", "20", "--seeds", "1", "--ops", "add,mult,power", *FAST, "--report", str(folder))
    return validate_report(folder / "report.json")


def test_the_default_audit_report_matches_the_schema(tmp_path):
    requires("jax", "torch")
    report = audit(tmp_path / "report", "--graphs", "20", expect=0)
    summary = report["summary"]
    assert summary["graphs"] == 20 and summary["discrepancies"] == 0 and not summary["interrupted"]
    assert summary["backends"]["references"] == ["jax", "torch", "numeric"]
    assert summary["failure_database"] is not None


def test_a_failing_audit_report_with_minimal_cases_matches_the_schema(planted_report):
    summary = planted_report["summary"]
    assert summary["discrepancies"] == len(planted_report["discrepancies"]) > 0
    assert planted_report["minimal_cases"] and summary["groups"][0]["minimal_size"] is not None
    assert all(d["minimal"] is not None for d in planted_report["discrepancies"])


def test_a_kink_mode_report_matches_the_schema(tmp_path):
    requires("torch")
    report = audit(tmp_path / "report", "--kinks", "--graphs", "30", *FAST)
    assert report["summary"]["coverage"]["kinks"] is not None and report["summary"]["conventions"]["kinks"]


def test_a_float32_report_matches_the_schema(tmp_path):
    requires("torch")
    report = audit(tmp_path / "report", "--dtype", "float32", "--graphs", "20", *FAST)
    assert report["summary"]["generator"]["dtype"] == "float32"


def test_a_tiered_mode_report_matches_the_schema(tmp_path):
    """Tiered mode with kinks: JAX checks the kink graphs (so `mode.jax_because` is filled in), and
    JAX and PyTorch answering differently at kinks gives reference conventions."""
    requires("jax", "torch")
    report = audit(tmp_path / "report", "--mode", "tiered", "--kinks", "--graphs", "30")
    mode = report["summary"]["mode"]
    assert mode["name"] == "tiered" and mode["jax_sample"] is not None


def _complete_lines(path: Path) -> int:
    try:
        return path.read_text(encoding="utf-8").count("\n")
    except (OSError, UnicodeDecodeError):
        return 0


def test_an_interrupted_audit_report_matches_the_schema(tmp_path):
    requires("torch")
    folder = tmp_path / "report"
    command = [sys.executable, "-m", "oracles", "audit", "--graphs", "2000", *FAST, "--report", str(folder),
               "--failures", str(tmp_path / "failures")]  # fmt: skip
    with open(tmp_path / "stderr.txt", "w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # The header, then at least one finished case.
        while _complete_lines(folder / "campaign.jsonl") < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "no case was finished within 120 s"
            time.sleep(0.05)
        assert process.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 128 + signal.SIGINT, (tmp_path / "stderr.txt").read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
    summary = validate_report(folder / "report.json")["summary"]
    assert summary["interrupted"] and summary["graphs"] < summary["graphs_requested"] == 2000


def test_a_campaign_cut_by_its_time_budget_and_resumed_writes_reports_that_match_the_schema(tmp_path):
    requires("torch")
    folder = tmp_path / "report"
    failures = str(tmp_path / "failures")
    cli("audit", "--graphs", "40", "--time", "3s", *FAST, "--report", str(folder), "--failures", failures)
    budgeted = validate_report(folder / "report.json")["summary"]
    # On a slow machine the budget may be spent before the first graph; on a fast one, not at all.
    assert budgeted["time_budget_seconds"] in (3.0, None) and not budgeted["interrupted"]
    cli("audit", "--resume", str(folder), "--failures", failures)
    resumed = validate_report(folder / "report.json")["summary"]
    assert resumed["graphs"] == resumed["graphs_requested"] == 40 and resumed["time_budget_seconds"] is None


def test_an_audit_on_a_local_dask_cluster_writes_a_report_that_matches_the_schema(tmp_path):
    pytest.importorskip("distributed")
    requires("torch")
    report = audit(tmp_path / "report", "--cluster", "local", "--workers", "1", "--graphs", "10", *FAST)
    assert "Dask" in report["summary"]["ran_on"]


def test_a_selftest_report_matches_the_schema(selftest_report):
    summary = selftest_report["summary"]
    assert summary["bugs"] == len(selftest_report["bugs"]) > 0 and summary["settings"]["--ops"] == "add,mult,power"


def test_the_schema_accepts_the_rarer_forms_the_harness_writes(planted_report, tmp_path):
    """Non-finite floats, written as bare NaN/Infinity tokens (json.dumps' default), and the
    placeholder finding for graphs a lost worker never audited (oracles/audit.py): a crash that
    blames no backend, with an empty case."""
    report = copy.deepcopy(planted_report)
    nan_inf = report["discrepancies"][0]
    nan_inf.update(kind="nan-inf", margin=float("inf"), actual=[float("nan"), float("-inf")], expected=[1.0, 2.0])
    lost = {
        **report["discrepancies"][1],
        "kind": "crash",
        "backend": None,
        "op": None,
        "quantity": None,
        "input": None,
        "margin": None,
        "expected_from": [],
        "expected": None,
        "actual": None,
        "case": {},
        "case_file": None,
        "minimal": None,
        "minimal_from": None,
        "minimal_confirmed": None,
        "minimal_file": None,
    }
    report["discrepancies"][1] = lost
    report["summary"]["ops"]["power"]["max_margin"] = float("inf")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert "NaN" in path.read_text() and "Infinity" in path.read_text()
    validate_report(path)


def _drop(*keys):
    """A change that removes the entry at `keys` (dict keys and list indices)."""

    def change(report):
        *parents, last = keys
        for key in parents:
            report = report[key]
        del report[last]

    return change


def _put(*keys_and_value):
    """A change that sets the entry at the leading keys to the last argument."""
    *keys, value = keys_and_value

    def change(report):
        *parents, last = keys
        for key in parents:
            report = report[key]
        report[last] = value

    return change


def _broken(report: dict, change) -> dict:
    broken = copy.deepcopy(report)
    change(broken)
    return broken


AUDIT_BREAKAGES = {
    # what is broken: (the change, what the error must say, from its path on)
    "a summary key removed": (_drop("summary", "discrepancies"), "$.summary: 'discrepancies' is a required property"),
    "a number as a string": (_put("discrepancies", 0, "margin", "large"), "$.discrepancies[0].margin: 'large'"),
    "null where the code never writes it": (
        _put("minimal_cases", 0, "confirmed", None),
        "$.minimal_cases[0].confirmed",
    ),
    "a key a group never has": (_put("summary", "groups", 0, "size", 1), "$.summary.groups[0]: Additional properties"),
    "an unknown kind": (_put("summary", "kinds", "wrong", 1), "$.summary.kinds: 'wrong' is not one of"),
    "a case without its graph": (_drop("discrepancies", 0, "case", "graph"), "$.discrepancies[0].case: fits none"),
    "an audit report with selftest rows": (_put("bugs", []), "$: Additional properties are not allowed"),
}


@pytest.mark.parametrize("breakage", list(AUDIT_BREAKAGES))
def test_the_schema_rejects_a_broken_audit_report(planted_report, breakage, tmp_path):
    change, where = AUDIT_BREAKAGES[breakage]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_broken(planted_report, change)))
    with pytest.raises(ReportSchemaError, match=r"at \$") as raised:
        validate_report(path)
    assert f"at {where}" in str(raised.value), str(raised.value)


def test_the_schema_rejects_a_broken_selftest_report(selftest_report, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(_broken(selftest_report, _drop("bugs", 0, "caught"))))
    with pytest.raises(ReportSchemaError, match=r"at \$\.bugs\[0\]: 'caught' is a required property"):
        validate_report(path)
