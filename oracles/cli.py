"""`autodiff-audit`: audit, replay, selftest, failures, ops, bench.

Exit codes: 0 clean, 1 a discrepancy was found, 2 a usage or input error, 3 a Dask cluster
(--cluster) that cannot run the audit (each one line on stderr, never a traceback), 128+N
stopped by signal N.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .audit import (
    ENGINE_LOG,
    AuditConfig,
    AuditConfigError,
    ClusterError,
    default_workers,
    probe_engine,
    run_audit,
)  # fmt: skip
from .backends import REFERENCES, Backend, PluginError, Unavailable, load_engine, load_reference, support_table
from .campaign import STORE, CampaignError, CampaignStore
from .check import MODES, CheckMode, check_case, load_backends
from .diagnose import NOT_A_DISCREPANCY, diagnose_case
from .failures import (
    DEFAULT_FOLDER,
    ENVIRONMENT,
    FIXED,
    REGRESSION,
    STILL_FAILS,
    FailureDatabase,
    FailureDatabaseError,
    default_folder,
    replay_outcome,
)  # fmt: skip
from .format import DTYPES, MAX_ELEMENTS, FormatError, case_to_json, infer_shapes, load_case
from .generate import GeneratorConfig
from .ops import OPS, op_table_markdown
from .report import ReportFolderError, build_report, claim_report_folder, write_report

AUDIT, GENERATOR = AuditConfig(), GeneratorConfig()  # the defaults, defined once, in those classes

EXIT_CLEAN, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_CLUSTER = 0, 1, 2, 3


class UsageError(Exception):
    """A problem with what the user asked for: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _bounded(convert, what: str, minimum, strictly: bool = False):
    """An argparse type: `convert(text)`, at least `minimum` (or more than it, `strictly`)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < minimum or (strictly and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'more than' if strictly else 'at least'} {minimum}")
        return value

    return parse


_positive_int = _bounded(int, "an integer", 1)
_non_negative_int = _bounded(int, "an integer", 0)
_positive_float = _bounded(float, "a number", 0, strictly=True)


def _names(known, what):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        if not names:
            raise argparse.ArgumentTypeError(f"no {what} names given (known: {', '.join(known)})")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown))} (known: {', '.join(known)})"
            )
        return names

    return parse


def _duration(text: str) -> float:
    """Seconds in `text`: 90, 90s, 10m or 2h."""
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:])
    number = text[:-1] if scale else text
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (90s, 10m, 2h)") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0")
    return seconds


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _mode_arguments(parser) -> None:
    parser.add_argument(
        "--mode", choices=MODES, default=AUDIT.mode,
        help="full: every reference on every graph; tiered: PyTorch and finite differences on every graph, JAX "
        f"where anything disagrees and on a sample ({AUDIT.mode})",
    )  # fmt: skip
    parser.add_argument(
        "--jax-sample", type=_fraction, default=AUDIT.jax_sample, metavar="FRACTION",
        help=f"tiered mode: the fraction of the other graphs JAX checks too ({AUDIT.jax_sample:g})",
    )  # fmt: skip


def _failures_argument(parser) -> None:
    parser.add_argument(
        "--failures", type=Path, metavar="DIR", default=None,
        help=f"the failure database ({ENVIRONMENT} or {DEFAULT_FOLDER}/ in the working folder)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autodiff-audit", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    audit = commands.add_parser("audit", help="audit an engine on random graphs against the references")
    audit.add_argument(
        "--graphs", type=_positive_int, default=AUDIT.graphs, help=f"number of random graphs ({AUDIT.graphs})"
    )
    audit.add_argument(
        "--seed",
        type=_non_negative_int,
        default=AUDIT.seed,
        help=f"root seed; graph i is made from (seed, i) ({AUDIT.seed})",
    )
    _engine_and_oracles(audit)
    _generator_arguments(audit)
    audit.add_argument("--workers", type=_positive_int, default=default_workers(), help="processes (cores)")
    audit.add_argument(
        "--timeout", type=_positive_float, default=AUDIT.timeout,
        help=f"seconds one evaluation by the engine may take before it is a timeout finding ({AUDIT.timeout:g})",
    )  # fmt: skip
    audit.add_argument("--report", type=Path, default=AUDIT.report, help=f"report directory ({AUDIT.report})")
    audit.add_argument(
        "--resume", type=Path, metavar="DIR",
        help="continue the campaign in DIR (its campaign.jsonl) to its target, redoing no finished case; "
        "its settings are the campaign's own",
    )  # fmt: skip
    audit.add_argument(
        "--time", type=_duration, metavar="BUDGET",
        help="stop after this long (90s, 10m, 2h) and write the report; --resume continues",
    )  # fmt: skip
    audit.add_argument(
        "--cluster", metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786), or on a LocalCluster "
        "of --workers workers (local); needs the dask extra",
    )  # fmt: skip
    _mode_arguments(audit)
    _failures_argument(audit)
    audit.add_argument(
        "--no-failures", action="store_true",
        help="neither replay nor keep failing cases (the failure database is left as it is)",
    )  # fmt: skip
    audit.add_argument(
        "--shrink-limit", type=_non_negative_int, default=AUDIT.shrink_limit,
        help=f"failing graphs to shrink per (kind, backend, op) group; 0 = none ({AUDIT.shrink_limit})",
    )  # fmt: skip
    audit.add_argument(
        "--shrink-seconds", type=_positive_float, default=AUDIT.shrink_seconds,
        help=f"time budget of one shrink ({AUDIT.shrink_seconds:g})",
    )  # fmt: skip

    replay = commands.add_parser("replay", help="evaluate saved cases with every backend and compare")
    replay.add_argument("cases", nargs="+", type=Path, metavar="CASE.json")
    _engine_and_oracles(replay)

    selftest = commands.add_parser(
        "selftest", help="measure what an audit with these settings catches, on the project's planted bugs"
    )
    selftest.add_argument(
        "--graphs", type=_positive_int, default=AUDIT.graphs,
        help=f"most graphs to hunt each bug in, per seed ({AUDIT.graphs})",
    )  # fmt: skip
    selftest.add_argument("--seeds", type=_positive_int, default=3, help="root seeds 0..N-1 to hunt in (3)")
    selftest.add_argument(
        "--oracles", type=_names(list(REFERENCES), "oracle"), default=AUDIT.oracles, help="jax,torch,numeric (all)"
    )
    _generator_arguments(selftest)
    _mode_arguments(selftest)
    selftest.add_argument("--workers", type=_positive_int, default=default_workers(), help="processes (cores)")
    selftest.add_argument(
        "--report", type=Path, default=Path("selftest-report"), help="report directory (selftest-report)"
    )

    failures = commands.add_parser(
        "failures", help="list or clear the failure database: the minimal failing cases an audit replays first"
    )
    failures.add_argument("action", choices=("list", "clear"))
    failures.add_argument("--engine", help="only this engine's cases (its spec, as given to audit --engine)")
    _failures_argument(failures)

    commands.add_parser("ops", help="print the op table and which backends support each op")

    bench = commands.add_parser("bench", help="time forward and backward against PyTorch and JAX; write a report")
    bench.add_argument("--quick", action="store_true", help="the small sweep (about a minute)")
    bench.add_argument("--report", type=Path, default=Path("bench-report"), help="report directory (bench-report)")
    return parser


def _generator_arguments(parser):
    """The flags that shape random graphs: the same for `audit` and `selftest`."""
    parser.add_argument("--ops", type=_names(list(OPS), "op"), default=GENERATOR.ops, help="comma-separated op subset")
    parser.add_argument(
        "--min-nodes",
        type=_positive_int,
        default=GENERATOR.min_nodes,
        help=f"fewest op nodes per graph ({GENERATOR.min_nodes})",
    )
    parser.add_argument(
        "--max-nodes",
        type=_positive_int,
        default=GENERATOR.max_nodes,
        help=f"most op nodes per graph ({GENERATOR.max_nodes})",
    )
    parser.add_argument(
        "--max-rank", type=int, choices=[0, 1, 2, 3], default=GENERATOR.max_rank,
        help=f"largest tensor rank ({GENERATOR.max_rank}); 0 for a scalar-only engine",
    )  # fmt: skip
    parser.add_argument(
        "--max-dim",
        type=_positive_int,
        default=GENERATOR.max_dim,
        help=f"largest size of an axis ({GENERATOR.max_dim})",
    )
    parser.add_argument("--dtype", choices=DTYPES, default=GENERATOR.dtype)
    parser.add_argument(
        "--kinks", action="store_true",
        help="kink mode: put some operands exactly on kinks and ties (relu, abs at 0; maximum, reduce_max ties) "
        "and judge each backend's answer there by the op table's rule",
    )  # fmt: skip


def _generator(args) -> GeneratorConfig:
    return GeneratorConfig(
        min_nodes=args.min_nodes, max_nodes=args.max_nodes, ops=args.ops, max_rank=args.max_rank,
        max_dim=args.max_dim, dtype=args.dtype, kinks=args.kinks,
    )  # fmt: skip


def _engine_and_oracles(parser):
    parser.add_argument("--engine", default=AUDIT.engine, help="plug-in as package.module[:attribute]")
    parser.add_argument(
        "--oracles", type=_names(list(REFERENCES), "oracle"), default=AUDIT.oracles, help="jax,torch,numeric (all)"
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "audit": _audit, "replay": _replay, "selftest": _selftest, "failures": _failures, "ops": _ops,
            "bench": _bench,
        }  # fmt: skip
        return commands[args.command](args)
    except (UsageError, PluginError, FormatError, FailureDatabaseError) as error:
        print(
            f"autodiff-audit: error: {error}" if not str(error).startswith("autodiff-audit") else error, file=sys.stderr
        )
        return EXIT_USAGE
    except ClusterError as error:  # --cluster names a cluster that cannot run the audit
        print(f"autodiff-audit: error: {error}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("autodiff-audit: interrupted", file=sys.stderr)
        return 130


def _prepare_report_dir(directory: Path) -> None:
    """A folder the benchmark report can be written to (its own files only; see report/write.py for audits)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(f"--report {str(directory)!r}: cannot write there: {error.strerror or error}") from None


