"""Campaign throughput, measured the way a maintainer runs campaigns: the installed
`autodiff-audit audit` in a subprocess, on the default process pool and on a Dask cluster of
two workers on this machine (a `dask scheduler` and two `dask worker --nthreads 1` processes,
started fresh for each run), in full and tiered mode, with a cold and a warm JAX cache.

    python -m benchmarks.campaign --graphs 1000 100000 --out campaign-bench

For each run it records the command's wall time, graphs/s, the backends' own seconds (from the
report), the overhead ratio (wall / (backend seconds / cores)), JAX's share of the graphs, the
audit process's peak memory and, on Dask, the scheduler's peak memory. It measures; it asserts
nothing. Results go to OUT/campaign.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CORES = os.cpu_count() or 1


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class DaskCluster:
    """A scheduler and two single-threaded workers, each a process on localhost."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        scheduler_file = folder / "scheduler.json"
        self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file))  # fmt: skip
        self._wait(scheduler_file.exists)
        for name in ("worker-a", "worker-b"):
            self._start(name, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                        "--no-dashboard", "--name", name)  # fmt: skip
        for name in ("worker-a", "worker-b"):
            self._wait(lambda name=name: "Registered to" in (folder / f"{name}.log").read_text())
        self.address = json.loads(scheduler_file.read_text())["address"]

    def _start(self, name: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - open as long as the process runs
        self.processes.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=log, stderr=log,
                                               start_new_session=True))  # fmt: skip

    def _wait(self, condition, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Dask cluster did not start (see {self.folder})")
            time.sleep(0.1)

    def scheduler_peak_mb(self) -> float | None:
        return _peak_rss_mb(self.processes[0].pid)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def run_audit(graphs: int, mode: str, where: str, jax_cache: Path, report: Path, work: Path) -> dict:
    """One audit of our engine; `where` is "pool" (the default) or "dask"."""
    command = [str(BIN / "autodiff-audit"), "audit", "--graphs", str(graphs), "--mode", mode,
               "--report", str(report), "--no-failures", "--shrink-limit", "0"]  # fmt: skip
    cluster = DaskCluster(Path(tempfile.mkdtemp(dir=work))) if where == "dask" else None
    if cluster:
        command += ["--cluster", cluster.address]
    environment = {**os.environ, "AUTODIFF_AUDIT_JAX_CACHE": str(jax_cache)}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment)
    audit_peak = None
    while process.poll() is None:  # VmHWM only grows: its last reading is the main process's peak
        audit_peak = _peak_rss_mb(process.pid) or audit_peak
        time.sleep(0.2)
    wall = time.perf_counter() - start
    scheduler_mb = cluster.scheduler_peak_mb() if cluster else None
    if cluster:
        cluster.stop()
    summary = json.loads((report / "report.json").read_text())["summary"]
    backend_seconds = sum(summary["backend_seconds"].values())
    return {
        "graphs": graphs, "mode": mode, "where": summary["ran_on"],
        "exit_status": process.returncode,
        "wall_seconds": round(wall, 2),
        "graphs_per_second": round(summary["graphs"] / wall, 1),
        "backend_seconds": summary["backend_seconds"],
        "overhead_ratio": round(wall / (backend_seconds / CORES), 3),
        "jax_fraction": summary["mode"]["jax_fraction"],
        "audit_peak_mb": round(audit_peak, 1) if audit_peak else None,
        "scheduler_peak_mb": round(scheduler_mb, 1) if scheduler_mb else None,
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--graphs", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--out", type=Path, default=Path("campaign-bench"))
    parser.add_argument("--skip-cold", action="store_true", help="no cold-cache run")
    parser.add_argument("--tiered-up-to", type=int, default=10**9, help="tiered runs only for campaigns this small")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    cache = work / "jax-cache"  # starts empty: the first run is cold
    runs = []

    def record(label: str, **kwargs) -> None:
        result = {"run": label, **run_audit(jax_cache=cache, report=work / "report", work=work, **kwargs)}
        runs.append(result)
        print(json.dumps(result), flush=True)
        (args.out / "campaign.json").write_text(json.dumps({"cores": CORES, "runs": runs}, indent=1) + "\n")

    try:
        first = min(args.graphs)
        if not args.skip_cold:
            record("cold (empty JAX cache), full, pool", graphs=first, mode="full", where="pool")
        for graphs in args.graphs:
            for mode in ("full", "tiered") if graphs <= args.tiered_up_to else ("full",):
                for where in ("pool", "dask"):
                    record(f"warm, {mode}, {where}", graphs=graphs, mode=mode, where=where)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = f"{'run':40} {'graphs':>7} {'wall s':>8} {'graphs/s':>9} {'ratio':>6} {'JAX share':>9} {'sched MB':>8}"
    print(header)
    for r in runs:
        print(f"{r['run']:40} {r['graphs']:>7} {r['wall_seconds']:>8} {r['graphs_per_second']:>9} "
              f"{r['overhead_ratio']:>6} {r['jax_fraction']:>9} {r['scheduler_peak_mb'] or '-':>8}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
