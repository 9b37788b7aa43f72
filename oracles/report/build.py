"""The report as data: what ran (and what could not, and why), how much was checked, the worst
margins (so near-misses show), every discrepancy with its case and diagnosis, each group's
minimal case, and where every file of the report goes.

Every file path in the report is a pure function of the report folder and the case (see
`case_file`, `minimal_file`, `reproducer_file`), so `render_markdown(build_report(...))`
works before, or without, any file being written; `write.py` writes them.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ..audit import SIGNAL, TIME_BUDGET, AuditConfig, AuditRun
from ..backends import DERIVATIVE_MODES
from ..check import CaseResult, Finding
from ..check.compare import RTOL, RTOL_FINITE_DIFFERENCES
from ..check.modes import MODE_OF_QUANTITY
from ..diagnose import Investigation
from ..generate import GeneratorConfig, all_features, features_out_of_reach
from ..kinds import Kind
from .model import (
    BackendsRan,
    Conventions,
    Coverage,
    DerivativeMode,
    Discrepancy,
    FindingEntry,
    Generation,
    Group,
    KinkRow,
    MinimalCase,
    MinimalSize,
    ModeUse,
    NearMiss,
    OpStats,
    Report,
    Shrinking,
    Skipped,
    Summary,
)
from .upstream import adapter_source


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


def _slug(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", "_", (text or "none").lower()).strip("_")


def case_file(report: Path, index: int) -> str:
    return str(report / "cases" / f"case-{index:05d}.json")


def _group_slug(investigation: Investigation) -> str:
    """The investigation's group (kind, backend, op) in a file name: one graph can be in several."""
    return "_".join(_slug(part) for part in investigation.group())


def minimal_file(report: Path, investigation: Investigation) -> str:
    return str(report / "cases" / f"case-{investigation.index:05d}-{_group_slug(investigation)}-minimal.json")


def reproducer_file(report: Path, investigation: Investigation) -> str:
    return str(report / "reproducers" / f"test_case_{investigation.index:05d}_{_group_slug(investigation)}.py")


def upstream_file(report: Path, investigation: Investigation) -> str:
    return str(report / "upstream" / f"case_{investigation.index:05d}_{_group_slug(investigation)}.py")


def _entry(finding: Finding, result: CaseResult, seed: int, report: Path, kind=FindingEntry):
    return kind(
        index=result.index, seed=[seed, result.index], kind=finding.kind, op=finding.op, backend=finding.backend,
        quantity=finding.quantity, input=finding.input, detail=finding.detail,
        margin=None if finding.margin is None else float(finding.margin), expected_from=finding.expected_backends,
        expected=finding.expected, actual=finding.actual, case=result.case,
        case_file=case_file(report, result.index) if result.case else None,
    )  # fmt: skip


def _with_minimal(
    found: list[Discrepancy], investigations: list[Investigation], report: Path
) -> tuple[list[Discrepancy], list[Group]]:
    """Give each discrepancy the minimal case of its group, and make the groups.

    A group is (kind, backend, op), as diagnosed. A discrepancy whose own graph was shrunk
    for its group takes that minimal case; any other takes the minimal case of the group's
    first shrunk graph (`minimal_from`). Every minimal case was shrunk while its group's
    diagnosis held, so it shows the group's own op. Groups come largest first.
    """
    # A minimal case that did not fail again against every reference is no bug to show.
    shrunk = [i for i in investigations if i.minimal is not None and i.confirmed]
    own = {(i.index, i.group()): i for i in shrunk}
    first_of_group: dict[tuple, Investigation] = {}
    for i in shrunk:
        first_of_group.setdefault(i.group(), i)
    counts: Counter = Counter()
    graphs: dict[tuple, list[int]] = {}
    attached = []
    for d in found:
        key = (d.kind, d.backend, d.op)
        investigation = own.get((d.index, key)) or first_of_group.get(key)
        if investigation is not None:
            d = dataclasses.replace(
                d, minimal=investigation.minimal, minimal_from=investigation.index,
                minimal_confirmed=investigation.confirmed, minimal_file=minimal_file(report, investigation),
            )  # fmt: skip
        attached.append(d)
        counts[key] += 1
        if d.index not in graphs.setdefault(key, []):
            graphs[key].append(d.index)
    groups = []
    for key, indices in graphs.items():
        investigation = first_of_group.get(key)
        minimal_from = investigation.index if investigation else None
        size = _size(investigation) if investigation else None
        of_group = [i for i in investigations if i.group() == key]
        why = None if investigation else _why_no_minimal(key[0], of_group)
        reproduced = (investigation is not None) if any(i.minimal is not None for i in of_group) else None
        groups.append(Group(*key, counts[key], indices, minimal_from, size, why, reproduced))
    return attached, sorted(groups, key=lambda g: (-g.discrepancies, g.graphs[0]))


