"""The audit survives anything an engine or a user does, run as users run it: the installed
`autodiff-audit` in a subprocess, from the repository root or from an empty folder.

- an engine that hangs, exits, segfaults, raises KeyboardInterrupt or SystemExit or an
  exception that cannot be printed, floods stdout or returns no array is one finding on exactly
  the case it did it on; every other case is audited, and a report is written;
- an engine whose import exits or crashes is one line and exit 2, never a silent exit;
- SIGINT and SIGTERM stop the audit within about 2 s with a partial report marked
  interrupted, and no process outlives it;
- a report folder that holds someone else's files is refused, and so is a second audit on it;
- bad input is one line and exit 2, with sizes checked before anything is allocated;
- reports are the same whatever the hash seed and the number of workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from case_builders import without_keys

from examples.hostile_engines import SIN_GRAPH_OPS
from oracles.generate import GeneratorConfig, generate_case
from oracles.ops import OPS

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
HOSTILE = "examples.hostile_engines"
QUICK = ("--oracles", "numeric", "--shrink-limit", "1")  # finite differences load in no time


def run(*args: str, cwd: Path = REPO, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([AUDIT, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""
    return lines[0]


def report_of(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


# The graphs an audit of a hostile engine makes: of its few ops, in the table's order, as the audit does.
SIN_GRAPHS = GeneratorConfig(ops=tuple(op for op in OPS if op in SIN_GRAPH_OPS))


def graphs_with_sin(count: int) -> set[int]:
    return {i for i in range(count) if any(n["op"] == "sin" for n in generate_case(0, i, SIN_GRAPHS).graph["nodes"])}


def alive(pattern: str) -> list[str]:
    listing = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in listing.splitlines() if "pgrep" not in line]


# ---- the README as typed ----------------------------------------------------------------------


def test_the_showcase_command_runs_from_the_repository_root_and_its_printed_commands_work(tmp_path):
    report = tmp_path / "showcase"
    done = run("audit", "--engine", "examples.notebook_engine", "--graphs", "30", "--oracles", "torch,numeric",
               "--report", str(report))  # fmt: skip

    assert done.returncode == 1, done.stderr  # the notebook is wrong: a discrepancy, not a usage error
    assert "declined by the engine:" in done.stdout
    markdown = (report / "report.md").read_text()
    replay = next(line for line in markdown.splitlines() if line.startswith("autodiff-audit replay "))
    replayed = subprocess.run(replay.replace("autodiff-audit", AUDIT, 1), shell=True, cwd=REPO,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert replayed.returncode == 1 and "FINDING" in replayed.stdout, replayed.stderr
    reproducer = next(line for line in markdown.splitlines() if line.startswith("pytest "))
    tested = subprocess.run([sys.executable, "-m", *reproducer.split()], cwd=REPO, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert tested.returncode == 1
    assert "PluginError" not in tested.stdout and "AssertionError" in tested.stdout


def test_an_example_engine_is_found_from_the_repository_root(tmp_path):
    done = run("audit", "--engine", "examples.elementwise_engine", "--graphs", "10", *QUICK,
               "--report", str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 0, done.stderr


# ---- engines that hang or die --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("misdeed", "kind", "says"),
    [
        ("hangs", "timeout", "time limit of 1 s"),
        ("exits", "crash", "exited with status 3"),
        ("segfaults", "crash", "SIGSEGV"),
        ("interrupts", "crash", "KeyboardInterrupt"),
        ("system_exit", "crash", "SystemExit"),
        ("unprintable", "crash", "cannot be printed"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_misbehaving_engine_is_a_finding_on_exactly_the_graphs_it_misbehaves_on(tmp_path, misdeed, kind, says,
                                                                                   workers):  # fmt: skip
    report = tmp_path / "r"
    done = run("audit", "--engine", f"{HOSTILE}:{misdeed}", "--graphs", "12", "--timeout", "1",
               "--workers", workers, *QUICK, "--report", str(report))  # fmt: skip

    assert done.returncode == 1, done.stderr
    summary, discrepancies = report_of(report)["summary"], report_of(report)["discrepancies"]
    assert summary["graphs"] == 12 and summary["backends"]["references"] == ["numeric"]
    assert {d["index"] for d in discrepancies} == graphs_with_sin(12)
    assert {d["kind"] for d in discrepancies} == {kind}
    assert all(says in d["detail"] for d in discrepancies)


def test_the_references_that_ran_are_reported_when_the_engine_dies(tmp_path):
    report = tmp_path / "r"
    done = run("audit", "--engine", f"{HOSTILE}:segfaults", "--graphs", "8", "--workers", "2",
               "--oracles", "torch,numeric", "--shrink-limit", "0", "--report", str(report))  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert report_of(report)["summary"]["backends"]["references"] == ["torch", "numeric"]


def test_an_engine_that_floods_stdout_writes_to_the_engine_log_not_the_terminal(tmp_path):
    report = tmp_path / "r"
    done = run("audit", "--engine", f"{HOSTILE}:floods_stdout", "--graphs", "8", *QUICK, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) + len(done.stderr) < 20_000
    assert (report / "engine.log").stat().st_size >= 1_000_000


def test_an_engine_that_returns_no_array_is_a_shape_finding(tmp_path):
    report = tmp_path / "r"
    done = run("audit", "--engine", f"{HOSTILE}:returns_no_array", "--graphs", "8", *QUICK, "--report", str(report))
    assert done.returncode == 1, done.stderr
    assert {d["kind"] for d in report_of(report)["discrepancies"]} == {"shape"}


def test_the_processes_a_hanging_engine_started_are_killed_with_it(tmp_path):
    done = run("audit", "--engine", f"{HOSTILE}:leaves_a_child", "--graphs", "6", "--timeout", "1", *QUICK,
               "--report", str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 1, done.stderr
    time.sleep(1)
    assert alive("time.sleep\\(1000\\)") == []


def test_accepts_cannot_change_the_recorded_case(tmp_path):
    report = tmp_path / "r"
    done = run("audit", "--engine", f"{HOSTILE}:mutating_accepts", "--graphs", "3", *QUICK, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert report_of(report)["summary"]["checks"] > 0  # the graphs were checked as generated, not emptied


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("import sys\nsys.exit(0)\n", "SystemExit: 0"),
        ("import sys\nsys.exit(7)\n", "SystemExit: 7"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("import os\nos._exit(0)\n", "died while importing it"),
        ("import ctypes\nctypes.string_at(0)\n", "SIGSEGV"),
    ],
)
def test_an_engine_whose_import_exits_or_crashes_is_a_usage_error(tmp_path, source, says):
    (tmp_path / "bad_engine.py").write_text(source)
    line = one_line_error(run("audit", "--engine", "bad_engine", "--graphs", "3", *QUICK, cwd=tmp_path))
    assert "bad_engine" in line and says in line
    assert not (tmp_path / "audit-report").exists()


def test_replay_survives_an_engine_that_dies(tmp_path):
    index = min(graphs_with_sin(12))
    case = tmp_path / "case.json"
    case.write_text(json.dumps(_case_json(index)))
    done = run("replay", str(case), "--engine", f"{HOSTILE}:exits", "--oracles", "numeric")
    assert done.returncode == 1 and "exited with status 3" in done.stdout, done.stderr


def test_the_pytest_plugin_survives_an_engine_that_segfaults(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--audit-engine", f"{HOSTILE}:segfaults",
         "--audit-oracles", "numeric", "--audit-graphs", "12"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    failed = len(graphs_with_sin(12))
    assert done.returncode == 1 and f"{failed} failed, {12 - failed} passed" in done.stdout, done.stdout[-3000:]


def test_the_pytest_plugin_turns_a_hang_into_a_timeout_failure(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--audit-engine", f"{HOSTILE}:hangs",
         "--audit-oracles", "numeric", "--audit-graphs", "6", "--audit-timeout", "1"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    failed = len(graphs_with_sin(6))
    assert done.returncode == 1 and f"{failed} failed, {6 - failed} passed" in done.stdout, done.stdout[-3000:]
    assert "timeout" in done.stdout


def _case_json(index: int) -> dict:
    from oracles.format import case_to_json

    return case_to_json(generate_case(0, index, SIN_GRAPHS))


# ---- signals ----------------------------------------------------------------------------------------


@pytest.fixture
def start_long_audit():
    """Starts a million-graph audit; one still running when the test ends (a failed test) is
    killed with its session, so no failure leaves it auditing."""
    started: list[subprocess.Popen] = []

    def start(report: Path) -> subprocess.Popen:
        started.append(subprocess.Popen(
            [AUDIT, "audit", "--graphs", "1000000", "--workers", "2", *QUICK, "--report", str(report)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        ))  # fmt: skip
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def wait_for_progress(report: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not (report / "engine.log").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(4)  # the workers have started and audited some graphs
    assert process.poll() is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_audit_within_2_s_with_a_partial_report_and_no_process_left(
    tmp_path, signum, start_long_audit
):
    report = tmp_path / "r"
    process = start_long_audit(report)
    wait_for_progress(report, process)

    sent = time.monotonic()
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    stopped = time.monotonic() - sent

    assert stopped < 2.5, stopped
    assert process.returncode == 128 + signum, err
    summary = report_of(report)["summary"]
    assert summary["interrupted"] and 0 < summary["graphs"] < 1_000_000
    assert "INTERRUPTED" in (report / "report.md").read_text()
    time.sleep(1.5)
    assert alive(str(report)) == []


def test_ctrl_c_to_the_process_group_stops_everything(tmp_path, start_long_audit):
    report = tmp_path / "r"
    process = start_long_audit(report)
    wait_for_progress(report, process)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    process.communicate(timeout=30)
    assert process.returncode == 130
    assert report_of(report)["summary"]["interrupted"]
    time.sleep(1.5)
    assert alive(str(report)) == []


# ---- report folders ------------------------------------------------------------------------------


def test_a_folder_with_someone_elses_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "mine.txt").write_text("keep me")
    (tmp_path / "notes.md").write_text("mine too")
    line = one_line_error(run("audit", "--graphs", "2", *QUICK, "--report", ".", cwd=tmp_path))
    assert "did not write" in line
    assert (tmp_path / "cases" / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases", "notes.md"]


def test_an_audit_replaces_only_its_own_earlier_files(tmp_path):
    report = tmp_path / "r"
    first = run("audit", "--engine", "examples.broken_engines:power_without_x", "--graphs", "6", "--ops", "power,add",
                *QUICK, "--report", str(report))  # fmt: skip
    assert first.returncode == 1 and list((report / "cases").iterdir())
    second = run("audit", "--graphs", "2", *QUICK, "--report", str(report))
    assert second.returncode == 0, second.stderr
    assert not (report / "cases").exists()  # the earlier audit's cases are gone: they were its own


def test_a_second_audit_on_the_same_folder_is_refused_while_the_first_runs(tmp_path, start_long_audit):
    report = tmp_path / "r"
    process = start_long_audit(report)
    try:
        wait_for_progress(report, process)
        line = one_line_error(run("audit", "--graphs", "2", *QUICK, "--report", str(report)))
        assert "another audit" in line and str(process.pid) in line
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert report_of(report)["summary"]["interrupted"]


# ---- stable reports ------------------------------------------------------------------------------

TIMINGS = ("wall_seconds", "graphs_per_second", "backend_seconds", "median_seconds", "max_seconds", "shrink_seconds",
           "workers", "report_folder", "case_file", "minimal_file", "reproducer", "shrink_steps",
           "ran_on", "failure_database")  # fmt: skip


def without_timings(value):
    return without_keys(value, TIMINGS)


def test_report_json_is_the_same_across_hash_seeds_and_worker_counts(tmp_path):
    reports = []
    for hash_seed, workers in (("0", "1"), ("1", "2"), ("12345", "2")):
        report = tmp_path / f"r{hash_seed}"
        done = run("audit", "--engine", "examples.broken_engines:softmax_diagonal_jacobian", "--graphs", "40",
                   "--workers", workers, "--oracles", "torch,numeric", "--report", str(report),
                   env={"PYTHONHASHSEED": hash_seed})  # fmt: skip
        assert done.returncode == 1, done.stderr
        reports.append(without_timings(report_of(report)))
    assert reports[0] == reports[1] == reports[2]


# ---- bad input: one line, exit 2 ------------------------------------------------------------------


def small_case(**changes) -> dict:
    case = {
        "graph": {"inputs": [{"name": "x", "shape": [2]}],
                  "nodes": [{"name": "p", "op": "power", "inputs": ["x"], "attrs": {"exponent": 2}}], "output": "p"},
        "values": {"x": [1.0, 2.0]},
    }  # fmt: skip
    case.update(changes)
    return case


BAD_CASES = {
    "negative seed": small_case(seed=[-1, 5]),
    "fractional seed": small_case(seed=[1.5, 2]),
    "seed of junk": small_case(seed=[{"a": 1}, None, "x"]),
    "huge exponent": small_case(graph={**small_case()["graph"], "nodes": [
        {"name": "p", "op": "power", "inputs": ["x"], "attrs": {"exponent": 10**400}}]}),
    "a broadcast of 900 million elements": {
        "graph": {"inputs": [{"name": "a", "shape": [30000, 1]}, {"name": "b", "shape": [1, 30000]}],
                  "nodes": [{"name": "s", "op": "add", "inputs": ["a", "b"]}], "output": "s"},
        "values": {"a": [[0.5]] * 30000, "b": [[0.5] * 30000]},
    },
    "a triple-quoted name": small_case(graph={"inputs": [{"name": '"""\nimport os; os.system("echo owned")\n#',
                                                         "shape": [2]}], "nodes": [], "output": "x"}),
    "an ANSI name": small_case(graph={"inputs": [{"name": "\x1b[31mred\u202e", "shape": [2]}], "nodes": [],
                                      "output": "x"}),
    "a megabyte name": small_case(graph={"inputs": [{"name": "n" * 1_000_000, "shape": [2]}], "nodes": [],
                                         "output": "x"}),
}  # fmt: skip


