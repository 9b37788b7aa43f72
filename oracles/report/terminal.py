"""The terminal: progress while an audit or a selftest runs, and the audit's summary,
rendered from the `Report` (rich where it is installed and the output is a terminal)."""

from __future__ import annotations

import sys
import time

from .model import Report


class Progress:
    """Progress with its rate and the time left: a rich bar on a terminal; plain lines (about every
    10%) otherwise. `already` were done before (a resumed campaign): they count toward the total,
    not toward the rate."""

    def __init__(self, total: int, unit: str = "graphs", verb: str = "audited", already: int = 0):
        self.total, self.done, self.already, self.next_line = total, already, already, already
        self.unit, self.verb = unit, verb
        self.first: tuple[float, int] | None = None  # when the first result came, and the count then
        self.bar = None
        if sys.stderr.isatty():
            try:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                pass
            else:
                rate = TextColumn("{task.fields[rate]}")
                self.bar = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate,
                    TextColumn("ETA"), TimeRemainingColumn(), transient=True,
                )  # fmt: skip

    def __enter__(self):
        if self.bar:
            self.bar.start()
            self.task = self.bar.add_task(self.verb, total=self.total, completed=self.already, rate="")
        return self.advance

    def rate(self) -> float:
        # Counted from the first result on: the workers' start-up is not the audit's pace.
        if self.first is None:
            return 0.0
        elapsed = time.perf_counter() - self.first[0]
        return (self.done - self.first[1]) / elapsed if elapsed > 0 else 0.0

    def advance(self, n: int) -> None:
        self.done += n
        if self.first is None:
            self.first = (time.perf_counter(), self.done)
        rate = self.rate()
        if self.bar:
            self.bar.update(self.task, advance=n, rate=f"{rate:.1f} {self.unit}/s")
        elif self.done >= self.next_line or self.done == self.total:
            pace = f" ({rate:.1f}/s" if rate else ""
            if rate and self.done < self.total:
                pace += f", about {_seconds((self.total - self.done) / rate)} left"
            pace += ")" if rate else ""
            print(f"{self.verb} {self.done}/{self.total} {self.unit}{pace}", file=sys.stderr, flush=True)
            self.next_line = self.done + max(1, self.total // 10)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


def _seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_summary(report: Report) -> None:
    """The audit on the terminal: the table per op, coverage, conventions and the verdict line."""
    s = report.summary
    rows = [[op, str(e.graphs), str(e.checks), f"{e.max_margin:.3g}", str(e.failures)] for op, e in s.ops.items()]
    header = ["op", "graphs", "checks", "max error/tolerance", "failures"]
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
        print(f"unavailable: {name}: {reason}")
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
    print(
        f"{s.graphs} graphs{declined}, {s.checks} checks, {verdict}; "
        f"engine {s.backends.engine} vs {', '.join(s.backends.references)}; "
        f"{s.wall_seconds} s ({s.graphs_per_second} graphs/s)"
    )
