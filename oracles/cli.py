"""`autodiff-audit`: audit, replay, selftest, failures, ops, bench, gallery.

Exit codes: 0 clean, 1 a discrepancy was found, 2 a usage or input error, 3 a Dask cluster
(--cluster) that cannot run the audit, 4 no space left to write a file (a full disk: ENOSPC,
a file size limit: EFBIG, a quota: EDQUOT; an audit's finished cases stay in its campaign
store, and `audit --resume DIR` takes them up) (each one line on stderr, never a traceback),
128+N stopped by signal N, and 141 (128 + SIGPIPE, as a shell says) when the standard output
is a pipe closed early (`... | head -1`), quietly: no message, no traceback.

This module parses (arguments.py), calls and prints: the work is done where it belongs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from .arguments import AUDIT, UsageError, build_parser, check_limits, generator_config
from .audit import ENGINE_LOG, AuditConfig, AuditConfigError, restricted_generator, run_audit
from .backends import REFERENCES, Backend, PluginError, Unavailable, load_engine, load_reference, probe_engine
from .backends import support_table as backend_support
from .bench import BenchError, run_bench
from .campaign import STORE, CampaignError, CampaignStore
from .check import CheckMode, load_backends
from .failures import NO_SPACE, FailureDatabase, FailureDatabaseError, KnownFailures, default_folder
from .format import FormatError, load_case
from .format.graph import finite_json
from .gallery import GalleryConfig, GalleryError, run_gallery
from .ops import op_table_markdown
from .replay import replay
from .report import ReportFolderError, build_report, claim_report_folder, write_report
from .report.model import unavailable_line
from .report.terminal import Progress, print_summary
from .selftest.report import print_selftest, render_markdown, selftest_report
from .selftest.run import SEEDS, battery, run_selftest
from .workers import ClusterError, StopOnSignals

EXIT_CLEAN, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_CLUSTER = 0, 1, 2, 3
EXIT_NO_SPACE = 4
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        commands = {
            "audit": _audit, "replay": _replay, "selftest": _selftest, "failures": _failures, "ops": _ops,
            "bench": _bench, "gallery": _gallery,
        }  # fmt: skip
        status = commands[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, where it is caught, not at the interpreter's exit
        return status
    except (UsageError, PluginError, FormatError, FailureDatabaseError, BenchError, GalleryError) as error:
        if isinstance(error, FailureDatabaseError) and error.no_space:
            print(f"autodiff-audit: error: no space left: {error}", file=sys.stderr)
            return EXIT_NO_SPACE
        print(
            f"autodiff-audit: error: {error}" if not str(error).startswith("autodiff-audit") else error, file=sys.stderr
        )
        return EXIT_USAGE
    except ClusterError as error:  # --cluster names a cluster that cannot run the audit
        print(f"autodiff-audit: error: {error}", file=sys.stderr)
        return EXIT_CLUSTER
    except OSError as error:
        broken_pipe = isinstance(error, BrokenPipeError)  # `... | head -1`: the reader has all it wanted
        if not broken_pipe and error.errno not in NO_SPACE:
            raise
        if broken_pipe or error.filename is None:  # the standard output itself: a closed pipe, or a full disk
            # What is left in its buffer must not be written again at exit ("Exception ignored ...");
            # a sys.stdout without a file descriptor (as in a test) has no buffer to lose.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if broken_pipe:
            return EXIT_BROKEN_PIPE
        what = "the standard output" if error.filename is None else repr(str(error.filename))
        folder = (args.resume or args.report) if args is not None and args.command == "audit" else None
        kept = folder is not None and (Path(folder) / STORE).is_file()
        resume = f"; the finished cases are kept: free some space, then autodiff-audit audit --resume {folder}"
        print(f"autodiff-audit: error: no space left to write {what} ({error.strerror}){resume if kept else ''}",
              file=sys.stderr)  # fmt: skip
        return EXIT_NO_SPACE
    except KeyboardInterrupt:
        print("autodiff-audit: interrupted", file=sys.stderr)
        return 130


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _audit_config(args, resumed: CampaignStore | None) -> AuditConfig:
    """The audit the arguments ask for: a new one, or the campaign `resumed` (--resume's store)."""
    run = {"cluster": args.cluster, "time_budget": args.time}
    if resumed is None:
        return AuditConfig(
            graphs=args.graphs, seed=args.seed, engine=args.engine, oracles=args.oracles,
            generator=generator_config(args), workers=min(args.workers, args.graphs), report=args.report,
            shrink_limit=args.shrink_limit, shrink_seconds=args.shrink_seconds, timeout=args.timeout, mode=args.mode,
            jax_sample=args.jax_sample, modes=args.modes, engine_log=args.report / ENGINE_LOG, **run,
        )  # fmt: skip
    stored = AuditConfig.from_json(resumed.config, f"--resume: {resumed.path}")
    report = args.resume  # a campaign's report is written where its store is
    return dataclasses.replace(
        stored, workers=min(args.workers, stored.graphs), report=report, engine_log=report / ENGINE_LOG, **run
    )


def _audit(args) -> int:
    check_limits(args)
    try:
        resumed = CampaignStore.resume(args.resume / STORE) if args.resume else None
        config = _audit_config(args, resumed)
    except CampaignError as error:
        raise UsageError(str(error)) from None
    engine = probe_engine(config.engine)  # one line, exit 2, on an engine that cannot be loaded
    try:  # flags that make no graph are one line too, before the report folder is claimed
        restricted_generator(config.generator, engine)
    except AuditConfigError as error:
        raise UsageError(str(error)) from None
    database = None if args.no_failures else FailureDatabase(args.failures or default_folder())
    known = KnownFailures(database, config.engine, engine.name, str(config.report), _say) if database else None
    try:
        folder = claim_report_folder(config.report, keep=(STORE, ENGINE_LOG) if args.resume else ())
    except ReportFolderError as error:
        raise UsageError(str(error)) from None
    try:
        assert config.engine_log is not None  # the CLI's audits keep the engine's output in the report folder
        config.engine_log.touch()
        folder.note(config.engine_log)
        store = resumed or CampaignStore.start(config.report / STORE, config.to_json())
        folder.note(store.path)
        progress = Progress(config.graphs, already=len(store.finished), limit=(engine.name, config.timeout))
        with StopOnSignals() as signals, progress:
            try:
                run = run_audit(
                    config, engine=engine, known=known, campaign=store, progress=progress.cases, stop=signals.stop
                )
            except AuditConfigError as error:
                raise UsageError(str(error)) from None
        report = build_report(run)
        json_path, md_path = write_report(report, folder)
    finally:
        folder.release()
    print_summary(report)
    print(f"report: {json_path} and {md_path}")
    if signals.signal is not None:
        s = report.summary
        _say(
            f"autodiff-audit: interrupted by {signal.Signals(signals.signal).name} after {s.graphs} of "
            f"{config.graphs} graphs: the report holds those"
        )
        return 128 + signals.signal
    if known is not None and known.not_kept:  # after the report, which is written whatever the database's disk
        _say(
            f"autodiff-audit: error: no space left to write the failure database {known.database.root}: "
            f"{known.not_kept} of its files not written (the report is)"
        )
        return EXIT_NO_SPACE
    known_failing = run.failure_database.failing if run.failure_database else 0
    return EXIT_DISCREPANCY if report.summary.discrepancies or known_failing else EXIT_CLEAN


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


def _selftest(args) -> int:
    args.timeout = AUDIT.timeout
    check_limits(args)
    generator = generator_config(args)
    seeds = tuple(range(args.seeds)) if args.seeds != len(SEEDS) else SEEDS
    try:
        folder = claim_report_folder(args.report)
    except ReportFolderError as error:
        raise UsageError(str(error)) from None
    try:
        with StopOnSignals() as signals, Progress(len(battery()), "bugs", "hunting") as advance:
            mode = CheckMode.named(args.mode, args.jax_sample)
            results, interrupted = run_selftest(
                generator, args.graphs, args.oracles, args.workers, seeds, progress=advance, stop=signals.stop,
                mode=mode, modes=args.modes,
            )  # fmt: skip
        report = selftest_report(
            results, generator, args.graphs, seeds, args.mode, args.jax_sample, interrupted, modes=args.modes
        )
        summary, rows = report["summary"], report["bugs"]
        json_path, md_path = Path(args.report) / "report.json", Path(args.report) / "report.md"
        folder.write(json_path, json.dumps(finite_json(report), indent=1, allow_nan=False) + "\n")  # standard JSON
        folder.write(md_path, render_markdown(summary, rows))
    finally:
        folder.release()
    print_selftest(summary, rows)
    print(f"report: {json_path} and {md_path}")
    if signals.signal is not None:
        return 128 + signals.signal
    return EXIT_DISCREPANCY if summary["survivors"] or summary["caught"] < len(rows) else EXIT_CLEAN


def _replay(args) -> int:
    cases = [load_case(path) for path in args.cases]  # every file is checked before any backend loads
    backends = load_backends(args.engine, args.oracles, modes=args.modes)
    for item in backends.unavailable:
        print(unavailable_line(item.name, item.reason))
    return EXIT_DISCREPANCY if replay(args.cases, cases, backends) else EXIT_CLEAN


def _gallery(args) -> int:
    config = GalleryConfig(args.report, args.graphs, args.seed, args.engines, args.readme, tuple(args.settings))
    record = run_gallery(config, say=_say)
    print((args.report / "gallery.md").read_text(encoding="utf-8"), end="")
    failed = [a for a in record["audits"] if "error" in a]
    for audit in failed:
        _say(f"gallery: {audit['engine']} {audit['setting']}: {audit['error']}")
    return EXIT_DISCREPANCY if failed or any(a.get("groups") for a in record["audits"]) else EXIT_CLEAN


def _ops(args) -> int:
    backends: list[Backend | Unavailable] = [load_engine(AUDIT.engine)]
    backends += [load_reference(name) for name in REFERENCES]
    print(op_table_markdown(backend_support(backends)))
    return EXIT_CLEAN


def _bench(args) -> int:
    return run_bench(args.quick, args.report)
