"""Performance report: turns a pytest-benchmark JSON of `benchmarks/` into `report.md` and PNG plots.

Every number in the report is a median read from the JSON or a ratio of such medians, shown
next to the medians it came from. A backend, size or target missing from the JSON is written
"not measured", never filled in.

    python -m benchmarks.report BENCHMARK_JSON REPORT_DIR    # from the checkout's root

writes REPORT_DIR/report.md and the plots, then prints `report: BENCHMARK_JSON and N files in
REPORT_DIR`; `autodiff-audit bench` runs it after the suite. A missing or unreadable JSON, or a
REPORT_DIR that cannot be written, is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .plots import draw_plots
from .results import (
    JIT,
    OURS,
    PASSES,
    REGRESSION_GATE,
    SIZE_LABELS,
    BenchmarkFileError,
    Results,
    as_dict,
    curve_ends,
    format_seconds,
    jit_crossovers,
    load_results,
    plain_text,
    ratio,
    size_text,
    target_checks,
)


def _machine_lines(results: Results) -> list[str]:
    machine, cpu = results.machine, as_dict(results.machine.get("cpu"))
    versions = {"python": machine.get("python_version"), **as_dict(machine.get("versions"))}
    threads = {name: {plain_text(count)} for name, count in as_dict(machine.get("threads")).items()}
    for name, counts in results.threads.items():
        threads.setdefault(name, set()).update(counts)
    commit = results.commit
    commit_text = str(commit.get("id") or "unknown")[:12] + (" (dirty)" if commit.get("dirty") else "")
    if commit.get("branch"):
        commit_text += f" on {commit['branch']}"
    return [
        f"- machine: {machine.get('node') or '?'}, {machine.get('machine') or '?'}, "
        f"processor {machine.get('processor') or '?'}",
        f"- cpu: {cpu.get('brand_raw') or cpu.get('brand') or 'unknown'}, {cpu.get('count') or '?'} cores",
        "- versions: " + (", ".join(f"{k} {v or 'not installed'}" for k, v in versions.items()) or "not recorded"),
        "- threads: " + (", ".join(f"{k}={'/'.join(sorted(v))}" for k, v in sorted(threads.items())) or "not recorded"),
        f"- date: {results.date or 'unknown'}",
        f"- commit: {commit_text}",
        *([f"- sweep: {machine['bench_sweep']} (`--bench-sweep`)"] if machine.get("bench_sweep") else []),
    ]


def _family_tables(results: Results, family: str) -> list[str]:
    backends = results.backends(family)
    others = [b for b in backends if b != OURS] if OURS in backends else []
    header = [SIZE_LABELS.get(family, "size"), "nodes", *backends, *(f"{b} / {OURS}" for b in others)]
    lines = [f"## {family}", ""]
    for pass_name in PASSES:
        lines += [f"### {family}, {pass_name} (median time)", "", "| " + " | ".join(header) + " |"]
        lines.append("| " + " | ".join("---:" for _ in header) + " |")
        for size in results.sizes(family):
            times = [results.median(family, size, pass_name, b) for b in backends]
            ours = results.median(family, size, pass_name, OURS)
            ratios = [ratio(results.median(family, size, pass_name, b), ours) for b in others]
            cells = [str(size), str(results.nodes(family, size) or "?"), *map(format_seconds, times)]
            cells += ["not measured" if r is None else f"{r:.3g}" for r in ratios]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def render_report(results: Results, written: list[Path], not_drawn: dict[str, str]) -> str:
    lines = ["# Performance report", "", *_machine_lines(results), "", "## Targets", ""]
    checks = target_checks(results)
    verdicts = [c.verdict for c in checks]
    lines.append(", ".join(f"{verdicts.count(v)} {v}" for v in ("PASS", "MISS", "not measured")) + ".")
    lines += ["", "| target | value | from medians | limit | verdict |", "| --- | ---: | --- | ---: | --- |"]
    for check in checks:
        value = "not measured" if check.value is None else f"{check.value:.3g}"
        lines.append(f"| {check.claim} | {value} | {check.evidence} | ≤ {check.limit:g} | {check.verdict} |")
    lines.append("")
    for family in results.families():
        lines += _family_tables(results, family)
    lines += ["## JIT crossover", ""]
    crossovers = jit_crossovers(results)
    if not crossovers:
        lines.append(f"Not measured: no family/size has both {OURS} and {JIT} forward+backward.")
    for c in crossovers:
        compile_text = format_seconds(c.compile_seconds) if c.compile_seconds is not None else "?"
        lines.append(
            f"- {c.family} {size_text(c.family, c.size)}: compile {compile_text}, "
            f"{JIT} {format_seconds(c.t_jit)} per call, {OURS} {format_seconds(c.t_autodiff)} per call: {c.describe()}"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{path.stem}]({path.name})" for path in written if path.suffix == ".png"]
    lines += [f"- not drawn: `{name}`: {reason}" for name, reason in not_drawn.items()]
    ends = [end for family in results.families() for end in curve_ends(results, family)]
    if ends:
        lines += ["", "Measured at fewer sizes than their family (in the plots, a square marks the last point):"]
        lines += [f"- {end.family}: {end.describe()}" for end in ends]
    if results.ignored:
        lines += ["", f"{len(results.ignored)} benchmark entries were not used:"]
        lines += [f"- {reason}" for reason in results.ignored]
    lines += [
        "",
        "## Reading this report",
        "",
        "- Times are the median of pytest-benchmark's rounds, per call, in ns / µs / ms / s.",
        f"- A column `X / {OURS}` is X's median over ours at the same size and pass: above 1, {OURS} is faster.",
        "- `forward+backward` is one evaluation with gradients; `forward` is the value alone. Backward / forward "
        "is (fwd+bwd - fwd) / fwd; reverse mode should keep it a small constant.",
        f"- `{JIT}` is steady state: its compile time is not in its median but in the JIT crossover, the number "
        f"of evaluations n* = compile / (t_{OURS} - t_jit) after which compiling pays.",
        "- A target is PASS when its value is at most its limit; the medians it came from are shown beside it.",
        "- 'not measured' means the JSON has no such benchmark (skipped or not run); nothing is estimated.",
        "- Medians on a shared or busy machine move by several percent; compare runs on the same machine.",
        "",
        "## Regression gate",
        "",
        REGRESSION_GATE,
        "",
    ]
    return "\n".join(lines)


def write_performance_report(benchmark_json_path: str | Path, report_dir: str | Path) -> list[Path]:
    results = load_results(benchmark_json_path)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    written, not_drawn = draw_plots(results, report_dir)
    report = report_dir / "report.md"
    report.write_text(render_report(results, written, not_drawn), encoding="utf-8")
    return [report, *written]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description="Write report.md and plots from a pytest-benchmark JSON."
    )
    parser.add_argument("benchmark_json", help="file written by pytest --benchmark-json")
    parser.add_argument("report_dir", help="directory for report.md and the PNG plots")
    args = parser.parse_args(argv)
    try:
        paths = write_performance_report(args.benchmark_json, args.report_dir)
    except BenchmarkFileError as error:
        print(f"benchmarks.report: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # reading errors are BenchmarkFileError: this one is writing the report
        print(
            f"benchmarks.report: error: cannot write to {args.report_dir}: {error.strerror or error}", file=sys.stderr
        )
        return 2
    print(f"report: {args.benchmark_json} and {len(paths)} files in {args.report_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
