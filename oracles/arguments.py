"""The command line's words: `build_parser` and the checks of what was typed, each failing as one
line (`UsageError`, exit 2) before anything runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .audit import AuditConfig
from .backends import DERIVATIVE_MODES, REFERENCES
from .check import MODES
from .failures import DEFAULT_FOLDER, ENVIRONMENT
from .format import DTYPES, MAX_ELEMENTS
from .generate import GeneratorConfig
from .ops import OPS

AUDIT, GENERATOR = AuditConfig(), GeneratorConfig()  # the defaults, defined once, in those classes
DESCRIPTION = "`autodiff-audit`: audit, replay, selftest, failures, ops, bench."


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
        # A name given twice counts once (in the order first given): `add,add,mult` would
        # otherwise draw add twice as often.
        names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
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
    parser = _Parser(prog="autodiff-audit", description=DESCRIPTION)
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
    _modes_argument(selftest)
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

    gallery = commands.add_parser(
        "gallery",
        help="audit every installed real engine (float64, float32, kinks) and write their table and real bugs",
    )
    gallery.add_argument("--graphs", type=_positive_int, default=200, help="graphs per audit (200)")
    gallery.add_argument("--seed", type=_non_negative_int, default=0, help="root seed of every audit (0)")
    gallery.add_argument(
        "--engines", type=lambda text: [e for e in text.split(",") if e], default=None,
        help="engines, comma-separated: short names or plug-in specs (default: every installed one of micrograd, "
        "tinygrad, mygrad, autograd, tensorflow, mlx, pytensor, torch, jax)",
    )  # fmt: skip
    gallery.add_argument(
        "--report", type=Path, default=Path("gallery"), help="the gallery's folder: one audit folder per engine "
        "and setting, gallery.json and gallery.md (gallery)",
    )  # fmt: skip
    gallery.add_argument(
        "--settings",
        type=_names(["float64", "float32", "kinks"], "setting"),
        default=("float64", "float32", "kinks"),
        help="the audits of each engine: float64, float32, kinks (all three)",
    )
    gallery.add_argument(
        "--readme", type=Path, default=None, metavar="README.md",
        help="also write the table and bugs between this README's gallery markers, and docs/gallery.json beside it",
    )  # fmt: skip

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


def generator_config(args) -> GeneratorConfig:
    return GeneratorConfig(
        min_nodes=args.min_nodes, max_nodes=args.max_nodes, ops=args.ops, max_rank=args.max_rank,
        max_dim=args.max_dim, dtype=args.dtype, kinks=args.kinks,
    )  # fmt: skip


def _engine_and_oracles(parser):
    parser.add_argument("--engine", default=AUDIT.engine, help="plug-in as package.module[:attribute]")
    parser.add_argument(
        "--oracles", type=_names(list(REFERENCES), "oracle"), default=AUDIT.oracles, help="jax,torch,numeric (all)"
    )
    _modes_argument(parser)


def _modes_argument(parser):
    parser.add_argument(
        "--modes", type=_names(list(DERIVATIVE_MODES), "derivative mode"), default=AUDIT.modes,
        help="derivative modes to check: vjp (reverse), jvp (forward), hvp (second order); each only if the "
        "engine has it (default: every mode the engine has)",
    )  # fmt: skip


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


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


def check_limits(args) -> None:
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