@pytest.mark.parametrize("what", BAD_CASES)
def test_a_bad_case_is_one_line_and_exit_2_in_under_a_second(tmp_path, what):
    path = tmp_path / "case.json"
    text = json.dumps(BAD_CASES[what]) if what != "huge exponent" else _with_huge_exponent()
    path.write_text(text)
    start = time.monotonic()
    line = one_line_error(run("replay", str(path)))
    assert time.monotonic() - start < 3  # Python's start-up included; no backend is loaded
    assert len(line) < 500 and all(c.isprintable() for c in line)


def _with_huge_exponent() -> str:
    return json.dumps(small_case()).replace('"exponent": 2', '"exponent": ' + "9" * 400)


def test_json_nested_100000_deep_is_one_line(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in one_line_error(run("replay", str(path)))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--graphs", "1000000000000"), "--graphs"),
        (("--max-dim", "1000", "--max-rank", "3"), "--max-dim 1000"),
        (("--workers", "100"), "--workers 100"),
        (("--timeout", "0"), "--timeout"),
        # A transpose of fewer than two axes is never generated: these flags make no graph.
        (("--ops", "transpose", "--max-rank", "1"), "the ops transpose cannot build 1..12 op nodes of rank at most 1"),
    ],
)
def test_limits_are_checked_before_anything_is_allocated(tmp_path, args, says):
    start = time.monotonic()
    line = one_line_error(run("audit", *args, *QUICK, "--report", str(tmp_path / "r"), cwd=tmp_path))
    assert says in line and time.monotonic() - start < 5
    assert not (tmp_path / "r").exists()


