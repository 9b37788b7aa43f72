"""The campaign store: every finished case is appended to DIR/campaign.jsonl as it completes, so a
time budget, a signal or a killed main process loses no finished case, and `--resume DIR`
continues the campaign to its target without redoing one. The resumed report is the
uninterrupted one, timings aside."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from case_builders import stored_cases, without_keys

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
CAMPAIGN = ("audit", "--graphs", "3000", "--oracles", "numeric", "--shrink-limit", "1",
            "--engine", "examples.broken_engines:softmax_diagonal_jacobian")  # fmt: skip
# Timings differ from run to run, and so does what the failure database held before a run (its
# history, not the campaign's).
TIMINGS = ("wall_seconds", "graphs_per_second", "backend_seconds", "median_seconds", "max_seconds", "shrink_seconds",
           "workers", "report_folder", "case_file", "minimal_file", "reproducer", "upstream", "shrink_steps", "seconds",
           "time_budget_seconds",
           "failure_database")  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AUDIT, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def report(folder: Path) -> dict:
    return without_keys(json.loads((folder / "report.json").read_text()), TIMINGS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("whole")
    whole = run(*CAMPAIGN, "--report", str(folder), "--no-failures")
    assert whole.returncode == 1, whole.stderr
    return report(folder)


def test_a_time_budget_stops_the_campaign_and_resume_finishes_it_as_if_uninterrupted(tmp_path, uninterrupted):
    budgeted = run(*CAMPAIGN, "--report", str(tmp_path / "campaign"), "--time", "1.5")
    partial = json.loads((tmp_path / "campaign" / "report.json").read_text())["summary"]
    assert partial["graphs"] < 3000 and partial["time_budget_seconds"] == 1.5 and not partial["interrupted"]
    assert stored_cases(tmp_path / "campaign") == partial["graphs"]
    assert "time budget" in (tmp_path / "campaign" / "report.md").read_text().splitlines()[0]
    assert budgeted.returncode in (0, 1)

    resumed = run("audit", "--resume", str(tmp_path / "campaign"))
    assert resumed.returncode == 1, resumed.stderr
    assert stored_cases(tmp_path / "campaign") == 3000  # nothing redone, nothing twice
    assert report(tmp_path / "campaign") == uninterrupted


def interrupt_after_50_cases(folder: Path, how: signal.Signals) -> int:
    process = subprocess.Popen([AUDIT, *CAMPAIGN, "--report", str(folder)], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (folder / "campaign.jsonl").exists() or stored_cases(folder) < 50):
        time.sleep(0.1)
    process.send_signal(how)
    return process.wait(60)


def test_a_campaign_stopped_by_sigint_resumes_to_the_uninterrupted_report(tmp_path, uninterrupted):
    folder = tmp_path / "campaign"
    assert interrupt_after_50_cases(folder, signal.SIGINT) == 128 + signal.SIGINT
    summary = json.loads((folder / "report.json").read_text())["summary"]
    assert summary["interrupted"] and 50 <= summary["graphs"] == stored_cases(folder) < 3000

    resumed = run("audit", "--resume", str(folder))
    assert resumed.returncode == 1, resumed.stderr
    assert stored_cases(folder) == 3000
    assert report(folder) == uninterrupted


def test_a_killed_main_process_loses_no_finished_case(tmp_path, uninterrupted):
    folder = tmp_path / "campaign"
    assert interrupt_after_50_cases(folder, signal.SIGKILL) == -signal.SIGKILL
    assert 50 <= stored_cases(folder) < 3000

    resumed = run("audit", "--resume", str(folder))
    assert resumed.returncode == 1, resumed.stderr
    assert stored_cases(folder) == 3000
    assert report(folder) == uninterrupted


def test_resuming_a_folder_without_a_campaign_is_one_line_and_exit_2(tmp_path):
    done = run("audit", "--resume", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "campaign.jsonl" in done.stderr and "Traceback" not in done.stderr
