"""What a user's machine does to the tool, survived (issue 19, items 5 to 9), each through the real
command in a subprocess:

- a full disk (simulated by a file size limit, RLIMIT_FSIZE: a write past it fails with EFBIG,
  as one on a full disk fails with ENOSPC) is one line on stderr and exit 4, no traceback; the
  campaign store keeps every finished case whole, and `--resume` takes the folder up and
  finishes the campaign as if nothing had happened; a full disk under the failure database
  (a full filesystem mounted there) is one line and exit 4 too, after the report is written;
- `--resume` takes up a folder that an interrupted write left behind (a `.tmp` file, and files of
  the audit's own that its manifest does not list yet), and still refuses one with a user's file;
- a corrupt campaign store: unreadable lines (binary or ASCII garbage) are skipped, counted in
  one warning line, and their cases audited again; a corrupt first line is refused in one line;
- `replay ... | head -1` and `failures list | head -1` end quietly (no BrokenPipeError);
- a duplicate in `--ops` is dropped;
- report.json is standard JSON: a non-finite number is the string "NaN", "Infinity" or
  "-Infinity", and the report still matches docs/report.schema.json.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from case_builders import without_keys
from report_schema import validate_report

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
CAMPAIGN = ("audit", "--graphs", "200", "--oracles", "numeric", "--shrink-limit", "1", "--workers", "2",
            "--engine", "examples.broken_engines:softmax_diagonal_jacobian", "--no-failures")  # fmt: skip
# What differs between two runs of one campaign: timings, where its files are, and the workers (a
# resume with nothing left to audit starts one).
TIMINGS = ("wall_seconds", "graphs_per_second", "backend_seconds", "median_seconds", "max_seconds", "shrink_seconds",
           "workers", "report_folder", "case_file", "minimal_file", "reproducer", "shrink_steps", "seconds",
           "time_budget_seconds", "failure_database", "ran_on")  # fmt: skip
EXIT_NO_SPACE = 4
# Runs the command after it with a file size limit: every write past LIMIT bytes of a file fails
# with EFBIG (and SIGXFSZ, which would kill the process instead, is ignored), the way writes on a
# full disk fail with ENOSPC. Children (workers, engine hosts) inherit both.
LIMITED = """\
import os, resource, signal, sys
limit = int(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
os.execv(sys.argv[2], sys.argv[2:])
"""


def run(*args: str, limit: int | None = None, cwd: Path = REPO, **options) -> subprocess.CompletedProcess:
    command = [AUDIT, *args]
    if limit is not None:
        command = [sys.executable, "-c", LIMITED, str(limit), *command]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, **options)


def report(folder: Path) -> dict:
    return without_keys(json.loads((folder / "report.json").read_text()), TIMINGS)


def errors(done: subprocess.CompletedProcess) -> list[str]:
    """The lines of stderr that are the tool's messages (not its progress lines), after checking
    that there is no traceback."""
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-3000:]
    return [line for line in done.stderr.splitlines() if line.startswith("autodiff-audit:")]


def store_lines(folder: Path) -> list[bytes]:
    return (folder / "campaign.jsonl").read_bytes().split(b"\n")


def stored_indices(folder: Path) -> list[int]:
    """The index of every case line of the campaign store; every line must be whole JSON."""
    data = (folder / "campaign.jsonl").read_bytes()
    assert data.endswith(b"\n"), data[-200:]  # no half line
    lines = data.decode("utf-8").splitlines()
    assert "campaign" in json.loads(lines[0])
    return [json.loads(line)["case"]["index"] for line in lines[1:]]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("whole") / "report"
    done = run(*CAMPAIGN, "--report", str(folder))
    assert done.returncode == 1, done.stderr[-3000:]
    return report(folder)


@pytest.fixture
def finished(tmp_path) -> Path:
    """A finished campaign's report folder, from the same command as `uninterrupted`."""
    folder = tmp_path / "campaign"
    done = run(*CAMPAIGN, "--report", str(folder))
    assert done.returncode == 1, done.stderr[-3000:]
    return folder


# ---- 5. a full disk ---------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_exit_4_and_resume_finishes_the_campaign(tmp_path, uninterrupted):
    folder = tmp_path / "campaign"
    # The store (about 140 kB for the whole campaign) cannot grow past 60 kB: an append fails.
    full = run(*CAMPAIGN, "--report", str(folder), limit=60_000)
    assert full.returncode == EXIT_NO_SPACE, full.stderr[-3000:]
    [line] = errors(full)
    assert "no space" in line and "campaign.jsonl" in line and str(folder) in line, line
    kept = stored_indices(folder)  # every case the store took is whole, each once
    assert 0 < len(kept) == len(set(kept)) < 200

    resumed = run("audit", "--resume", str(folder))
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert sorted(stored_indices(folder)) == list(range(200))
    assert report(folder) == uninterrupted

    # The campaign is done; its report (about 100 kB) cannot be written past 50 kB.
    full = run("audit", "--resume", str(folder), limit=50_000)
    assert full.returncode == EXIT_NO_SPACE, full.stderr[-3000:]
    [line] = errors(full)
    assert "no space" in line and "report.json" in line, line
    assert not list(folder.rglob("*.tmp"))  # a write that failed leaves no temporary file
    again = run("audit", "--resume", str(folder))
    assert again.returncode == 1, again.stderr[-3000:]
    assert sorted(stored_indices(folder)) == list(range(200))
    assert report(folder) == uninterrupted


def full_filesystem_available() -> bool:
    """Whether `unshare -rm` can give a command a private mount namespace here, in which a small
    full filesystem is mounted: it works for any user where user namespaces are enabled."""
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not full_filesystem_available(), reason="no private mount namespace (unshare -rm) here")
def test_a_full_disk_under_the_failure_database_is_one_line_and_exit_4_after_the_report(tmp_path):
    database = tmp_path / "database"
    database.mkdir()
    # The database's folder is a 16 kB filesystem, filled before the audit starts: every write of
    # the database fails with ENOSPC, and nothing else does (the report folder is elsewhere).
    fill = f"dd if=/dev/zero of={database}/fill bs=1k count=64 2>/dev/null"
    audit = shlex.join([AUDIT, *CAMPAIGN[:-1], "--graphs", "40", "--failures", str(database),
                        "--report", str(tmp_path / "report")])  # fmt: skip
    left = tmp_path / "left.txt"  # the files in the database when the audit is done (the mount goes with it)
    then_list = f"status=$?; find {database} -type f -printf '%P\\n' > {left}; exit $status"
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=16k tmpfs {database} && {fill}; {audit}; {then_list}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == EXIT_NO_SPACE, done.stderr[-3000:]
    [line] = errors(done)
    assert "no space left" in line and "failure database" in line and str(database) in line, line
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["summary"]["discrepancies"] > 0  # the findings are reported whatever the database's disk
    assert left.read_text().split() == ["fill"]  # no half-written file, no case without its entry


