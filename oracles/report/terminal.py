"""The terminal: progress while an audit or a selftest runs, and the audit's summary,
rendered from the `Report` (rich where it is installed and the output is a terminal)."""

from __future__ import annotations

import sys
import time

from .markdown import replay_command
from .model import Report, unavailable_line

SETTLING_SECONDS = 3.0  # a rate over less time than this says more about the workers' start than their pace
SLOW_FRACTION = 0.5  # an evaluation that takes more than this share of the time limit is warned about


class Progress:
    """Progress with its rate and the time left: a rich bar on a terminal; plain lines (about every
    10%) otherwise. `already` were done before (a resumed campaign): they count toward the total,
    not toward the rate. The time left is shown once the rate has settled. With `limit` (the
    engine's name and its time limit in seconds), `cases` warns once when an evaluation by the
    engine takes most of that limit."""

    def __init__(
        self, total: int, unit: str = "graphs", verb: str = "audited", already: int = 0,
        limit: tuple[str, float] | None = None,
    ):  # fmt: skip
        self.total, self.done, self.already, self.next_line = total, already, already, already
        self.unit, self.verb, self.limit = unit, verb, limit
        self.first: tuple[float, int] | None = None  # when the first result came, and the count then
        self.warned = False
        self.bar = None
        if sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            except ImportError:
                pass
            else:
                rate, left = TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[left]}")
                self.bar = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate, left, transient=True
                )

    def __enter__(self):
        if self.bar:
            self.bar.start()
            self.task = self.bar.add_task(self.verb, total=self.total, completed=self.already, rate="", left="")
        return self.advance

    def rate(self) -> float:
        # Counted from the first result on: the workers' start-up is not the audit's pace.
        if self.first is None:
            return 0.0
        elapsed = time.perf_counter() - self.first[0]
        return (self.done - self.first[1]) / elapsed if elapsed > 0 else 0.0

    def settled(self) -> bool:
        """Whether the rate says how long the rest takes: measured over a few seconds and results."""
        if self.first is None:
            return False
        elapsed = time.perf_counter() - self.first[0]
        return elapsed >= SETTLING_SECONDS and self.done - self.first[1] >= 2

    def advance(self, n: int) -> None:
        self.done += n
        if self.first is None:
            self.first = (time.perf_counter(), self.done)
        rate = self.rate()
        left = ""
        if self.done < self.total and rate:
            left = f"about {_seconds((self.total - self.done) / rate)} left" if self.settled() else "estimating"
        if self.bar:
            self.bar.update(self.task, advance=n, rate=f"{rate:.1f} {self.unit}/s", left=left)
        elif self.done >= self.next_line or self.done == self.total:
            pace = ", ".join(part for part in (f"{rate:.1f}/s" if rate else "", left) if part)
            pace = f" ({pace})" if pace else ""
            print(f"{self.verb} {self.done}/{self.total} {self.unit}{pace}", file=sys.stderr, flush=True)
            self.next_line = self.done + max(1, self.total // 10)

    def cases(self, batch: list) -> None:
        """A batch of finished cases (CaseResults): counted, and their engine times watched."""
        self.advance(len(batch))
        if self.limit is None or self.warned:
            return
        engine, limit = self.limit
        slowest = max(batch, key=lambda result: result.seconds.get(engine, 0.0), default=None)
        if slowest is not None and slowest.seconds.get(engine, 0.0) > SLOW_FRACTION * limit:
            self.warned = True
            print(
                f"autodiff-audit: warning: the engine took {slowest.seconds[engine]:.1f} s of its {limit:g} s limit "
                f"on case {slowest.index}: a slower case will be a timeout (raise it with --timeout)",
                file=sys.stderr, flush=True,
            )  # fmt: skip

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_groups(report: Report) -> None:
    """What to fix, as report.md leads with it: each group (kind, op, how many, the minimal case's
    size) with the command that replays its minimal case (or, without one, its first case)."""
    groups = report.summary.groups
    if not groups:
        return
    print(f"what to fix: {len(groups)} group{'s' * (len(groups) != 1)} of discrepancies")
    spec = report.summary.backends.engine_spec
    for group in groups:
        where = f"in {group.op}" if group.op else "in no single op"
        minimal, first = report.minimal_case_of(group), report.first_of(group)
        size = group.minimal_size
        shown = f"minimal case {size.op_nodes} op nodes, {size.input_elements} elements" if size else "no minimal case"
        print(f"  {group.kind} {where} ({group.backend or 'the references'}): {group.discrepancies} in "
              f"{len(group.graphs)} graphs; {shown}")  # fmt: skip
        if minimal is None:
            print(f"    {group.why_no_minimal}; the first, graph {first.index}: {first.detail}")
        case_file = minimal.case_file if minimal is not None else first.case_file
        if case_file:
            print(f"    {replay_command(case_file, spec)}")


def print_summary(report: Report) -> None:
    """The audit on the terminal: what to fix first, then the table per op (with the discrepancies
    blamed on each op, not the graphs that merely hold it), coverage, conventions, and the verdict."""
    s = report.summary
    print_groups(report)
    blamed: dict[str, int] = {}
    for group in s.groups:
        if group.op is not None:
            blamed[group.op] = blamed.get(group.op, 0) + group.discrepancies
    rows = [
        [op, str(e.graphs), str(e.checks), f"{e.max_margin:.3g}", str(blamed.get(op, 0))] for op, e in s.ops.items()
    ]
    header = ["op", "graphs", "checks", "max error/tolerance", "blamed"]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    else:
        table = Table(title=f"audit of {s.backends.engine}")
        for name in header:
            table.add_column(name, justify="left" if name == "op" else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    for name, reason in s.backends.unavailable.items():
        print(unavailable_line(name, reason))
    for name, note in s.backends.notes.items():
        print(f"note: {name}: {note}")
    coverage = s.coverage
    print(
        f"coverage: {sum(1 for n in coverage.ops.values() if n)} of {len(coverage.ops)} ops, "
        f"{coverage.op_pairs_seen} of {coverage.op_pairs_possible} op pairs, "
        f"{coverage.features_seen} of {coverage.features_total} graph features"
    )
    if coverage.out_of_reach:
        shown = ", ".join(list(coverage.out_of_reach)[:6])
        more = f" and {len(coverage.out_of_reach) - 6} more" if len(coverage.out_of_reach) > 6 else ""
        print(f"never produced with these flags (see report.md): {shown}{more}")
    verdict = "no discrepancies" if not s.discrepancies else f"{s.discrepancies} discrepancies"
    declined = ""
    if s.skipped.graphs:
        common = sorted(s.skipped.reasons.items(), key=lambda item: -item[1])
        reasons = "; ".join(f"{reason} ({count})" for reason, count in common[:3])
        more = f"; and {len(common) - 3} more reasons in report.md" if len(common) > 3 else ""
        print(f"declined by the engine: {s.skipped.graphs} graphs ({reasons}{more})")
        declined = f" audited ({s.skipped.graphs} more declined by the engine)"
    conventions = s.conventions
    if conventions.engine_findings:
        verdict += f" ({conventions.engine_findings} of them conventions: valid answers at kinks no reference gives)"
    for row in conventions.kinks:
        answers = "; ".join(
            f"{backend} {', '.join(given)}" for backend, given in [("engine", row.engine), *row.references.items()]
        )
        follows = ", ".join(f"{who} {count}" for who, count in row.engine_follows.items())
        print(f"at {row.kink} ({row.nodes} nodes): {answers}; the engine follows: {follows}")
    modes = ", ".join(
        f"{m.name} {m.checks} checks (worst margin {m.worst_margin:.3g})" if m.checked and m.worst_margin is not None
        else f"{m.name} {m.checks} checks" if m.checked else f"{m.name} not checked: {m.why_not}"
        for m in s.derivative_modes
    )  # fmt: skip
    print(f"derivative modes: {modes}")
    print(
        f"{s.graphs} graphs{declined}, {s.checks} checks, {verdict}; "
        f"engine {s.backends.engine} vs {', '.join(s.backends.references)}; "
        f"{s.wall_seconds} s ({s.graphs_per_second} graphs/s)"
    )
