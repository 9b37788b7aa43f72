"""An audit on a real Dask cluster: a scheduler and two workers, each a process on localhost,
started the way a maintainer starts them (`dask scheduler`, `dask worker`). One worker is
killed in the middle of the audit, nanny and all, as when a machine is lost: Dask reruns its
cases on the other, no case is lost, and the report is the one the process pool writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from case_builders import stored_cases, without_keys

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUDIT = (str(BIN / "autodiff-audit"), "audit", "--graphs", "1500", "--oracles", "numeric", "--shrink-limit", "1",
         "--engine", "examples.broken_engines:softmax_diagonal_jacobian")  # fmt: skip
WHERE = ("wall_seconds", "graphs_per_second", "backend_seconds", "median_seconds", "max_seconds", "shrink_seconds",
         "workers", "ran_on", "report_folder", "case_file", "minimal_file", "reproducer", "upstream", "shrink_steps",
           "failure_database")  # fmt: skip
STARTUP_SECONDS = 60


def report(folder: Path) -> dict:
    return without_keys(json.loads((folder / "report.json").read_text()), WHERE)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers, each in a process group of its own (so one
    can be killed whole); all of them are killed when the test ends, whatever happened."""
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    groups: dict[str, subprocess.Popen] = {}

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "w") as log:
            groups[name] = subprocess.Popen([str(BIN / "dask"), *args], cwd=REPO, stdout=log, stderr=log,
                                            start_new_session=True)  # fmt: skip

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file))  # fmt: skip
        wait_until(scheduler_file.exists, STARTUP_SECONDS, "the scheduler")
        for name in ("worker-a", "worker-b"):
            start(name, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--nworkers", "1",
                  "--no-dashboard", "--name", name, "--death-timeout", "60")  # fmt: skip
        for log in (logs / "worker-a.log", logs / "worker-b.log"):
            wait_until(lambda log=log: "Registered to" in log.read_text(), STARTUP_SECONDS, log.stem)
        address = json.loads(scheduler_file.read_text())["address"]
        yield address, groups
    finally:
        for process in groups.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def test_an_audit_on_a_dask_cluster_survives_a_dead_worker_and_writes_the_local_report(tmp_path, cluster):
    address, groups = cluster
    local = subprocess.run([*AUDIT, "--report", str(tmp_path / "local")], cwd=REPO, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert local.returncode == 1, local.stderr

    folder = tmp_path / "on-the-cluster"
    audit = subprocess.Popen([*AUDIT, "--cluster", address, "--report", str(folder)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_until(lambda: stored_cases(folder) >= 100 or audit.poll() is not None, 300, "the first cases")
        assert audit.poll() is None, "the audit ended before a worker could be killed"
        os.killpg(groups["worker-b"].pid, signal.SIGKILL)  # a lost machine: its nanny goes too
        _, err = audit.communicate(timeout=600)
    finally:
        audit.kill()
    assert audit.returncode == 1, err
    assert stored_cases(folder) == 1500  # every case, once
    assert report(folder) == report(tmp_path / "local")
    summary = json.loads((folder / "report.json").read_text())["summary"]
    assert summary["ran_on"] == f"the Dask cluster at {address} of 2 workers"
    assert "Traceback" not in err


def test_a_cluster_that_is_not_there_is_one_line_and_exit_3(tmp_path):
    done = subprocess.run([*AUDIT, "--cluster", "tcp://127.0.0.1:9", "--report", str(tmp_path / "r")], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "tcp://127.0.0.1:9" in done.stderr, done.stderr


def test_a_worker_without_backends_loses_its_cases_rather_than_ending_the_audit(monkeypatch):
    """A worker that joins a cluster but cannot load the backends (the engine is not installed
    there) fails its tasks with BackendsUnavailable, which both kinds of workers count as lost
    cases: a crash finding in the report, never a traceback."""
    from concurrent.futures import Future

    from oracles import workers
    from oracles.cluster import DaskWorkers

    with pytest.raises(workers.BackendsUnavailable, match="never loaded"):
        workers.run_with_backends("an-audit-this-worker-never-joined", lambda backends: None)
    failed: Future = Future()
    failed.set_exception(ModuleNotFoundError("No module named 'mypkg'"))
    monkeypatch.setitem(workers._loaded, "an-audit-whose-loading-failed", (failed, threading.Lock()))
    with pytest.raises(workers.BackendsUnavailable, match="mypkg"):
        workers.run_with_backends("an-audit-whose-loading-failed", lambda backends: None)
    assert workers.BackendsUnavailable in DaskWorkers.lost and workers.BackendsUnavailable in workers.ProcessPool.lost
