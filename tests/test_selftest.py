"""`autodiff-audit selftest` measures what an audit with given settings catches, on the project's
planted bugs: at least 25, across local rules, composition, broadcasting, dtype and a crash, and
in forward mode (jvp) and second order (hvp). With the default settings it catches every one and
blames it right (its op, and its mode); with `--max-rank 0` the bugs that need tensors survive,
are listed, and the exit status is 1; with `--modes vjp` so do the bugs in forward mode and
second order.

Each selftest run hunts all 79 planted bugs, so the runs are kept few and cheap: one root seed
(a bug is then caught on seed 0 or not at all, which is at least as strict as "on some seed"),
and one run with the default settings, shared by the two tests that read it. The bugs of the
other modes are also hunted alone, on small graphs of their ops.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oracles.generate import GeneratorConfig
from oracles.selftest.planted import MODE_BUGS
from oracles.selftest.run import battery, run_selftest

AUDIT = str(Path(sys.executable).parent / "autodiff-audit")
ONE_SEED = ("--seeds", "1")


def selftest(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "selftest"
    tmp_path.mkdir(exist_ok=True)
    done = subprocess.run([AUDIT, "selftest", *ONE_SEED, "--report", str(report), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert (report / "report.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return done, json.loads((report / "report.json").read_text())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    """The selftest with the default settings (every reference, full mode), on one seed."""
    directory = tmp_path_factory.mktemp("default")
    done, report = selftest(directory, "--oracles", "jax,torch,numeric", "--mode", "full")
    return done, report, directory


def test_the_battery_has_at_least_25_bugs_in_every_category():
    bugs = battery()
    assert len(bugs) >= 25
    assert {bug.category for bug in bugs} == {"local rule", "composition", "broadcasting", "dtype", "crash"}
    assert len({bug.op for bug in bugs if bug.category == "local rule"}) >= 25  # nearly every op of the table


def test_the_default_settings_catch_every_planted_bug_and_blame_it_right(default_run):
    done, report, directory = default_run

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert report["summary"]["kill_rate"] == 1.0 and report["summary"]["survivors"] == []
    assert all(row["blamed_right"] for row in report["bugs"]), [
        r["bug"] for r in report["bugs"] if not r["blamed_right"]
    ]
    # A bug in forward mode or second order is blamed in its own mode (a wrong VJP may show first in
    # the HVP, which differentiates it: div_denominator_sign, on a case where a is 1e-10).
    assert all(row["blamed_mode"] == row["mode"] for row in report["bugs"] if row["bug"] in MODE_BUGS)
    modes = report["summary"]["modes"]
    assert set(modes) == {"vjp", "jvp", "hvp"} and all(c["bugs"] == c["caught"] > 0 for c in modes.values())
    assert all(row["minimal_op_nodes"] <= 3 for row in report["bugs"])
    assert "kill rate 100%" in done.stdout
    assert (directory / "selftest" / "report.md").read_text().startswith("# Selftest: ")


def test_scalar_graphs_and_reverse_mode_alone_cannot_see_their_bugs_and_say_so(tmp_path):
    # A bug that needs tensors cannot show on scalar graphs however many are tried, nor a bug in
    # forward mode or second order with only reverse mode checked; a bug of the graph's structure
    # or its dtype shows in almost any graph. (One op's bug waits for its op: one of 45 at rank 0.)
    done, report = selftest(
        tmp_path, "--oracles", "torch,numeric", "--max-rank", "0", "--graphs", "40", "--modes", "vjp"
    )

    assert done.returncode == 1
    survivors = set(report["summary"]["survivors"])
    assert {"transpose_with_permutation", "dot_crashes_on_vectors", "unbroadcast_takes_first"} <= survivors
    assert not survivors & {"fan_out_overwritten", "same_operand_overwritten", "other_dtype"}
    assert set(MODE_BUGS) <= survivors  # sigmoid_vjp_value_constant, say, shows on the first scalar graph with hvp
    assert report["summary"]["modes"]["jvp"] == {"bugs": 9, "caught": 0}
    assert report["summary"]["settings"]["--modes"] == "vjp"
    assert all(not row["mode_checked"] for row in report["bugs"] if row["bug"] in MODE_BUGS)
    assert "survived (these settings cannot see them): " in done.stdout
    assert "jvp, hvp not among the modes checked (--modes)" in done.stdout


def test_tiered_mode_catches_every_bug_full_mode_catches_with_the_same_blame(default_run, tmp_path):
    """Tiered mode checks most graphs without JAX; the planted bugs show that it loses nothing:
    each one is caught at the same graph, diagnosed the same, and shrunk to the same case."""
    full, full_report, _ = default_run
    tiered, tiered_report = selftest(
        tmp_path, "--oracles", "jax,torch,numeric", "--mode", "tiered", "--jax-sample", "0.05"
    )
    assert full.returncode == tiered.returncode == 0, full.stdout[-2000:] + tiered.stdout[-2000:]

    same = (
        "bug", "caught_by_seed", "kind", "blamed_op", "blamed_mode", "blamed_right", "minimal_op_nodes",
        "minimal_elements",
    )  # fmt: skip
    assert [{k: row[k] for k in same} for row in tiered_report["bugs"]] == [
        {k: row[k] for k in same} for row in full_report["bugs"]
    ]
    assert full_report["summary"]["jax_fraction"] == 1.0
    assert tiered_report["summary"]["jax_fraction"] < 0.5
    assert "--mode tiered" in tiered.stdout
    assert "JAX checked" in (tmp_path / "selftest" / "report.md").read_text()


def test_a_reference_answers_each_case_once_per_worker_and_its_answers_cannot_be_changed():
    import numpy as np

    from oracles.selftest.run import RememberedAnswers

    class Counting:
        name, calls = "counting", 0

        def evaluate(self, graph, values, cotangent):
            self.calls += 1
            return values["x"] * 2, {"x": np.full_like(values["x"], 2.0)}

    graph = {"inputs": [{"name": "x", "shape": [2]}], "output": "x", "nodes": [], "dtype": "float64"}
    reference = RememberedAnswers(Counting())
    x, cotangent = np.array([1.0, 3.0]), np.ones(2)
    value, gradients = reference.evaluate(graph, {"x": x}, cotangent)
    value[:] = 0.0  # a caller that writes into what it got
    gradients["x"][:] = 0.0
    again, gradients_again = reference.evaluate(graph, {"x": x.copy()}, cotangent)
    assert again.tolist() == [2.0, 6.0] and gradients_again["x"].tolist() == [2.0, 2.0]
    assert reference.plugin.calls == 1 and reference.name == "counting"
    reference.evaluate(graph, {"x": np.array([1.0, 3.5])}, cotangent)  # another case
    assert reference.plugin.calls == 2


def test_each_bug_in_forward_mode_or_second_order_is_caught_and_blamed_on_its_op_and_mode():
    """The selftest restricted to the bugs of forward mode and second order, on graphs of at most
    two nodes of their ops (each shows within 41 graphs of seed 0): each is caught, and its first
    catch is diagnosed in its own mode (jvp, or hvp; mode-mismatch counts when it is in that mode)
    and on its op."""
    generator = GeneratorConfig(ops=tuple(sorted({bug.op for bug in MODE_BUGS.values()})), max_nodes=2)
    results, interrupted = run_selftest(
        generator, 50, ("torch", "numeric"), workers=2, seeds=(0,), bugs=tuple(MODE_BUGS)
    )  # fmt: skip

    assert not interrupted and [r.bug for r in results] == list(MODE_BUGS)
    assert {r.mode for r in results} == {"jvp", "hvp"}
    assert [r.bug for r in results if not r.caught] == []
    assert [(r.bug, r.kind, r.blamed_op, r.blamed_mode) for r in results if not r.blamed_right] == []
    assert all(r.blamed_mode == r.mode and r.blamed_op == MODE_BUGS[r.bug].op for r in results)


def test_a_reference_answers_each_forward_mode_and_second_order_question_once_per_worker():
    import numpy as np

    from oracles.selftest.run import RememberedAnswers

    class Counting:
        name, calls = "counting", 0

        def jvp(self, graph, values, tangents):
            self.calls += 1
            return values["x"] * 2, tangents["x"] * 2

        def hvp(self, graph, values, cotangent, tangents):
            self.calls += 1
            return {"x": np.zeros_like(values["x"])}

    graph = {"inputs": [{"name": "x", "shape": [2]}], "output": "x", "nodes": [], "dtype": "float64"}
    reference = RememberedAnswers(Counting())
    x, cotangent, t = np.array([1.0, 3.0]), np.ones(2), {"x": np.array([0.5, -1.0])}
    _, product = reference.jvp(graph, {"x": x}, t)
    product[:] = 0.0  # a caller that writes into what it got
    assert reference.jvp(graph, {"x": x}, {"x": t["x"].copy()})[1].tolist() == [1.0, -2.0]
    reference.hvp(graph, {"x": x}, cotangent, t)
    reference.hvp(graph, {"x": x}, cotangent, t)
    assert reference.plugin.calls == 2  # one jvp, one hvp: the same case in another mode is another question
    reference.jvp(graph, {"x": x}, {"x": np.array([0.5, -1.5])})  # other tangents
    reference.hvp(graph, {"x": x}, 2 * cotangent, t)  # another cotangent
    assert reference.plugin.calls == 4
