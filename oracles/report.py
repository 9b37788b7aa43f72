"""Reports: `report.json` for tools, `report.md` for people, and one case file per discrepancy.

Both reports carry the same facts: what ran (and what could not, and why), how much was
checked, the worst margins (so near-misses show), every discrepancy with its case, and
how to replay it.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from . import compare
from .audit import AuditConfig, CaseResult
from .investigate import RULE_KINDS, Investigation
from .markdown import json_default, render_markdown
from .reproduce import reproducer_source


def versions() -> dict[str, str | None]:
    def installed(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": installed("jax"),
        "jaxlib": installed("jaxlib"),
        "torch": installed("torch"),
        "platform": platform.platform(),
    }


def _finding_json(finding, result: CaseResult, seed: int) -> dict:
    return {
        "index": result.index,
        "seed": [seed, result.index],
        "kind": finding.kind,
        "op": finding.op,
        "backend": finding.backend,
        "quantity": finding.quantity,
        "input": finding.input,
        "detail": finding.detail,
        "margin": None if finding.margin is None else float(finding.margin),
        "expected_from": finding.expected_backends,
        "expected": finding.expected,
        "actual": finding.actual,
        "case": result.case,
    }


def _attach_minimal(discrepancies: list[dict], investigations: list[Investigation]) -> list[dict]:
    """Give each discrepancy its minimal case and final (kind, op), and return the groups.

    A discrepancy whose own graph was shrunk takes that minimal case and the kind and op
    that triage of it gave. Any other takes the minimal case of the first shrunk graph of
    the group it was found in (same kind, backend and op at first triage), as
    `minimal_from`. Groups in the summary are by final (kind, backend, op), largest first.
    """
    own = {(i.index, i.backend): i for i in investigations if i.minimal is not None}
    first_of_group: dict[tuple, Investigation] = {}
    for d in discrepancies:
        investigation = own.get((d["index"], d["backend"]))
        if investigation is not None:
            first_of_group.setdefault((d["kind"], d["backend"], d["op"]), investigation)
    for d in discrepancies:
        investigation = own.get((d["index"], d["backend"]))
        if investigation is not None:
            # Triage of the minimal case sharpens a wrong-rule finding, if that is what was shrunk.
            if d["kind"] in RULE_KINDS and investigation.target in RULE_KINDS:
                d["kind"] = investigation.kind
            d["op"] = investigation.op  # triage of the minimal case: None if no single op is at fault
        else:
            investigation = first_of_group.get((d["kind"], d["backend"], d["op"]))
        d["minimal"] = investigation.minimal if investigation else None
        d["minimal_from"] = investigation.index if investigation else None
        d["minimal_confirmed"] = investigation.confirmed if investigation else None
    by_index = {i.index: i for i in investigations if i.minimal is not None}
    groups: dict[tuple, dict] = {}
    for d in discrepancies:
        group = groups.setdefault(
            (d["kind"], d["backend"], d["op"]),
            {"kind": d["kind"], "backend": d["backend"], "op": d["op"], "discrepancies": 0, "graphs": [],
             "minimal_from": d["minimal_from"]},
        )  # fmt: skip
        group["discrepancies"] += 1
        if d["index"] not in group["graphs"]:
            group["graphs"].append(d["index"])
        # Prefer a minimal case shrunk from one of the group's own graphs.
        if d["minimal_from"] == d["index"] and group["minimal_from"] not in group["graphs"]:
            group["minimal_from"] = d["index"]
    ordered = sorted(groups.values(), key=lambda g: (-g["discrepancies"], g["graphs"][0]))
    return [{**g, "minimal_size": _size_json(by_index.get(g["minimal_from"]))} for g in ordered]


def _size_json(investigation) -> dict | None:
    if investigation is None:
        return None
    return {
        "op_nodes": investigation.minimal_size[0],
        "input_elements": investigation.minimal_size[1],
        "original_op_nodes": investigation.original_size[0],
        "original_input_elements": investigation.original_size[1],
    }


def build_report(
    results: list[CaseResult], ran: dict, config: AuditConfig, wall_seconds: float, investigations=()
) -> dict:
    ops: dict[str, dict] = {op: {"graphs": 0, "checks": 0, "max_margin": 0.0, "failures": 0} for op in ran["ops"]}
    discrepancies: list[dict] = []
    seconds: Counter = Counter()
    skipped: Counter = Counter()
    for result in results:
        seconds.update(result.seconds)
        if result.skipped:
            skipped[result.skipped] += 1
            continue
        for op in result.ops:
            entry = ops.setdefault(op, {"graphs": 0, "checks": 0, "max_margin": 0.0, "failures": 0})
            entry["graphs"] += 1
            entry["checks"] += result.checks
            entry["max_margin"] = max(entry["max_margin"], result.engine_margin)
            entry["failures"] += bool(result.findings)
        discrepancies.extend(_finding_json(f, result, config.seed) for f in result.findings)
    groups = _attach_minimal(discrepancies, list(investigations))
    near_misses = sorted(
        ({"index": r.index, "margin": r.engine_margin} for r in results if not r.findings and not r.skipped),
        key=lambda entry: -entry["margin"],
    )[:10]
    graphs = sum(1 for r in results if r.case and not r.skipped)
    shrink_seconds = [i.shrink_seconds for i in investigations if i.minimal is not None]
    summary = {
        "graphs": graphs,
        "checks": sum(r.checks for r in results),
        "discrepancies": len(discrepancies),
        "failing_graphs": sum(1 for r in results if r.findings),
        "skipped": {"graphs": sum(skipped.values()), "reasons": dict(skipped.most_common(10))},
        "kinds": dict(Counter(d["kind"] for d in discrepancies)),
        "groups": groups,
        "shrinking": {
            "shrunk": len(shrink_seconds),
            "failed": [{"index": i.index, "error": i.error} for i in investigations if i.error],
            "median_seconds": round(float(np.median(shrink_seconds)), 3) if shrink_seconds else None,
            "max_seconds": max(shrink_seconds) if shrink_seconds else None,
            "limit_per_group": config.shrink_limit,
        },
        "backends": {
            "engine": ran["engine"],
            "engine_spec": config.engine,
            "references": ran["references"],
            "unavailable": ran["unavailable"],
        },
        "ops": ops,
        "worst_passing_margin": near_misses[0]["margin"] if near_misses else None,
        "near_misses": near_misses,
        "seed": config.seed,
        "generator": {k: list(v) if isinstance(v, tuple) else v for k, v in config.generator.__dict__.items()},
        "error_model": {"rtol": compare.RTOL, "rtol_finite_differences": compare.RTOL_FINITE_DIFFERENCES},
        "versions": versions(),
        "workers": config.workers,
        "wall_seconds": round(wall_seconds, 3),
        "graphs_per_second": round(graphs / wall_seconds, 1) if wall_seconds > 0 else None,
        "backend_seconds": {name: round(s, 3) for name, s in sorted(seconds.items())},
    }
    minimal_cases = [dataclasses.asdict(i) for i in investigations]
    return {"summary": summary, "discrepancies": discrepancies, "minimal_cases": minimal_cases}


def write_case_files(report: dict, directory: Path) -> None:
    """Save each failing graph's case, and each minimal case with a standalone pytest
    reproducer, and point the discrepancies at them."""
    cases, reproducers = directory / "cases", directory / "reproducers"
    written: dict[int, str] = {}
    for entry in report["discrepancies"]:
        index = entry["index"]
        if entry["case"] and index not in written:
            cases.mkdir(parents=True, exist_ok=True)
            path = cases / f"case-{index:05d}.json"
            path.write_text(json.dumps(entry["case"], indent=1) + "\n")
            written[index] = str(path)
        entry["case_file"] = written.get(index)
    minimal_files: dict[int, str] = {}
    spec = report["summary"]["backends"]["engine_spec"]
    for investigation in report["minimal_cases"]:
        if investigation["minimal"] is None:
            continue
        index = investigation["index"]
        cases.mkdir(parents=True, exist_ok=True)
        path = cases / f"case-{index:05d}-minimal.json"
        path.write_text(json.dumps(investigation["minimal"], indent=1) + "\n")
        minimal_files[index] = investigation["case_file"] = str(path)
        if investigation["expected"] and "value" in investigation["expected"]:
            reproducers.mkdir(parents=True, exist_ok=True)
            test_path = reproducers / f"test_case_{index:05d}.py"
            test_path.write_text(reproducer_source(investigation, spec, report["summary"]["seed"]))
            investigation["reproducer"] = str(test_path)
    for entry in report["discrepancies"]:
        entry["minimal_file"] = minimal_files.get(entry.get("minimal_from"))


def write_report(report: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in ("cases", "reproducers"):  # an earlier audit's files would be mistaken for this one's
        shutil.rmtree(directory / stale, ignore_errors=True)
    write_case_files(report, directory)
    json_path, md_path = directory / "report.json", directory / "report.md"
    json_path.write_text(json.dumps(report, indent=1, default=json_default) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path
