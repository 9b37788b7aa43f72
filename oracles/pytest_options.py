"""The pytest plugin's options (`--audit-*`) and the cases a session audits: the options checked
as pytest usage errors, and the audit node ids given on the command line (see pytest_plugin.py)."""

from __future__ import annotations

import argparse
import importlib.util
import re

import pytest

from .audit import AuditConfig
from .backends import DERIVATIVE_MODES, REFERENCES, Backend, PluginError, probe_engine
from .format import DTYPES

DEFAULTS = AuditConfig()  # the audit's defaults, defined once there
ROOT = "autodiff-audit"  # the first part of every node id, and the option group
CASE_ID = re.compile(r"g(\d+)-s(\d+)(?:-(" + "|".join(DTYPES) + r"))?")


def case_id(index: int, seed: int, dtype: str) -> str:
    return f"g{index:05d}-s{seed}" + ("" if dtype == "float64" else f"-{dtype}")


def _count(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    g = DEFAULTS.generator
    options = {
        "--audit-engine": {"metavar": "SPEC", "help": "the engine plug-in, package.module[:attribute]"},
        "--audit-graphs": {"metavar": "N", "type": lambda t: _count(t, 1), "default": DEFAULTS.graphs,
                           "help": f"random cases ({DEFAULTS.graphs})"},
        "--audit-seed": {"metavar": "S", "type": lambda t: _count(t, 0), "default": DEFAULTS.seed,
                         "help": f"root seed ({DEFAULTS.seed})"},
        "--audit-oracles": {"metavar": "NAMES",
                            "help": "comma-separated references (default: jax and torch if installed, numeric)"},
        "--audit-dtype": {"choices": DTYPES, "default": g.dtype, "help": f"dtype of the cases ({g.dtype})"},
        "--audit-max-rank": {"type": int, "choices": [0, 1, 2, 3], "default": g.max_rank,
                             "help": f"largest tensor rank ({g.max_rank}); 0 for a scalar-only engine"},
        "--audit-kinks": {"action": "store_true",
                          "help": "kink mode: some operands exactly on kinks and ties, judged by the op table's rule"},
        "--audit-modes": {"metavar": "MODES",
                          "help": "derivative modes to check, of vjp, jvp, hvp (default: every mode the engine has)"},
        "--audit-timeout": {"metavar": "T", "type": float, "default": DEFAULTS.timeout,
                            "help": f"seconds one evaluation by the engine may take ({DEFAULTS.timeout:g})"},
        "--audit-shrink-seconds": {"metavar": "T", "type": float, "default": DEFAULTS.shrink_seconds,
                                   "help": f"time budget of one shrink ({DEFAULTS.shrink_seconds:g})"},
    }  # fmt: skip
    group = parser.getgroup(ROOT, "autodiff-audit: audit an engine plug-in against JAX, PyTorch and finite differences")
    for flag, settings in options.items():
        group.addoption(flag, **settings)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def modes_option(text: str | None) -> tuple[str, ...]:
    if text is None:
        return DERIVATIVE_MODES
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in DERIVATIVE_MODES]
    if unknown or not names:
        named = f"unknown mode(s) {', '.join(map(repr, unknown))}" if unknown else "no mode named"
        raise pytest.UsageError(f"--audit-modes {text!r}: {named} (known: {', '.join(DERIVATIVE_MODES)})")
    return names


def oracles_option(text: str | None) -> tuple[str, ...]:
    if text is None:  # every installed reference; finite differences need only numpy
        return (*(name for name in ("jax", "torch") if _installed(name)), "numeric")
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in REFERENCES]
    if unknown or not names:
        named = f"unknown oracle(s) {', '.join(map(repr, unknown))}" if unknown else "no oracle named"
        raise pytest.UsageError(f"--audit-oracles {text!r}: {named} (known: {', '.join(REFERENCES)})")
    missing = [n for n in names if n != "numeric" and not _installed(n)]
    if missing:
        raise pytest.UsageError(f"--audit-oracles: {', '.join(missing)} not installed")
    return names


def load_engine_option(spec: str) -> Backend:
    try:
        return probe_engine(spec)  # in a child process: an engine whose import exits cannot end the session
    except PluginError as error:
        message = str(error).replace("\n", " ")
        for prefix in (f"--engine {spec!r}: ", f"engine {spec!r}: "):  # the spec is named once, below
            message = message.removeprefix(prefix)
        raise pytest.UsageError(f"--audit-engine {spec!r}: {message}") from None


def selected_cases(config: pytest.Config, spec: str, default: list[tuple[int, int, str]]):
    """Take the audit node ids out of the positional arguments (they name no file), and
    return the cases they name: all of them for `autodiff-audit` or `autodiff-audit::SPEC`."""
    ids = [arg for arg in config.args if arg == ROOT or arg.startswith(ROOT + "::")]
    if not ids:
        return default
    config.args = [arg for arg in config.args if arg not in ids]
    cases: list[tuple[int, int, str]] = []
    for arg in ids:
        parts = arg.split("::")
        if len(parts) > 1 and parts[1] != spec:
            raise pytest.UsageError(f"{arg}: names engine {parts[1]!r}, but --audit-engine is {spec!r}")
        if len(parts) <= 2:
            return default
        match = CASE_ID.fullmatch(parts[2])
        if len(parts) > 3 or match is None:
            raise pytest.UsageError(f"{arg}: not a case id (expected {ROOT}::{spec}::gINDEX-sSEED, e.g. g00042-s0)")
        cases.append((int(match[1]), int(match[2]), match[3] or "float64"))
    return list(dict.fromkeys(cases))