def test_replay_abbreviates_a_large_array_on_the_terminal(tmp_path):
    path = tmp_path / "big.json"
    size = 200_000
    graph = {"inputs": [{"name": "x", "shape": [size]}], "nodes": [{"name": "n", "op": "neg", "inputs": ["x"]}],
             "output": "n"}  # fmt: skip
    case = {"graph": graph, "values": {"x": [0.5] * size}}
    path.write_text(json.dumps(case))
    done = run("replay", str(path), "--oracles", "numeric")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) < 10_000 and "abbreviated" in done.stdout


def test_a_hostile_engine_name_reaches_no_writer_unescaped(tmp_path):
    (tmp_path / "named_engine.py").write_text(
        "from examples.broken_engines import power_without_x as _broken\n"
        'name = \'"""\\nimport os; os.system("touch OWNED")\\n#\\x1b[31m | **bold** # [link](x)\'\n'
        "ops = {'power', 'add'}\n"
        "evaluate = _broken.evaluate\n"
    )
    report = tmp_path / "r"
    done = run("audit", "--engine", "named_engine", "--graphs", "6", "--oracles", "torch,numeric",
               "--report", str(report), cwd=tmp_path, env={"PYTHONPATH": str(REPO)})  # fmt: skip
    assert done.returncode == 1, done.stderr
    markdown = (report / "report.md").read_text()
    assert "\x1b" not in done.stdout + done.stderr and "\x1b" not in markdown
    assert "**bold**" not in markdown and "[link](x)" not in markdown
    reproducers = list((report / "reproducers").iterdir())
    assert reproducers
    for reproducer in reproducers:
        compile(reproducer.read_text(), str(reproducer), "exec")  # still Python, and:
        subprocess.run([sys.executable, "-c", f"import runpy; runpy.run_path({str(reproducer)!r})"], cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=120)  # fmt: skip
    assert not (tmp_path / "OWNED").exists()