def _why_no_minimal(kind: Kind, tried: list[Investigation]) -> str:
    if not kind.rule.shrunk:
        return f"not shrunk: {kind.rule.why_not_shrunk}"
    if any(i.minimal is not None for i in tried):
        return "its shrunk cases did not fail again when checked against every reference, so none is shown as the bug"
    if tried:
        return f"shrinking could not finish: {tried[0].error}"
    return "not shrunk (see --shrink-limit)"


def _size(investigation: Investigation) -> MinimalSize:
    return MinimalSize(*investigation.minimal_size, *investigation.original_size)


def conventions(results: list[CaseResult], engine: str) -> list[KinkRow]:
    """What every backend answered at each kind of kink, over all kink nodes of the audit, and
    whom the engine followed: one row per kink (relu'(0), maximum tie, ...)."""
    rows: dict[str, dict] = {}
    for result in results:
        for record in result.kinks:
            row = rows.setdefault(
                record["kink"],
                {"kink": record["kink"], "op": record["op"], "nodes": 0, "engine": Counter(), "references": {},
                 "engine_follows": Counter(), "verdicts": Counter()},
            )  # fmt: skip
            row["nodes"] += 1
            row["verdicts"][record["verdict"]] += 1
            row["engine_follows"][", ".join(record["engine_follows"]) or "no reference"] += 1
            for backend, answer in record["answers"].items():
                if backend == engine:
                    row["engine"][answer] += 1
                else:
                    row["references"].setdefault(backend, Counter())[answer] += 1
    return [
        KinkRow(kink=row["kink"], op=row["op"], nodes=row["nodes"], engine=dict(row["engine"]),
                references={b: dict(c) for b, c in sorted(row["references"].items())},
                engine_follows=dict(row["engine_follows"]), verdicts=dict(row["verdicts"]))
        for row in sorted(rows.values(), key=lambda row: row["kink"])
    ]  # fmt: skip


def coverage(results: list[CaseResult], generator: GeneratorConfig, ops: list[str]) -> Coverage:
    """What the audit exercised, with counts (graphs per op, op pair and feature), and what its
    flags can never produce (out_of_reach)."""
    audited = [r for r in results if not r.lost and not r.skipped]
    features: Counter = Counter(f for r in audited for f in r.features)
    pairs: Counter = Counter(p for r in audited for p in r.op_pairs)
    kinks: Counter = Counter(record["kink"] for r in audited for record in r.kinks)
    out_of_reach = features_out_of_reach(dataclasses.replace(generator, ops=tuple(ops)))
    names = all_features()
    return Coverage(
        ops={op: sum(op in r.ops for r in audited) for op in ops},
        op_pairs=dict(sorted(pairs.items())),
        op_pairs_seen=len(pairs),
        op_pairs_possible=len(ops) ** 2,
        features={name: features.get(name, 0) for name in names},
        features_seen=sum(1 for name in names if features.get(name)),
        features_total=len(names),
        out_of_reach=out_of_reach,
        not_seen=[name for name in names if not features.get(name) and name not in out_of_reach],
        kinks=dict(sorted(kinks.items())) if generator.kinks else None,
    )


