"""The failure database: every minimal failing case an audit finds is kept per engine, and the
next audit of that engine replays them first. A fixed bug is reported fixed, and one that comes
back is a regression. `autodiff-audit failures list|clear` shows and empties it, and clearing
removes only what the database wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
QUICK = ("--graphs", "60", "--oracles", "numeric", "--shrink-limit", "1")
# An engine whose author is at work on it: softmax's Jacobian is wrong while the file `bug` exists.
ENGINE_AT_WORK = """
from pathlib import Path
from oracles.selftest.planted import correct, softmax_diagonal_jacobian

engine = softmax_diagonal_jacobian if Path("bug").exists() else correct
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([AUDIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def audit(folder: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = run("audit", "--engine", "engine_at_work:engine", *QUICK, "--report", "report", *extra, cwd=folder)
    return done, json.loads((folder / "report" / "report.json").read_text())["summary"]


def engine_at_work(tmp_path: Path, buggy: bool) -> Path:
    (tmp_path / "engine_at_work.py").write_text(ENGINE_AT_WORK)
    (tmp_path / "bug").unlink(missing_ok=True)
    if buggy:
        (tmp_path / "bug").touch()
    return tmp_path


def test_a_failing_case_is_kept_and_replayed_before_the_first_random_graph(tmp_path):
    folder = engine_at_work(tmp_path, buggy=True)
    first, summary = audit(folder)
    assert first.returncode == 1, first.stderr
    kept = summary["failure_database"]["added"]
    assert kept and summary["failure_database"]["known"] == 0

    listed = run("failures", "list", cwd=folder)
    assert listed.returncode == 0 and all(case in listed.stdout for case in kept), listed.stdout

    second, summary = audit(folder)
    assert second.returncode == 1, second.stderr
    assert sorted(summary["failure_database"]["still_fails"]) == sorted(kept)
    assert summary["failure_database"]["added"] == []  # known already: kept once
    lines = second.stderr.splitlines()
    replays = [k for k, line in enumerate(lines) if line.startswith("failure database: ") and "still fails" in line]
    first_progress = next(k for k, line in enumerate(lines) if line.startswith("audited "))
    assert len(replays) == len(kept) and max(replays) < first_progress, second.stderr


def test_a_fixed_bug_is_reported_fixed_and_its_return_a_regression(tmp_path):
    folder = engine_at_work(tmp_path, buggy=True)
    _, summary = audit(folder)
    kept = sorted(summary["failure_database"]["added"])
    assert kept

    engine_at_work(tmp_path, buggy=False)
    fixed, summary = audit(folder)
    assert fixed.returncode == 0, fixed.stderr
    assert sorted(summary["failure_database"]["fixed"]) == kept and summary["failure_database"]["failing"] == 0
    assert "fixed" in run("failures", "list", cwd=folder).stdout

    engine_at_work(tmp_path, buggy=True)
    back, summary = audit(folder)
    assert back.returncode == 1
    assert sorted(summary["failure_database"]["regressions"]) == kept
    assert "REGRESSION" in back.stderr
    assert "REGRESSED" in (folder / "report" / "report.md").read_text()


def test_failures_clear_removes_what_the_database_wrote_and_nothing_else(tmp_path):
    folder = engine_at_work(tmp_path, buggy=True)
    audit(folder)
    database = Path(os.environ["AUTODIFF_AUDIT_FAILURES"])
    engine_folder = next(database.iterdir())
    (engine_folder / "my-notes.json").write_text('{"mine": true}')

    cleared = run("failures", "clear", "--engine", "engine_at_work:engine", cwd=folder)
    assert cleared.returncode == 0 and "removed" in cleared.stdout, cleared.stderr
    assert [path.name for path in engine_folder.iterdir()] == ["my-notes.json"]
    assert "empty" in run("failures", "list", cwd=folder).stdout


def test_the_database_moves_with_failures_and_stays_untouched_with_no_failures(tmp_path):
    folder = engine_at_work(tmp_path, buggy=True)
    default = Path(os.environ["AUTODIFF_AUDIT_FAILURES"])
    audit(folder, "--failures", "elsewhere")
    moved = {path: path.read_bytes() for path in (folder / "elsewhere").rglob("*") if path.is_file()}
    assert moved and list(default.iterdir()) == []
    assert "empty" in run("failures", "list", cwd=folder).stdout
    assert "cases" in run("failures", "list", "--failures", "elsewhere", cwd=folder).stdout

    _, summary = audit(folder, "--failures", "elsewhere", "--no-failures")
    assert summary["failure_database"] is None
    assert {path: path.read_bytes() for path in (folder / "elsewhere").rglob("*") if path.is_file()} == moved


def test_a_database_that_cannot_be_written_costs_a_warning_not_the_report(tmp_path):
    folder = engine_at_work(tmp_path, buggy=True)
    (folder / "a-file").write_text("")
    done, summary = audit(folder, "--failures", "a-file/database")  # a folder inside a file: no mkdir
    assert done.returncode == 1, done.stderr
    assert summary["failure_database"]["errors"] and summary["discrepancies"]
    assert "warning: failure database" in done.stderr and "Traceback" not in done.stderr
    assert "could not be kept" in (folder / "report" / "report.md").read_text()