# ---- the README's showcase, exactly as printed -------------------------------------------------------


def readme_block_after(marker: str, language: str) -> str:
    text = (REPO / "README.md").read_text()
    after = text[text.index(marker) :]
    start = after.index(f"```{language}\n") + len(f"```{language}\n")
    return after[start : after.index("```", start)]


def test_the_readme_showcase_prints_what_the_readme_shows_and_its_replay_command_works(tmp_path):
    # The README's command, typed in a copy of the repository's examples (its report folder is ./audit-report).
    command = readme_block_after("is the showcase:", "bash").strip()
    assert command == "autodiff-audit audit --engine examples.notebook_engine"
    (tmp_path / "examples").symlink_to(REPO / "examples")
    done = run(*command.split()[1:], cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    markdown = (tmp_path / "audit-report" / "report.md").read_text()
    assert readme_block_after("expected against actual:", "text") in markdown
    report = report_of(tmp_path / "audit-report")
    shrunk = {(m["index"], m["kind"], m["backend"], m["op"]): m for m in report["minimal_cases"] if m["minimal"]}
    for group in report["summary"]["groups"]:  # a group's minimal case is one of its graphs, with its op
        minimal = shrunk.get((group["minimal_from"], group["kind"], group["backend"], group["op"]))
        if minimal is None:
            continue
        assert group["minimal_from"] in group["graphs"]
        if group["op"]:
            assert group["op"] in {node["op"] for node in minimal["minimal"]["graph"]["nodes"]}
    replay = readme_block_after("it replays with", "bash").strip()
    replayed = run(*replay.split()[1:], cwd=tmp_path)
    assert replayed.returncode == 1 and "FINDING gradient" in replayed.stdout, replayed.stderr


def test_a_manifest_cannot_make_an_audit_delete_files_outside_its_folder(tmp_path):
    report = tmp_path / "r"
    report.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (report / ".autodiff-audit.json").write_text(
        json.dumps({"written_by": "autodiff-audit", "files": ["../precious.txt"]})
    )
    done = run("audit", "--graphs", "2", *QUICK, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep"
