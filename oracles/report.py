"""Reports: `report.json` for tools, `report.md` for people, and one case file per discrepancy.

Both reports carry the same facts: what ran (and what could not, and why), how much was
checked, the worst margins (so near-misses show), every discrepancy with its case, and
how to replay it.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import shlex
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from . import compare
from .audit import AuditConfig, CaseResult


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


def build_report(results: list[CaseResult], ran: dict, config: AuditConfig, wall_seconds: float) -> dict:
    ops: dict[str, dict] = {op: {"graphs": 0, "checks": 0, "max_margin": 0.0, "failures": 0} for op in ran["ops"]}
    discrepancies = []
    seconds: Counter = Counter()
    for result in results:
        seconds.update(result.seconds)
        for op in result.ops:
            entry = ops.setdefault(op, {"graphs": 0, "checks": 0, "max_margin": 0.0, "failures": 0})
            entry["graphs"] += 1
            entry["checks"] += result.checks
            entry["max_margin"] = max(entry["max_margin"], result.engine_margin)
            entry["failures"] += bool(result.findings)
        discrepancies.extend(_finding_json(f, result, config.seed) for f in result.findings)
    near_misses = sorted(
        ({"index": r.index, "margin": r.engine_margin} for r in results if not r.findings),
        key=lambda entry: -entry["margin"],
    )[:10]
    graphs = sum(1 for r in results if r.case)
    summary = {
        "graphs": graphs,
        "checks": sum(r.checks for r in results),
        "discrepancies": len(discrepancies),
        "failing_graphs": sum(1 for r in results if r.findings),
        "kinds": dict(Counter(d["kind"] for d in discrepancies)),
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
    return {"summary": summary, "discrepancies": discrepancies}


def write_case_files(report: dict, directory: Path) -> None:
    """Save each failing graph's case as JSON, once per graph, and point the discrepancy at it."""
    cases = directory / "cases"
    written: dict[int, str] = {}
    for entry in report["discrepancies"]:
        if not entry["case"]:
            continue
        index = entry["index"]
        if index not in written:
            cases.mkdir(parents=True, exist_ok=True)
            path = cases / f"case-{index:05d}.json"
            path.write_text(json.dumps(entry["case"], indent=1) + "\n")
            written[index] = str(path)
        entry["case_file"] = written[index]


def replay_command(case_file: str, engine_spec: str) -> str:
    command = ["autodiff-audit", "replay", case_file]
    if engine_spec != "oracles.backends.autodiff_engine":
        command += ["--engine", engine_spec]
    return shlex.join(command)


def write_report(report: dict, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    write_case_files(report, directory)
    json_path, md_path = directory / "report.json", directory / "report.md"
    json_path.write_text(json.dumps(report, indent=1, default=_json_default) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _margin(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def render_markdown(report: dict) -> str:
    s = report["summary"]
    b = s["backends"]
    verdict = "PASS: no discrepancies" if not s["discrepancies"] else f"FAIL: {s['discrepancies']} discrepancies"
    lines = [
        f"# Audit of `{b['engine']}`: {verdict}",
        "",
        f"{s['graphs']} random graphs (seed {s['seed']}), {s['checks']} checks, "
        f"{s['failing_graphs']} failing graphs, in {s['wall_seconds']} s ({s['graphs_per_second']} graphs/s, "
        f"{s['workers']} workers).",
        "",
        f"- engine under test: `{b['engine_spec']}`",
        f"- references: {', '.join(b['references']) or 'none'}",
    ]
    for name, reason in b["unavailable"].items():
        lines.append(f"- unavailable: {name}: {reason}")
    lines.append(
        f"- worst margin of a passing graph (error / tolerance; 1 fails): {_margin(s['worst_passing_margin'])}"
    )
    versions_line = ", ".join(f"{k} {v}" for k, v in s["versions"].items() if v and k != "platform")
    lines += [f"- versions: {versions_line}", ""]
    lines += [
        "## Per op",
        "",
        "| op | graphs | checks | worst engine margin | failing graphs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for op, entry in s["ops"].items():
        lines.append(
            f"| `{op}` | {entry['graphs']} | {entry['checks']} | {_margin(entry['max_margin'])} | {entry['failures']} |"
        )
    if s["kinds"]:
        lines += ["", "## Discrepancies by kind", "", "| kind | backend | count |", "| --- | --- | ---: |"]
        grouped = Counter((d["kind"], d["backend"] or "-") for d in report["discrepancies"])
        for (kind, backend), count in sorted(grouped.items()):
            lines.append(f"| {kind} | {backend} | {count} |")
        lines += ["", "## Discrepancies", ""]
        shown = report["discrepancies"][:25]
        for d in shown:
            where = d["quantity"] or "evaluation"
            if d["input"]:
                where += f" of input `{d['input']}`"
            lines += [f"### graph {d['index']}: {d['kind']} in {d['backend'] or 'the references'}, {where}"]
            lines += ["", d["detail"], ""]
            if d.get("case_file"):
                lines += ["```bash", replay_command(d["case_file"], b["engine_spec"]), "```", ""]
            if d["expected"] is not None or d["actual"] is not None:
                lines += [f"- expected ({', '.join(d['expected_from']) or 'references'}): `{_short(d['expected'])}`"]
                lines += [f"- actual: `{_short(d['actual'])}`", ""]
        if len(report["discrepancies"]) > len(shown):
            lines.append(f"… and {len(report['discrepancies']) - len(shown)} more in report.json.")
    lines += ["", "## Time per backend (seconds, all graphs)", ""]
    lines += [f"- {name}: {seconds}" for name, seconds in s["backend_seconds"].items()]
    lines += ["", f"Command line: `{shlex.join(sys.argv)}`", ""]
    return "\n".join(lines)


def _short(value, limit: int = 200) -> str:
    text = json.dumps(value, default=_json_default)
    return text if len(text) <= limit else text[: limit - 1] + "…"