def build_report(run: AuditRun) -> Report:
    """The report of an audit, as data: nothing is written here (see write.py)."""
    config, ran, results = run.config, run.ran, list(run.results)
    report_dir = Path(config.report)
    ops: dict[str, OpStats] = {op: OpStats() for op in ran.ops}
    found: list[Discrepancy] = []
    reference_conventions: list[FindingEntry] = []
    seconds: Counter = Counter()
    skipped: Counter = Counter()
    for result in results:
        seconds.update(result.seconds)
        if result.skipped:
            skipped[result.skipped] += 1
            continue
        for op in result.ops:
            entry = ops.setdefault(op, OpStats())
            entry.graphs += 1
            entry.checks += result.checks
            entry.max_margin = max(entry.max_margin, result.engine_margin)
            entry.failures += _failed(result)
        for finding in result.findings:
            if finding.kind.rule.listed_in == "discrepancies":
                found.append(_entry(finding, result, config.seed, report_dir, Discrepancy))
            else:
                reference_conventions.append(_entry(finding, result, config.seed, report_dir))
    investigations = list(run.investigations)
    discrepancies, groups = _with_minimal(found, investigations, report_dir)
    near_misses = sorted(
        (NearMiss(r.index, r.engine_margin) for r in results if not _failed(r) and not r.skipped),
        key=lambda entry: -entry.margin,
    )[:10]
    graphs = sum(1 for r in results if not r.lost and not r.skipped)
    shrink_seconds = [i.shrink_seconds for i in investigations if i.minimal is not None]
    wall = run.wall_seconds
    summary = Summary(
        graphs=graphs,
        graphs_requested=config.graphs,
        interrupted=run.stopped == SIGNAL,
        time_budget_seconds=config.time_budget if run.stopped == TIME_BUDGET else None,
        checks=sum(r.checks for r in results),
        discrepancies=len(discrepancies),
        failing_graphs=len({d.index for d in discrepancies}),
        coverage=coverage(results, config.generator, list(ran.ops)),
        conventions=Conventions(
            engine_findings=sum(1 for d in discrepancies if d.kind == Kind.CONVENTION),
            reference_differences=len(reference_conventions),
            kinks=conventions(results, ran.engine),
        ),
        skipped=Skipped(sum(skipped.values()), dict(sorted(skipped.most_common(10)))),
        generation=Generation(sum(r.redraws for r in results), sum(1 for r in results if r.redraws)),
        mode=_mode(results, config, ran.references),
        derivative_modes=derivative_modes(results, ran, discrepancies),
        failure_database=run.failure_database,
        kinds=dict(Counter(str(d.kind) for d in discrepancies)),
        groups=groups,
        shrinking=Shrinking(
            shrunk=len(shrink_seconds),
            failed=[{"index": i.index, "error": i.error} for i in investigations if i.error],
            median_seconds=round(float(np.median(shrink_seconds)), 3) if shrink_seconds else None,
            max_seconds=max(shrink_seconds) if shrink_seconds else None,
            limit_per_group=config.shrink_limit,
        ),
        backends=BackendsRan(
            ran.engine,
            config.engine,
            list(ran.references),
            dict(ran.unavailable),
            list(run.left_running),
            dict(ran.notes),
        ),
        ops=ops,
        worst_passing_margin=near_misses[0].margin if near_misses else None,
        near_misses=near_misses,
        seed=config.seed,
        report_folder=str(report_dir),
        generator={k: list(v) if isinstance(v, tuple) else v for k, v in config.generator.__dict__.items()},
        error_model={"rtol": RTOL, "rtol_finite_differences": RTOL_FINITE_DIFFERENCES},
        versions=versions(),
        workers=config.workers,
        ran_on=ran.workers,
        wall_seconds=round(wall, 3),
        graphs_per_second=round(graphs / wall, 1) if wall > 0 else None,
        backend_seconds={name: round(s, 3) for name, s in sorted(seconds.items())},
    )
    minimal_cases = []
    for_upstream = adapter_source(config.engine) is not None  # the engine's adapter can be copied from
    for investigation in investigations:
        shrunk = investigation.minimal is not None and investigation.confirmed  # only a bug gets its files
        has_answer = shrunk and investigation.expected is not None and "value" in investigation.expected
        minimal_cases.append(
            MinimalCase(
                **{f.name: getattr(investigation, f.name) for f in dataclasses.fields(investigation)},
                case_file=minimal_file(report_dir, investigation) if shrunk else None,
                reproducer=reproducer_file(report_dir, investigation) if has_answer else None,
                # A convention is a valid answer at a kink, no bug to report upstream.
                upstream=upstream_file(report_dir, investigation)
                if has_answer and for_upstream and investigation.kind != Kind.CONVENTION
                else None,
            )
        )
    return Report(summary, discrepancies, reference_conventions[:50], minimal_cases)


def _mode(results: list[CaseResult], config: AuditConfig, references) -> ModeUse:
    """Which references checked how much: full mode gives JAX every graph; tiered mode only those
    where anything disagreed, a kink, and a sample (check.CheckMode)."""
    graphs = [r for r in results if not r.lost and not r.skipped]
    if "jax" not in references:
        seen: Counter = Counter()
    elif config.mode == "tiered":
        seen = Counter(r.jax for r in graphs if r.jax)
    else:
        seen = Counter({"every graph": len(graphs)})
    return ModeUse(
        name=config.mode,
        jax_sample=config.jax_sample if config.mode == "tiered" else None,
        jax_graphs=sum(seen.values()),
        jax_fraction=round(sum(seen.values()) / len(graphs), 4) if graphs else None,
        jax_because=dict(sorted(seen.items())),
    )


def derivative_modes(results: list[CaseResult], ran, discrepancies) -> list[DerivativeMode]:
    """Per derivative mode: checked or why not, graphs, checks, the engine's worst margin, discrepancies."""
    graphs = [r for r in results if not r.lost and not r.skipped]
    found = Counter(MODE_OF_QUANTITY.get(d.quantity or "", "vjp") for d in discrepancies)
    rows = []
    for mode in DERIVATIVE_MODES:
        checked = mode in ran.modes
        why_not = None
        if not checked:
            why_not = f"the engine has no {mode}" if mode not in ran.engine_modes else "not asked for (--modes)"
        # A case stored before forward mode has no counts per mode: all its checks were first order.
        counts = [r.mode_checks.get(mode, 0) if r.mode_checks else (r.checks if mode == "vjp" else 0) for r in graphs]
        margins = [r.mode_margins[mode] for r in graphs if mode in r.mode_margins]
        rows.append(DerivativeMode(
            name=mode, checked=checked, why_not=why_not, graphs=sum(1 for c in counts if c), checks=sum(counts),
            worst_margin=max(margins) if margins else None, discrepancies=found.get(mode, 0) if checked else 0,
        ))  # fmt: skip
    return rows


def _failed(result: CaseResult) -> bool:
    return any(f.kind.rule.discrepancy for f in result.findings)
