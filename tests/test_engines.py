"""Real engines, through the adapters of oracles/engines, audited the way a user types it:
`autodiff-audit audit --engine <short name>`. Each test is skipped unless its engine is installed
(`pip install -e '.[<name>]'`; `tox -m engines` runs them all). An audit of a real engine may
find only the real bugs listed here, each shown by its minimal case in the README: anything
else would be a false alarm of the harness (or a new bug of the engine, to be looked at)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
AUDIT = str(Path(sys.executable).parent / "autodiff-audit")

# engine -> (package, audit flags, the real bugs it has: {(kind, op)})
ENGINES = {
    # prod's gradient is NaN at a zero (it divides by each element); where's VJP never sums a broadcast
    # operand's gradient back to its shape, and crashes; einsum's VJP raises on a repeated label
    # ('ii->'); norm's VJP with an axis and keepdims adds the axis twice.
    "autograd": ("autograd", ["--graphs", "300"], {("crash", "broadcast_to"), ("crash", "logsumexp"),
                                                   ("shape", "logsumexp"), ("nan-inf", "reduce_prod"),
                                                   ("crash", "where"), ("crash", "einsum"), ("crash", "norm"),
                                                   ("shape", "einsum"), ("shape", "norm")}),
    # maximum(x, x) and minimum(x, x) have gradient 0; conv_nd refuses a dilated kernel that fits.
    "mygrad": ("mygrad", ["--graphs", "300"], {("gradient", "maximum"), ("gradient", "minimum"),
                                               ("crash", "conv1d")}),
    # cumprod's gradient is 0 at a zero of its input.
    "tensorflow": ("tensorflow", ["--graphs", "300"], {("gradient", "cumprod")}),
    # float64 sin and cos lose about 8 digits past |x| = 700; pow of a pow can raise on a NaN cast;
    # erf is a 1.5e-7 approximation with erf'(0) = 0; einsum mislabels a diagonal of a rank-3
    # operand; sigmoid's and tanh's gradients are NaN far out (through a division, so no one node
    # shows it); a scalar expanded to rank 3 and sliced gets too large a gradient (no one node).
    # tinygrad compiles a kernel with clang per new shape: a first evaluation can take seconds.
    "tinygrad": ("tinygrad", ["--graphs", "100", "--timeout", "120"],
                 {("gradient", "sin"), ("gradient", "cos"), ("value", "sin"), ("value", "cos"), ("crash", None),
                  ("crash", "pow"), ("value", "erf"), ("gradient", "erf"), ("value", "einsum"),
                  ("gradient", "einsum"), ("crash", "einsum"), ("nan-inf", None), ("nan-inf", "sigmoid"),
                  ("nan-inf", "tanh"), ("composition", None)}),
    "micrograd": ("micrograd", ["--graphs", "300", "--max-rank", "0"], set()),
}  # fmt: skip


def audit(tmp_path: Path, engine: str, flags: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "report"
    command = [AUDIT, "audit", "--engine", engine, *flags, "--oracles", "torch,numeric", "--report", str(report)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    return done, json.loads((report / "report.json").read_text())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_real_engine_is_audited_by_its_short_name_with_no_finding_but_its_known_bugs(tmp_path, engine):
    package, flags, known = ENGINES[engine]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed (pip install -e '.[{engine}]')")
    done, report = audit(tmp_path, engine, flags)

    assert done.returncode in (0, 1), done.stderr[-2000:]
    summary = report["summary"]
    assert summary["backends"]["engine"].startswith(f"{engine}-")
    assert summary["graphs"] > 0 and summary["checks"] > 0
    found = {(d["kind"], d["op"]) for d in report["discrepancies"]}
    assert found <= known, f"findings beyond {engine}'s known bugs: {sorted(found - known, key=str)}"
    assert done.returncode == (1 if found else 0)