def interrupted_writes(folder: Path) -> None:
    """The folder as a full disk leaves it when the manifest can no longer be rewritten: the files
    written after its last rewrite are not listed, and a temporary file is left."""
    manifest = folder / ".autodiff-audit.json"
    listed = json.loads(manifest.read_text())
    listed["files"] = ["campaign.jsonl", "engine.log"]
    manifest.write_text(json.dumps(listed))
    assert list((folder / "cases").glob("case-*.json")) and (folder / "report.json").exists()
    (folder / ".autodiff-audit.json.k2j4x9.tmp").write_text('{"written_by": "autodi')
    (folder / "cases" / ".case-00199.json.a8f3e1.tmp").write_text('{"graph"')


def test_resume_takes_up_a_folder_an_interrupted_write_left_behind(finished, uninterrupted):
    interrupted_writes(finished)
    resumed = run("audit", "--resume", str(finished))
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    assert errors(resumed) == []
    assert report(finished) == uninterrupted
    assert not list(finished.rglob("*.tmp"))


def test_a_new_audit_takes_up_a_folder_an_interrupted_write_left_behind(finished):
    interrupted_writes(finished)
    done = run("audit", "--graphs", "3", "--oracles", "numeric", "--no-failures", "--report", str(finished))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (finished / "cases").exists()  # the earlier campaign's case files were its own


def test_a_users_file_still_makes_the_folder_refused_and_is_left_alone(finished):
    interrupted_writes(finished)
    (finished / "cases" / "mine.txt").write_text("keep me")
    (finished / "cases" / "case-00001.json.bak").write_text("keep me too")
    refused = run("audit", "--resume", str(finished))
    assert refused.returncode == 2, refused.stderr[-3000:]
    [line] = errors(refused)
    # Only the user's two files are named: the audit's own, listed or not, are not in the way.
    assert "did not write" in line and "case-00001.json.bak" in line and "and 1 more" in line, line
    assert (finished / "cases" / "mine.txt").read_text() == "keep me"
    assert (finished / "cases" / "case-00001.json.bak").read_text() == "keep me too"


# ---- 6. a corrupt store -----------------------------------------------------------------------


def test_resume_skips_unreadable_lines_says_how_many_and_audits_those_cases_again(finished, uninterrupted):
    lines = store_lines(finished)
    lost = [json.loads(lines[k])["case"]["index"] for k in (5, 40)]
    lines[5] = b"\xff\xfe\x00\x9c binary garbage \x80\xc3("  # not even UTF-8
    lines[40] = b"ASCII garbage {not json"
    (finished / "campaign.jsonl").write_bytes(b"\n".join(lines))

    resumed = run("audit", "--resume", str(finished))
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    [line] = errors(resumed)
    assert "warning" in line and "skipped 2 unreadable lines" in line and "campaign.jsonl" in line, line
    indices = [json.loads(text)["case"]["index"] for text in store_lines(finished)[1:] if text.startswith(b"{")]
    assert sorted(indices) == list(range(200)) and sorted(indices[-2:]) == sorted(lost)  # audited again
    assert report(finished) == uninterrupted


