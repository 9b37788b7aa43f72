"""Whether a change of the harness's code changed what it reports.

    python tools/report_equivalence.py capture CHECKOUT OUT.json [--only NAME ...]
    python tools/report_equivalence.py compare BEFORE.json AFTER.json

`capture` runs each scenario below with the `oracles` package of CHECKOUT (as `python -m
oracles`, from CHECKOUT, so its own `examples` and `oracles` import), reads the report.json
each one writes, and keeps it with what differs between two runs of the same code left out:
timings, versions and the temporary folders. `compare` prints every path at which two
captures differ, and exits 1 if any does; a field that only the second has is listed apart, as
added. A refactoring that changes nothing passes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

# Each scenario is an argument list for `autodiff-audit` (the report folder and the failure
# database are added, in a fresh temporary folder each).
SCENARIOS: dict[str, list[str]] = {
    name: line.split()
    for name, line in {
        "default": "audit",
        "planted": "audit --engine oracles.selftest.planted:power_without_x --graphs 150 --seed 1",
        "planted-composition": "audit --engine oracles.selftest.planted:fan_out_overwritten --graphs 100 --seed 2",
        "kinks": "audit --kinks --graphs 200 --seed 4",
        "kinks-convention": "audit --kinks --engine oracles.selftest.planted:relu_derivative_one_at_zero --graphs 150",
        "float32": "audit --dtype float32 --graphs 200 --seed 5",
        "float32-upcast": "audit --dtype float32 --engine oracles.selftest.planted:upcast --graphs 60",
        "tiered": "audit --mode tiered --graphs 300 --seed 6",
        "crash": "audit --engine oracles.selftest.planted:dot_crashes_on_vectors --graphs 80",
        "selftest": "selftest",
    }.items()
}

# What two runs of the same code may differ in: how long things took, where, and with which versions.
VOLATILE = {
    "wall_seconds", "graphs_per_second", "backend_seconds", "versions", "shrink_seconds", "median_seconds",
    "max_seconds", "folder", "report_folder", "ran_on",
}  # fmt: skip


def _stable(data, scratch: str, checkout: Path):
    """`data` without what may differ between runs of the same code from two checkouts: the
    scratch folder's and the checkout's names become SCRATCH and CHECKOUT, and where a crash
    happened loses its line number (the line of a raise moves when its file is edited)."""
    if isinstance(data, dict):
        return {key: _stable(value, scratch, checkout) for key, value in data.items() if key not in VOLATILE}
    if isinstance(data, list):
        return [_stable(value, scratch, checkout) for value in data]
    if isinstance(data, str):
        data = data.replace(scratch, "SCRATCH").replace(str(checkout), "CHECKOUT")
        return re.sub(r"(\(at [^()]*):\d+\)", r"\1:LINE)", data)
    return data


def capture(checkout: Path, only: list[str]) -> dict:
    captured = {}
    for name, arguments in SCENARIOS.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory(prefix="report-equivalence-") as scratch:
            report = Path(scratch) / "report"
            command = [sys.executable, "-m", "oracles", *arguments, "--report", str(report)]
            if arguments[0] == "audit":
                command += ["--failures", str(Path(scratch) / "failures")]
            finished = subprocess.run(command, cwd=checkout, capture_output=True, text=True)
            print(f"{name}: exit {finished.returncode}", file=sys.stderr, flush=True)
            path = report / "report.json"
            body = _stable(json.loads(path.read_text()), scratch, checkout) if path.exists() else None
            captured[name] = {"exit": finished.returncode, "report": body}
    return captured


def differences(before, after, added: Counter, path="") -> list[str]:
    """Every path at which `after` differs from `before`; keys only `after` has are counted in
    `added` (by name) instead: a new field is reported, not taken for a change."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            if key not in after:
                found.append(f"{path}/{key}: only before")
            elif key not in before:
                added[key] += 1
            else:
                found += differences(before[key], after[key], added, f"{path}/{key}")
        return found
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [f"{path}: {len(before)} items before, {len(after)} after"]
        return [
            line for k, (b, a) in enumerate(zip(before, after)) for line in differences(b, a, added, f"{path}[{k}]")
        ]
    return [] if before == after else [f"{path}: {json.dumps(before)[:120]} before, {json.dumps(after)[:120]} after"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("capture")
    take.add_argument("checkout", type=Path)
    take.add_argument("out", type=Path)
    take.add_argument("--only", nargs="*", default=[], choices=list(SCENARIOS))
    against = commands.add_parser("compare")
    against.add_argument("before", type=Path)
    against.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.command == "capture":
        args.out.write_text(json.dumps(capture(args.checkout.resolve(), args.only), indent=1, sort_keys=True) + "\n")
        return 0
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    added: Counter = Counter()
    found = differences(before, after, added)
    for line in found[:200]:
        print(line)
    names = sorted(set(before) & set(after))
    if added:
        print("fields added: " + ", ".join(f"{key} ({count} places)" for key, count in sorted(added.items())))
    print(f"{len(names)} scenarios compared ({', '.join(names)}): {len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
