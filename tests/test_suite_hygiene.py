"""The test suite, and pytest run by a user on a reproducer, leave nothing behind: no
`autodiff-audit-*` folder in the system's temporary folder, and no `.benchmarks/` folder in the
folder pytest runs in.

Both run pytest in a subprocess, as a user or CI does: the first a part of this suite, with
TMPDIR pointing at a fresh folder; the second a one-test file, in an empty folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The part of the suite that runs the pytest plugin without pytest's cache (`-p no:cacheprovider`)
# on an engine that fails: each failure's minimal case is saved for `autodiff-audit replay`.
PLUGIN_WITHOUT_A_CACHE = "tests/test_robustness.py::test_the_pytest_plugin_survives_an_engine_that_segfaults"


def pytest_in_subprocess(arguments: list[str], folder: Path, **environment: str) -> subprocess.CompletedProcess:
    # The caller's PYTEST_ADDOPTS and friends are not the user's.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", *arguments], cwd=folder, env={**env, **environment},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_suite_leaves_no_autodiff_audit_folder_in_the_temporary_folder(tmp_path):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    done = pytest_in_subprocess(["-q", "-p", "no:cacheprovider", PLUGIN_WITHOUT_A_CACHE], REPO, TMPDIR=str(temporary))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    left = sorted(path.name for path in temporary.iterdir())
    assert not [name for name in left if name.startswith("autodiff-audit-")], f"left in TMPDIR: {left}"


def test_pytest_on_a_reproducer_in_an_empty_folder_leaves_no_benchmarks_folder(tmp_path):
    pytest.importorskip("pytest_benchmark", reason="the .benchmarks folder is pytest-benchmark's")
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "test_case_g00003_s0.py").write_text("def test_gradient():\n    assert 2 * 3.0 == 6.0\n")
    for arguments in (["-q", "test_case_g00003_s0.py"], ["-q", "--co"]):
        done = pytest_in_subprocess(arguments, folder)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert not (folder / ".benchmarks").exists(), f"pytest {' '.join(arguments)} created {folder / '.benchmarks'}"