def test_a_corrupt_first_line_is_refused_in_one_line(finished):
    lines = store_lines(finished)
    lines[0] = b"\xff\xfe garbage where the configuration was \x80"
    (finished / "campaign.jsonl").write_bytes(b"\n".join(lines))
    refused = run("audit", "--resume", str(finished))
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.count("\n") == 1 and "campaign.jsonl" in refused.stderr, refused.stderr[-3000:]
    assert errors(refused)


# ---- 7. a closed pipe -------------------------------------------------------------------------


def piped_to_head(command: list[str], cwd: Path) -> tuple[str, str, int]:
    """`command | head -1` in a shell: head's output, the command's stderr and its exit status."""
    shell = f'{shlex.join(command)} | head -1; echo "status=${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(["bash", "-c", shell], cwd=cwd, capture_output=True, text=True, timeout=300)
    *stderr, status = done.stderr.rstrip("\n").split("\n")
    return done.stdout, "\n".join(stderr), int(status.removeprefix("status="))


def test_replay_piped_to_head_ends_quietly(tmp_path):
    # About 7 kB of output a case, 40 times: more than a pipe holds, so writes go on after head is gone.
    graph = {"inputs": [{"name": "x", "shape": [90]}], "nodes": [{"name": "n", "op": "neg", "inputs": ["x"]}],
             "output": "n"}  # fmt: skip
    (tmp_path / "case.json").write_text(json.dumps({"graph": graph, "values": {"x": [0.123456789] * 90}}))
    out, err, status = piped_to_head([AUDIT, "replay", *["case.json"] * 40, "--oracles", "numeric"], tmp_path)
    assert out.startswith("== case.json")
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert status == 141, err


def test_failures_list_piped_to_head_ends_quietly(tmp_path):
    from oracles.failures import FailureDatabase

    database = FailureDatabase(tmp_path / "failures")
    graph = {"inputs": [{"name": "x", "shape": []}], "nodes": [{"name": "n", "op": "neg", "inputs": ["x"]}],
             "output": "n"}  # fmt: skip
    for k in range(800):  # about 200 kB listed
        database.add("examples.broken_engines:neg_wrong", {"graph": graph, "values": {"x": k / 7}}, "gradient",
                     "neg", "n", "report")  # fmt: skip
    out, err, status = piped_to_head([AUDIT, "failures", "list", "--failures", str(tmp_path / "failures")], tmp_path)
    assert out.startswith("failure database")
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    assert status == 141, err


# ---- 8. a duplicate in --ops ------------------------------------------------------------------


def test_a_duplicate_op_is_dropped(tmp_path):
    done = run("audit", "--ops", "add,add,add,mult", "--graphs", "4", "--oracles", "numeric", "--no-failures",
               "--report", str(tmp_path / "report"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads((tmp_path / "report" / "report.json").read_text())
    assert written["summary"]["generator"]["ops"] == ["add", "mult"]


# ---- 9. standard JSON -------------------------------------------------------------------------

NON_FINITE_ENGINE = """\
import numpy as np

from oracles.selftest.planted import correct

name = "non_finite"
ops = correct.ops


def evaluate(graph, values, cotangent):
    value, gradients = correct.evaluate(graph, values, cotangent)
    used = {node["op"] for node in graph["nodes"]}
    if "sin" in used:  # a NaN value
        value = np.full(np.shape(value), np.nan)
    if "exp" in used:  # Infinity, -Infinity and NaN in a gradient
        first = next(iter(gradients))
        wrong = np.array(gradients[first], dtype=float).reshape(-1)
        wrong[:3] = [np.inf, -np.inf, np.nan][: wrong.size]
        gradients = {**gradients, first: wrong.reshape(np.shape(gradients[first]))}
    return value, gradients
"""


def strict_json(text: str):
    """`text` parsed as standard JSON: the NaN, Infinity and -Infinity tokens are refused."""

    def refuse(token):
        raise ValueError(f"not standard JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_report_json_is_standard_json_with_non_finite_numbers_as_strings(tmp_path):
    (tmp_path / "non_finite_engine.py").write_text(textwrap.dedent(NON_FINITE_ENGINE))
    folder = tmp_path / "report"
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = run("audit", "--engine", "non_finite_engine", "--graphs", "30", "--oracles", "numeric", "--shrink-limit",
               "1", "--no-failures", "--report", str(folder), cwd=tmp_path, env=environment)  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    text = (folder / "report.json").read_text()
    written = strict_json(text)
    assert '"NaN"' in text and '"Infinity"' in text  # the non-finite numbers are there, as strings
    assert written == json.loads(text)
    validate_report(folder / "report.json")