MAX_GRAPHS = 10_000_000  # one audit keeps every case's result in memory; a campaign splits beyond this
MEMORY_PER_WORKER = 600 * 2**20  # a worker with JAX and PyTorch loaded, measured


def max_workers() -> int:
    """Workers this machine can hold: no more than twice its cores, and about 600 MB of free memory each."""
    cores = os.cpu_count() or 1
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2 * cores
    return max(1, min(2 * cores, free // MEMORY_PER_WORKER))


def _check_limits(args) -> None:
    if args.min_nodes > args.max_nodes:
        raise UsageError(f"--min-nodes {args.min_nodes} is more than --max-nodes {args.max_nodes}")
    if args.graphs > MAX_GRAPHS:
        raise UsageError(f"--graphs {args.graphs}: at most {MAX_GRAPHS:,} per audit (split a larger run by --seed)")
    elements = args.max_dim**args.max_rank
    if elements > MAX_ELEMENTS:
        raise UsageError(
            f"--max-dim {args.max_dim} --max-rank {args.max_rank}: tensors of up to {elements:,} elements, "
            f"more than the limit of {MAX_ELEMENTS:,}"
        )
    most = max_workers()
    if args.workers > most:
        raise UsageError(
            f"--workers {args.workers}: at most {most} here ({os.cpu_count()} cores, and each worker with every "
            "oracle needs about 600 MB of memory)"
        )


class _StopOnSignals:
    """SIGINT and SIGTERM set `stop`: the audit kills its workers and writes a partial report.
    A second one exits at once (the workers' watchdogs take them down within a second)."""

    def __init__(self):
        self.stop = threading.Event()
        self.signal: int | None = None
        self.previous: dict = {}

    def _handle(self, signum, frame):
        if self.stop.is_set():
            print("autodiff-audit: exiting at once, without a report", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.signal = signum
        self.stop.set()
        name = signal.Signals(signum).name
        print(f"autodiff-audit: {name}: stopping the workers and writing a partial report (again to exit at once)",
              file=sys.stderr, flush=True)  # fmt: skip

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _audit(args) -> int:
    _check_limits(args)
    generator = _generator(args)
    config = AuditConfig(
        graphs=args.graphs,
        seed=args.seed,
        engine=args.engine,
        oracles=args.oracles,
        generator=generator,
        workers=min(args.workers, args.graphs),
        report=args.report,
        shrink_limit=args.shrink_limit,
        shrink_seconds=args.shrink_seconds,
        timeout=args.timeout,
        mode=args.mode,
        jax_sample=args.jax_sample,
    )
    finished: list = []
    if args.resume is not None:
        try:
            stored, finished = CampaignStore(args.resume / STORE).load()
        except CampaignError as error:
            raise UsageError(str(error)) from None
        config = dataclasses.replace(stored, workers=min(args.workers, stored.graphs), report=args.resume)
    engine = probe_engine(config.engine)  # one line, exit 2, on an engine that cannot be loaded
    database = None if args.no_failures else FailureDatabase(args.failures or default_folder())
    known = _KnownFailures(database, config, engine.name)
    try:
        folder = claim_report_folder(config.report, keep=(STORE, ENGINE_LOG) if args.resume else ())
    except ReportFolderError as error:
        raise UsageError(str(error)) from None
    try:
        log, store = Path(config.report) / ENGINE_LOG, CampaignStore(Path(config.report) / STORE)
        log.touch()
        folder.note(log)
        if args.resume is None:
            store.start(config)
        folder.note(store.path)
        start = time.perf_counter()
        with _StopOnSignals() as signals, _progress(config.graphs, already=len(finished)) as advance:
            budget = threading.Timer(args.time, signals.stop.set) if args.time else None
            if budget:
                budget.daemon = True
                budget.start()
            try:
                results, ran, investigations = run_audit(
                    config, progress=advance, stop=signals.stop, engine=engine, engine_log=log,
                    finished=finished, on_finished=store.append, cluster=args.cluster,
                    known=known.cases, on_replayed=known.replayed,
                )  # fmt: skip
            except AuditConfigError as error:
                raise UsageError(str(error)) from None
            finally:
                if budget:
                    budget.cancel()
        if signals.signal is None and ran.get("interrupted"):
            ran = {**ran, "interrupted": False, "time_budget": args.time}  # the budget was spent, as asked
        ran["failure_database"] = known.summary(investigations)
        for problem in (ran["failure_database"] or {}).get("errors", []):
            print(f"autodiff-audit: warning: {problem}", file=sys.stderr)
        report = build_report(results, ran, config, time.perf_counter() - start, investigations)
        json_path, md_path = write_report(report, folder)
    finally:
        folder.release()
    _print_summary(report)
    print(f"report: {json_path} and {md_path}")
    if signals.signal is not None:
        s = report["summary"]
        print(
            f"autodiff-audit: interrupted by {signal.Signals(signals.signal).name} after {s['graphs']} of "
            f"{config.graphs} graphs: the report holds those",
            file=sys.stderr,
        )
        return 128 + signals.signal
    known_failing = (report["summary"]["failure_database"] or {}).get("failing", 0)
    return EXIT_DISCREPANCY if report["summary"]["discrepancies"] or known_failing else EXIT_CLEAN


class _KnownFailures:
    """The failure database's side of an audit: the engine's known cases to replay first, a line on
    the terminal for each as it is replayed, and the audit's new minimal cases kept at the end."""

    def __init__(self, database: FailureDatabase | None, config: AuditConfig, engine_name: str):
        self.database, self.config, self.engine_name = database, config, engine_name
        self.entries, self.cases = [], []
        for entry in database.entries(config.engine) if database else []:
            try:
                self.cases.append(case_to_json(database.load(entry)))  # type: ignore[union-attr]
                self.entries.append(entry)
            except FailureDatabaseError as error:  # a damaged entry is skipped, not the audit
                print(f"autodiff-audit: warning: {error}: skipped", file=sys.stderr)
        self.outcomes: dict[str, list[str]] = {STILL_FAILS: [], FIXED: [], REGRESSION: []}
        self.errors: list[str] = []  # what could not be written to the database
        if self.entries:
            print(f"failure database: replaying the {len(self.entries)} kept cases of {config.engine} first",
                  file=sys.stderr, flush=True)  # fmt: skip

    def replayed(self, k: int, result) -> None:
        entry = self.entries[k]
        if result.skipped:
            return  # the engine declines it now: neither fixed nor failing
        fails = any(f.kind not in NOT_A_DISCREPANCY and f.backend == self.engine_name for f in result.findings)
        assert self.database is not None
        try:
            outcome = self.database.record(entry, fails)
        except FailureDatabaseError as error:  # the audit and its report go on; the database keeps its old word
            self.errors.append(str(error))
            outcome = replay_outcome(entry, fails)
        self.outcomes[outcome].append(entry.id)
        print(f"failure database: {entry.describe()}: {outcome.upper() if outcome == REGRESSION else outcome}",
              file=sys.stderr, flush=True)  # fmt: skip

    def summary(self, investigations) -> dict | None:
        if self.database is None:
            return None
        added = []
        for investigation in investigations:
            if investigation.minimal is None or investigation.backend != self.engine_name:
                continue  # a reference's finding is not this engine's bug
            try:
                kept, new = self.database.add(
                    self.config.engine, investigation.minimal, investigation.kind, investigation.op,
                    investigation.node, str(self.config.report),
                )  # fmt: skip
            except FailureDatabaseError as error:  # never at the cost of the report
                self.errors.append(str(error))
                continue
            if new:
                added.append(kept)
        replayed = sum(len(ids) for ids in self.outcomes.values())
        return {
            "folder": str(self.database.root),
            "known": len(self.entries),
            "replayed": replayed,
            "not_replayed": len(self.entries) - replayed,
            "failing": len(self.outcomes[STILL_FAILS]) + len(self.outcomes[REGRESSION]),
            "still_fails": self.outcomes[STILL_FAILS],
            "regressions": self.outcomes[REGRESSION],
            "fixed": self.outcomes[FIXED],
            "added": sorted(set(added)),
            "errors": sorted(set(self.errors)),
        }


def _failures(args) -> int:
    database = FailureDatabase(args.failures or default_folder())
    entries = database.entries(args.engine)
    if args.action == "clear":
        removed = database.clear(args.engine)
        print(
            f"failure database {database.root}: removed {removed} cases" + (f" of {args.engine}" if args.engine else "")
        )
        return EXIT_CLEAN
    if not entries:
        print(f"failure database {database.root}: empty" + (f" for {args.engine}" if args.engine else ""))
        return EXIT_CLEAN
    print(f"failure database {database.root}: {len(entries)} cases")
    for entry in entries:
        checked = f", last replayed {entry.checked}" if entry.checked else ""
        print(f"  {entry.engine}  {entry.describe()}: {entry.status} (found {entry.found}{checked})")
        print(f"    autodiff-audit replay {database.case_path(entry)} --engine {entry.engine}")
    return EXIT_CLEAN


class _progress:
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


def _print_summary(report: dict) -> None:
    s = report["summary"]
    rows = [
        [op, str(e["graphs"]), str(e["checks"]), f"{e['max_margin']:.3g}", str(e["failures"])]
        for op, e in s["ops"].items()
    ]
    header = ["op", "graphs", "checks", "max error/tolerance", "failures"]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    else:
        table = Table(title=f"audit of {s['backends']['engine']}")
        for name in header:
            table.add_column(name, justify="left" if name == "op" else "right")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    for name, reason in s["backends"]["unavailable"].items():
        print(f"unavailable: {name}: {reason}")
    coverage = s["coverage"]
    print(
        f"coverage: {sum(1 for n in coverage['ops'].values() if n)} of {len(coverage['ops'])} ops, "
        f"{coverage['op_pairs_seen']} of {coverage['op_pairs_possible']} op pairs, "
        f"{coverage['features_seen']} of {coverage['features_total']} graph features"
    )
    if coverage["out_of_reach"]:
        shown = ", ".join(list(coverage["out_of_reach"])[:6])
        more = f" and {len(coverage['out_of_reach']) - 6} more" if len(coverage["out_of_reach"]) > 6 else ""
        print(f"never produced with these flags (see report.md): {shown}{more}")
    verdict = "no discrepancies" if not s["discrepancies"] else f"{s['discrepancies']} discrepancies"
    declined = ""
    if s["skipped"]["graphs"]:
        common = sorted(s["skipped"]["reasons"].items(), key=lambda item: -item[1])
        reasons = "; ".join(f"{reason} ({count})" for reason, count in common[:3])
        more = f"; and {len(common) - 3} more reasons in report.md" if len(common) > 3 else ""
        print(f"declined by the engine: {s['skipped']['graphs']} graphs ({reasons}{more})")
        declined = f" audited ({s['skipped']['graphs']} more declined by the engine)"
    conventions = s["conventions"]
    if conventions["engine_findings"]:
        verdict += f" ({conventions['engine_findings']} of them conventions: valid answers at kinks no reference gives)"
    for row in conventions["kinks"]:
        answers = "; ".join(
            f"{backend} {', '.join(given)}"
            for backend, given in [("engine", row["engine"]), *row["references"].items()]
        )
        follows = ", ".join(f"{who} {count}" for who, count in row["engine_follows"].items())
        print(f"at {row['kink']} ({row['nodes']} nodes): {answers}; the engine follows: {follows}")
    print(
        f"{s['graphs']} graphs{declined}, {s['checks']} checks, {verdict}; "
        f"engine {s['backends']['engine']} vs {', '.join(s['backends']['references'])}; "
        f"{s['wall_seconds']} s ({s['graphs_per_second']} graphs/s)"
    )


def _selftest(args) -> int:
    from .selftest.run import SEEDS, battery, render_markdown, run_selftest

    args.timeout = AUDIT.timeout
    _check_limits(args)
    generator = _generator(args)
    seeds = tuple(range(args.seeds)) if args.seeds != len(SEEDS) else SEEDS
    try:
        folder = claim_report_folder(args.report)
    except ReportFolderError as error:
        raise UsageError(str(error)) from None
    try:
        with _StopOnSignals() as signals, _progress(len(battery()), "bugs", "hunting") as advance:
            mode = CheckMode(tiered=args.mode == "tiered", jax_sample=args.jax_sample)
            results, interrupted = run_selftest(
                generator, args.graphs, args.oracles, args.workers, seeds, progress=advance, stop=signals.stop,
                mode=mode,
            )  # fmt: skip
        rows = [result.row() for result in results]
        caught = sum(row["caught"] for row in rows)
        settings = {
            "--max-rank": generator.max_rank, "--max-dim": generator.max_dim, "--dtype": generator.dtype,
            "--min-nodes": generator.min_nodes, "--max-nodes": generator.max_nodes,
            "--ops": "all" if tuple(generator.ops) == tuple(OPS) else ",".join(generator.ops),
            "--kinks": generator.kinks, "--mode": args.mode,
            **({"--jax-sample": args.jax_sample} if args.mode == "tiered" else {}),
        }  # fmt: skip
        checked = sum(result.graphs_checked for result in results)
        summary = {
            "bugs": len(rows), "caught": caught, "kill_rate": caught / len(rows) if rows else 0.0,
            "graphs": args.graphs, "seeds": list(seeds), "settings": settings, "interrupted": interrupted,
            "survivors": [row["bug"] for row in rows if not row["caught"]],
            "graphs_checked": checked,
            "jax_fraction": round(sum(result.jax_graphs for result in results) / checked, 4) if checked else None,
        }  # fmt: skip
        json_path, md_path = Path(args.report) / "report.json", Path(args.report) / "report.md"
        folder.write(json_path, json.dumps({"summary": summary, "bugs": rows}, indent=1) + "\n")
        folder.write(md_path, render_markdown(summary, rows))
    finally:
        folder.release()
    _print_selftest(summary, rows)
    print(f"report: {json_path} and {md_path}")
    if signals.signal is not None:
        return 128 + signals.signal
    return EXIT_DISCREPANCY if summary["survivors"] or caught < len(rows) else EXIT_CLEAN


def _print_selftest(summary: dict, rows: list[dict]) -> None:
    header = ["bug", "category", "op", "caught", "graphs (median/worst)", "minimal (op nodes)", "blamed right"]
    table = []
    for row in rows:
        taken = f"{row['median_graphs']:g}/{row['worst_graphs']}" if row["caught"] else "-"
        right = {True: "yes", False: f"no: {row['kind']} in {row['blamed_op']}", None: "-"}[row["blamed_right"]]
        table.append([row["bug"], row["category"], row["op"] or "-",
                      f"{row['seeds_caught']}/{len(summary['seeds'])}" if row["caught"] else "NO", taken,
                      str(row["minimal_op_nodes"] or "-"), right])  # fmt: skip
    widths = [max(len(line[k]) for line in [header, *table]) for k in range(len(header))]
    for line in [header, *table]:  # plain columns: a bug's name is its handle, never cut
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    settings = " ".join(f"{k} {v}" for k, v in summary["settings"].items())
    print(
        f"selftest: {summary['caught']} of {summary['bugs']} planted bugs caught (kill rate "
        f"{summary['kill_rate']:.0%}) within {summary['graphs']} graphs of seeds {summary['seeds']}; {settings}"
    )
    if summary["survivors"]:
        print(f"survived (these settings cannot see them): {', '.join(summary['survivors'])}")
    for row in rows:
        if row["error"]:  # a hunt that could not finish counts as a survivor, never as a catch
            print(f"selftest: {row['bug']}: the hunt could not finish: {row['error']}")


def _replay(args) -> int:
    cases = [load_case(path) for path in args.cases]  # every file is checked before any backend loads
    backends = load_backends(args.engine, args.oracles)
    for item in backends.unavailable:
        print(f"unavailable: {item.name}: {item.reason}")
    found = False
    np.set_printoptions(precision=17, linewidth=120)
    for path, case in zip(args.cases, cases):
        result = check_case(case, backends, keep=True)
        assert result.evaluations is not None  # keep=True keeps them
        print(
            f"== {path}: {len(case.graph['nodes'])} op nodes, output {case.graph['output']!r} "
            f"of shape {list(infer_shapes(case.graph)[case.graph['output']])}"
        )
        for evaluation in result.evaluations:
            _print_evaluation(evaluation)
        diagnose_case(case, result, backends)  # the finding's kind and op, as the audit settles them
        for record in result.kinks:
            answers = ", ".join(f"{backend} {answer}" for backend, answer in record["answers"].items())
            print(f"  at {record['kink']} in {record['node']}: {answers}")
        for finding in result.findings:
            op = f", op {finding.op!r}" if finding.op else ""
            print(f"  FINDING {finding.kind} in {finding.backend or 'the references'}{op}: {finding.detail}")
        failed = any(finding.kind not in NOT_A_DISCREPANCY for finding in result.findings)
        print(
            f"  {result.checks} checks, worst engine margin {result.engine_margin:.3g}, {'FAIL' if failed else 'pass'}"
        )
        found = found or failed
    return EXIT_DISCREPANCY if found else EXIT_CLEAN


SHOWN_ELEMENTS = 100  # more than this, and replay abbreviates an array (the case's JSON has them all)


def _shown(array) -> str:
    try:
        array = np.asarray(array)
    except Exception:
        return "<not an array>"
    if array.dtype.kind not in "biuf":
        return f"<not an array of real numbers: {array.dtype}>"
    if array.size <= SHOWN_ELEMENTS:
        return str(array.tolist())
    shown = np.array2string(array, threshold=SHOWN_ELEMENTS, edgeitems=3, precision=17, max_line_width=120)
    return f"shape {list(array.shape)}, abbreviated: " + " ".join(shown.split())


def _print_evaluation(evaluation) -> None:
    if evaluation.crash:
        print(f"  {evaluation.backend}: crashed: {evaluation.crash}")
        return
    print(f"  {evaluation.backend}: value = {_shown(evaluation.value)}")
    gradients = evaluation.gradients if isinstance(evaluation.gradients, dict) else {}
    for name, gradient in gradients.items():
        print(f"  {evaluation.backend}: vjp[{name}] = {_shown(gradient)}")


def _ops(args) -> int:
    backends: list[Backend | Unavailable] = [load_engine(AUDIT.engine)]
    backends += [load_reference(name) for name in REFERENCES]
    print(op_table_markdown(support_table(backends)))
    return EXIT_CLEAN


def _bench(args) -> int:
    """Run the pytest-benchmark suite in benchmarks/, then write the performance report."""
    suite = Path(__file__).resolve().parent.parent / "benchmarks"
    if not (suite / "test_bench.py").exists():
        raise UsageError(f"bench: the benchmark suite is not at {suite} (install from a checkout of the project)")
    for module in ("pytest_benchmark", "matplotlib", "threadpoolctl"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"bench: {module} is not installed (pip install 'autodiff-oracles[bench]')")
    _prepare_report_dir(args.report)
    json_path = args.report.resolve() / "benchmark.json"
    command = [
        sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
        "--benchmark-enable", f"--benchmark-json={json_path}", "--benchmark-max-time=0.2",
        "--bench-sweep", "quick" if args.quick else "full",
    ]  # fmt: skip
    print("+ " + " ".join(command), flush=True)
    status = subprocess.run(command, cwd=suite.parent).returncode
    if not json_path.exists():
        print(f"autodiff-audit: error: bench: the suite wrote no results (pytest exit {status})", file=sys.stderr)
        return EXIT_DISCREPANCY
    # The report code lives next to the suite, in the checkout (benchmarks/report.py).
    report = [sys.executable, "-m", "benchmarks.report", str(json_path), str(args.report.resolve())]
    written = subprocess.run(report, cwd=suite.parent).returncode
    return EXIT_CLEAN if status == 0 and written == 0 else EXIT_DISCREPANCY
