"""A hostile trial of the installed `autodiff-audit`, as a user types it: misbehaving engines,
signals, a full disk, a corrupt store and closed pipes, each run in a fresh folder.

    python tools/hostile_trial.py [--only NAME ...]

Prints a Markdown table: each input with its exit status, seconds, whether a traceback was
printed, whether a report was written, and how many processes an engine started are left
running afterwards (found by the mark every engine host puts in its processes' environment).
Run it from the repository root, with the environment that has `autodiff-audit` active.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUDIT = shlex.quote(str(Path(sys.executable).parent / "autodiff-audit"))
FAST = "--oracles torch,numeric --no-failures"
MARK = "AUTODIFF_AUDIT_ENGINE_HOST"  # what backends/isolation.py puts in every engine process's environment

FULL_DISK = """import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
os.execv(sys.argv[1], sys.argv[1:])
"""

NAN_ENGINE = """import numpy as np
from examples.broken_engines import correct
name, ops = "returns-nan", correct.ops
def evaluate(graph, values, cotangent):
    value, gradients = correct.evaluate(graph, values, cotangent)
    return value, {k: np.full_like(g, np.nan) for k, g in gradients.items()}
"""

# name -> (shell command run in a scratch folder DIR (with the repository on PYTHONPATH), seconds
# after which SIGTERM is sent, or None)
TRIAL: dict[str, tuple[str, float | None]] = {
    "1 noisy engine": (f"{AUDIT} audit --engine examples.unreliable_engines:noisy --graphs 60 {FAST} --report r", None),
    "2 the same OSError everywhere": (
        f"{AUDIT} audit --engine examples.unreliable_engines:raises_everywhere --graphs 40 {FAST} --report r",
        None,
    ),
    "3 a hang, a 12-node graph, --timeout 10": (
        f"{AUDIT} audit --engine examples.unreliable_engines:hangs_everywhere --graphs 1 --min-nodes 12 "
        f"--max-nodes 12 {FAST} --report r",
        None,
    ),
    "4 child in the engine's group": (
        f"{AUDIT} audit --engine examples.hostile_engines:starts_a_child --graphs 6 {FAST} --report r",
        None,
    ),
    "4 escaped child (new session)": (
        f"{AUDIT} audit --engine examples.hostile_engines:starts_an_escaped_child --graphs 6 {FAST} --report r",
        None,
    ),
    "4 escaped child, SIGTERM at 8 s": (
        f"{AUDIT} audit --engine examples.hostile_engines:starts_an_escaped_child --graphs 3000 {FAST} --report r",
        8.0,
    ),
    "4 escaped child, `| tee log`": (
        f"set -o pipefail; {AUDIT} audit --engine examples.hostile_engines:starts_an_escaped_child --graphs 6 "
        f"{FAST} --report r 2>&1 | tee log",
        None,
    ),
    "4 a child no kill can end (frozen), named in report.json": (
        "freezer=/sys/fs/cgroup/freezer/hostile-trial-$$; mkdir $freezer && "
        f"HOSTILE_FREEZER=$freezer {AUDIT} audit --engine examples.hostile_engines:starts_an_unkillable_child "
        f"--graphs 6 {FAST} --report r; status=$?; grep -o '\"left_running\": \\[[^]]*' r/report.json; "
        "echo THAWED > $freezer/freezer.state; sleep 1; rmdir $freezer; exit $status",
        None,
    ),
    "5 full disk (60 kB file limit)": (f"python full_disk.py {AUDIT} audit --graphs 200 {FAST} --report r", None),
    "5 --resume after the full disk": (
        f"python full_disk.py {AUDIT} audit --graphs 200 {FAST} --report r; {AUDIT} audit --resume r",
        None,
    ),
    "5 full disk under the failure database": (
        "mkdir db && unshare -rm sh -c 'mount -t tmpfs -o size=16k tmpfs db && "
        "dd if=/dev/zero of=db/fill bs=1k count=64 2>/dev/null; "
        f"{AUDIT} audit --engine examples.broken_engines:power_without_x --graphs 30 --oracles torch,numeric "
        "--failures db --report r'",
        None,
    ),
    "6 --resume, binary garbage in the store": (
        f"{AUDIT} audit --graphs 40 {FAST} --report r --time 4s; printf '\\xff\\xfe garbage\\n' >> r/campaign.jsonl; "
        f"{AUDIT} audit --resume r",
        None,
    ),
    "7 replay | head -1": (
        f"{AUDIT} audit --engine examples.broken_engines:power_without_x --graphs 30 {FAST} --report r >/dev/null; "
        f"{AUDIT} replay r/cases/$(ls r/cases | head -1) --engine examples.broken_engines:power_without_x | head -1",
        None,
    ),
    "7 failures list | head -1": (
        f"{AUDIT} audit --engine examples.broken_engines:power_without_x --graphs 30 --oracles torch,numeric "
        f"--failures db --report r >/dev/null; {AUDIT} failures list --failures db | head -1",
        None,
    ),
    "8 --ops add,add,add,mult": (f"{AUDIT} audit --ops add,add,add,mult --graphs 20 {FAST} --report r", None),
    "9 an engine answering NaN": (f"{AUDIT} audit --engine nan_engine --graphs 20 {FAST} --report r", None),
    "10 an engine taking 0.6 s of 1 s": (
        f"{AUDIT} audit --engine examples.unreliable_engines:slow --graphs 3 --timeout 1 {FAST} --report r",
        None,
    ),
    "12 pytest plugin, 50 graphs, one bug": (
        f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider -q --audit-engine "
        "oracles.selftest.planted:sigmoid_without_one_minus --audit-graphs 50 --audit-oracles torch,numeric",
        None,
    ),
}


def engine_processes() -> set[int]:
    """Processes that carry an engine host's mark: started by an engine, or engine hosts themselves."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if f"{MARK}=".encode() in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def trial(name: str, command: str, term_after: float | None) -> str:
    scratch = Path(tempfile.mkdtemp(prefix="hostile-trial-"))
    (scratch / "full_disk.py").write_text(FULL_DISK)
    (scratch / "nan_engine.py").write_text(NAN_ENGINE)
    before = engine_processes()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with open(scratch / "out", "w") as out:
        process = subprocess.Popen(["bash", "-c", command], cwd=scratch, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)  # fmt: skip
        if term_after is not None:
            time.sleep(term_after)
            os.killpg(process.pid, signal.SIGTERM)
        status = process.wait(timeout=900)
    seconds = time.perf_counter() - start
    time.sleep(2)  # what is still running two seconds later is left behind
    left = engine_processes() - before
    text = (scratch / "out").read_text(errors="replace")
    report = "yes" if (scratch / "r" / "report.json").exists() else "no"
    lines = len(text.splitlines())
    shutil.rmtree(scratch, ignore_errors=True)
    traceback = "yes" if "Traceback" in text else "none"
    shown = name.replace("|", "\\|")  # a pipe in a Markdown cell
    return f"| {shown} | {status} | {seconds:.1f} | {traceback} | {report} | {len(left) or 'none'} | {lines} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args(argv)
    print("| input | exit | seconds | traceback | report written | processes left | lines printed |")
    print("| --- | ---: | ---: | --- | --- | --- | ---: |")
    for name, (command, term_after) in TRIAL.items():
        if not args.only or any(word in name for word in args.only):
            print(trial(name, command, term_after), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
