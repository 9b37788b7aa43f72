"""`autodiff-audit bench`: the pytest-benchmark suite of the checkout's benchmarks/, run in a
subprocess, then its performance report (JSON, Markdown and plots)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path


class BenchError(Exception):
    """A benchmark run that cannot start (no suite, a missing package, a report folder that cannot
    be written): one line, for the user."""


def _prepare_report_dir(directory: Path) -> None:
    """A folder the benchmark report can be written to (its own files only; see report/write.py for audits)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise BenchError(f"--report {str(directory)!r}: cannot write there: {error.strerror or error}") from None


def run_bench(quick: bool, report: Path) -> int:
    """Run the pytest-benchmark suite in benchmarks/, then write the performance report; the
    exit status (0: written, 1: the suite or the report failed)."""
    suite = Path(__file__).resolve().parent.parent / "benchmarks"
    if not (suite / "test_bench.py").exists():
        raise BenchError(f"bench: the benchmark suite is not at {suite} (install from a checkout of the project)")
    for module in ("pytest_benchmark", "matplotlib", "threadpoolctl"):
        if importlib.util.find_spec(module) is None:
            raise BenchError(f"bench: {module} is not installed (pip install 'autodiff-oracles[bench]')")
    _prepare_report_dir(report)
    json_path = report.resolve() / "benchmark.json"
    command = [
        sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", f"--benchmark-json={json_path}", "--benchmark-max-time=0.2",
        "--bench-sweep", "quick" if quick else "full",
    ]  # fmt: skip
    print("+ " + " ".join(command), flush=True)
    status = subprocess.run(command, cwd=suite.parent).returncode
    if not json_path.exists():
        print(f"autodiff-audit: error: bench: the suite wrote no results (pytest exit {status})", file=sys.stderr)
        return 1
    # The report code lives next to the suite, in the checkout (benchmarks/report.py).
    render = [sys.executable, "-m", "benchmarks.report", str(json_path), str(report.resolve())]
    written = subprocess.run(render, cwd=suite.parent).returncode
    return 0 if status == 0 and written == 0 else 1
