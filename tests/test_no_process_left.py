"""No process an engine starts outlives the audit, or holds its output open (issue 19, item 4).

The engines of examples/hostile_engines.py start a child that sleeps 10 minutes when they are
loaded: `starts_a_child` in the engine host's process group, `starts_an_escaped_child` in a
session of its own. Each test gives the child's command line a marker of its own
($HOSTILE_CHILD_TAG), runs the installed `autodiff-audit` as a user does, and looks for that
marker in /proc afterwards. A finalizer kills whatever carries the marker, so a failing test
leaves nothing behind either.

A process that no kill can end (`starts_an_unkillable_child` freezes its child in a cgroup, as a
process stuck in the kernel is) is named on stderr and in the report, pid by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
HOSTILE = "examples.hostile_engines"
ENGINES = ["starts_a_child", "starts_an_escaped_child"]

pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="looks for processes in /proc")


def marked(marker: str) -> list[int]:
    """The pids of the live processes whose command line holds `marker` (a zombie's is empty)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as file:
                    if marker.encode() in file.read():
                        pids.append(int(name))
            except OSError:
                pass  # gone since the listing
    return pids


def left_behind(marker: str, grace: float = 2.0) -> list[int]:
    """The marked processes still running `grace` seconds from now (a kill is not instant)."""
    deadline = time.monotonic() + grace
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return marked(marker)


@pytest.fixture
def marker():
    """A marker for the command lines of the children the engine starts; they are killed after the test."""
    tag = f"autodiff-audit-test-{uuid.uuid4().hex}"
    yield tag
    for pid in marked(tag):
        with contextlib.suppress(OSError):  # gone since
            os.kill(pid, signal.SIGKILL)


def audit_command(engine: str, report: Path, graphs: int = 6) -> list[str]:
    return [AUDIT, "audit", "--engine", f"{HOSTILE}:{engine}", "--graphs", str(graphs),
            "--oracles", "torch,numeric", "--report", str(report), "--no-failures"]  # fmt: skip


def environment(marker: str) -> dict[str, str]:
    return {**os.environ, "HOSTILE_CHILD_TAG": marker}


@pytest.mark.parametrize("engine", ENGINES)
def test_no_process_the_engine_started_outlives_an_audit_that_finishes(tmp_path, marker, engine):
    output = tmp_path / "output"
    # Its output goes to a file: a pipe would stay open as long as a process left behind holds it.
    with output.open("w") as file:
        done = subprocess.run(audit_command(engine, tmp_path / "r"), cwd=REPO, env=environment(marker),
                              stdout=file, stderr=subprocess.STDOUT, timeout=300)  # fmt: skip

    assert done.returncode == 0, output.read_text()[-2000:]
    assert "no discrepancies" in output.read_text()
    assert left_behind(marker) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_no_process_the_engine_started_outlives_an_audit_stopped_by_sigterm(tmp_path, marker, engine):
    report, output = tmp_path / "r", tmp_path / "output"
    # Its output goes to a file: a pipe would stay open as long as a process left behind holds it.
    with output.open("w") as file:
        process = subprocess.Popen(audit_command(engine, report, graphs=1_000_000), cwd=REPO, env=environment(marker),
                                   stdout=file, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        # The workers' engines are loaded (the probe's child may be gone already) and auditing.
        deadline = time.monotonic() + 120
        while not ((report / "engine.log").exists() and marked(marker)) and time.monotonic() < deadline:
            assert process.poll() is None, output.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(2)
        assert process.poll() is None, output.read_text()[-2000:]

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 128 + signal.SIGTERM, output.read_text()[-2000:]
    assert left_behind(marker) == []


def test_an_audit_piped_into_tee_returns_when_it_is_done(tmp_path, marker):
    # The escaped child outlived its engine host, and so held the output of the first host's
    # (the one that reads the engine's name and ops before the audit starts), which was the audit's.
    log, audit = tmp_path / "log", shlex.join(audit_command("starts_an_escaped_child", tmp_path / "r"))
    command = f"set -o pipefail; {audit} 2>&1 | tee {shlex.quote(str(log))}"
    # As subprocess.run(shell=True, timeout=...), but a timeout kills the whole pipeline, not just the shell.
    pipeline = subprocess.Popen(command, shell=True, executable="/bin/bash", cwd=REPO, env=environment(marker),
                                stdout=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        pipeline.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("`autodiff-audit audit ... | tee log` did not return within 60 s: a process holds its output open")
    finally:
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
            pipeline.wait()

    assert pipeline.returncode == 0, log.read_text()[-2000:]
    assert "report:" in log.read_text()


FREEZERS = Path("/sys/fs/cgroup/freezer")  # cgroup v1's freezer, where the machine mounts it


@pytest.fixture
def freezer():
    """A freezer cgroup of the test's own; afterwards it is thawed (a process killed while frozen
    dies then) and removed."""
    folder = FREEZERS / f"autodiff-audit-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir()
    except OSError as error:
        pytest.skip(f"cannot make a freezer cgroup in {FREEZERS}: {error.strerror}")
    yield folder
    (folder / "freezer.state").write_text("THAWED")
    deadline = time.monotonic() + 10
    while (folder / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
        time.sleep(0.1)
    folder.rmdir()


def test_a_process_no_kill_can_end_is_named_on_stderr_and_in_the_report(tmp_path, marker, freezer):
    report, output = tmp_path / "r", tmp_path / "output"
    with output.open("w") as file:
        done = subprocess.run([*audit_command("starts_an_unkillable_child", report, graphs=2), "--workers", "1"],
                              cwd=REPO, env={**environment(marker), "HOSTILE_FREEZER": str(freezer)},
                              stdout=file, stderr=subprocess.STDOUT, timeout=300)  # fmt: skip
    text = output.read_text()
    assert done.returncode == 0, text[-2000:]  # the engine is correct: its leftovers are a warning
    frozen = sorted(int(pid) for pid in (freezer / "cgroup.procs").read_text().split())
    assert len(frozen) == 2, frozen  # the child of the host that read the engine's name, and the worker's host's
    named = [f"pid {pid} (python" for pid in frozen]
    warnings = [line for line in text.splitlines() if "left 1 process running" in line]
    assert len(warnings) == 2 and all(any(n in w for w in warnings) for n in named), text[-2000:]
    left = json.loads((report / "report.json").read_text())["summary"]["backends"]["left_running"]
    assert [entry.split(" (")[0] for entry in left] == [f"pid {pid}" for pid in frozen]
    assert all(entry.startswith(n) for entry, n in zip(left, named))
    assert "**left running:** 2 processes" in (report / "report.md").read_text()
