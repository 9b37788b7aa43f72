"""Every audit report says what the audit exercised (ops, producer-to-consumer op pairs, graph
features, kinks in kink mode), with counts, and flags what its flags can never produce: a
matrix `dot` with `--max-rank 0`, the features of ops outside the engine's `ops`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from oracles.generate import GeneratorConfig, all_features, case_features, features_out_of_reach, generate_case

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")


def audit(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    report = tmp_path / "r"
    done = subprocess.run([AUDIT, "audit", "--oracles", "numeric", "--report", str(report), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return done, json.loads((report / "report.json").read_text())["summary"], (report / "report.md").read_text()


def test_the_default_flags_can_produce_every_feature_of_the_table_but_joins_of_4():
    # A join of 4 operands makes an axis of at least 4, past the default --max-dim 3.
    beyond = "not producible with --max-rank 3 --max-dim 3"
    assert features_out_of_reach(GeneratorConfig()) == {"concatenate_4_operands": beyond, "stack_4_operands": beyond}
    assert features_out_of_reach(GeneratorConfig(max_dim=4)) == {}


def test_scalar_graphs_can_never_produce_a_matrix_dot_or_broadcasting():
    out_of_reach = features_out_of_reach(GeneratorConfig(max_rank=0))
    assert {"dot_2d_2d_non_square", "dot_1d_1d", "broadcast_size_one", "transpose_permutation"} <= set(out_of_reach)
    assert "fan_out" not in out_of_reach and "exponent_2" not in out_of_reach


def test_what_is_out_of_reach_never_occurs():
    config = GeneratorConfig(max_rank=1)
    out_of_reach = set(features_out_of_reach(config))
    seen = set().union(*(case_features(generate_case(0, index, config)) for index in range(300)))
    assert not seen & out_of_reach
    assert seen | out_of_reach <= set(all_features())


def test_a_report_counts_coverage_and_flags_what_max_rank_0_cannot_produce(tmp_path):
    done, summary, markdown = audit(tmp_path, "--graphs", "30", "--max-rank", "0")
    assert done.returncode == 0, done.stderr
    coverage = summary["coverage"]
    assert sum(coverage["ops"].values()) > 0 and sum(coverage["features"].values()) > 0
    assert coverage["op_pairs_seen"] > 0
    assert "dot_2d_2d_non_square" in coverage["out_of_reach"] and coverage["features"]["dot_2d_2d_non_square"] == 0
    assert "never produced with these flags" in done.stdout and "dot_1d_1d" in done.stdout
    assert coverage["out_of_reach"]["dot_2d_2d_non_square"].startswith("not producible with --max-rank 0")
    # Many features out of reach fold into one line of report.md; their reasons are in report.json.
    (folded,) = [line for line in markdown.splitlines() if line.startswith("**Never produced with these flags**")]
    assert "`dot_2d_2d_non_square`" in folded and "summary.coverage.out_of_reach" in folded


def test_an_engine_that_lacks_ops_has_their_features_flagged(tmp_path):
    done, summary, _ = audit(tmp_path, "--graphs", "20", "--engine", "examples.elementwise_engine")
    assert done.returncode == 0, done.stderr
    assert set(summary["coverage"]["ops"]) == {"add", "subtract", "mult", "sigmoid"}
    assert summary["coverage"]["out_of_reach"]["dot_1d_1d"].startswith("op 'dot' is not audited")
