"""A pytest plugin: audit an engine plug-in as tests, one test per generated case.

    pytest --audit-engine mypkg.engine [--audit-graphs 100] [--audit-seed 0]
           [--audit-oracles jax,torch,numeric] [--audit-dtype float64] [--audit-max-rank 3] [--audit-kinks]

Without `--audit-engine` the plugin adds no test and changes nothing; it only registers
the markers `jax`, `torch` and `slow` (unless the project already does), so that
`--strict-markers` accepts them.

Items. The session's own collect report gets one more collector, `autodiff-audit`, whose
child is the engine (named by its spec), whose children are the cases. A case's node id
is `autodiff-audit::SPEC::gINDEX-sSEED` (plus `-float32` for float32 cases), e.g.
`autodiff-audit::mypkg.engine::g00042-s0`. That id, given as a command-line argument,
runs that one case (whatever --audit-graphs and --audit-seed say: the id names the case);
`-k g00042` selects it too, and `-k power` the cases whose graph uses `power`. The project's
own tests run alongside the audit; the argument `autodiff-audit` runs the audit alone.

Outcomes, one per case:
- passed: no finding against the engine;
- failed: a finding whose backend is the engine (wrong value or gradient, wrong shape,
  NaN/Inf, crash). The case is shrunk (`investigate`) and the report shows the finding,
  the minimal case node by node, its JSON, the `autodiff-audit replay` command (the case
  file is saved under .pytest_cache/d/autodiff-audit/) and the command that re-runs it;
- skipped: the plug-in's `accepts(graph)` declines the graph (its reason is the skip
  reason; `-rs` folds the cases declined for one reason into one line), or the references
  disagree among themselves and the engine is not outvoted: not the engine's fault, so not
  a failure, but not a pass either (the skip reason names the disagreement and the case).

Markers: `jax` and `torch` on every case when that reference is used, `slow` on the
cases of SLOW_NODES op nodes or more. An engine that cannot be loaded, or options that
make no sense, stop pytest with a one-line usage error (exit code 4).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .audit import AuditConfig
from .backends import REFERENCES, Backend, PluginError, probe_engine
from .check import Backends, load_backends
from .diagnose import Investigation, engine_findings
from .format import DTYPES, Case, case_to_json
from .generate import GeneratorConfig, generate_case
from .pipeline import Budget, run_case
from .report import failure_view, replay_command

DEFAULTS = AuditConfig()  # the audit's defaults, defined once there

ROOT = "autodiff-audit"  # the first part of every node id, and the option group
SLOW_NODES = 8  # cases with this many op nodes or more are marked `slow`
MARKERS = {
    "jax": "the case is checked against JAX (autodiff-audit)",
    "torch": "the case is checked against PyTorch (autodiff-audit)",
    "slow": "a slow test (autodiff-audit: a case of 8 or more op nodes)",
}
CASE_ID = re.compile(r"g(\d+)-s(\d+)(?:-(" + "|".join(DTYPES) + r"))?")


@dataclass(eq=False)  # a plugin object: compared and hashed by identity
class AuditSession:
    """What one pytest session audits, how its cases came out, and the hooks that need both.

    Registered as a plugin only with --audit-engine: without it, none of these hooks exist."""

    spec: str
    oracles: tuple[str, ...]
    generator: GeneratorConfig
    cases: list[tuple[int, int, str]]  # (index, seed, dtype) of every case to collect
    shrink_seconds: float
    timeout: float = DEFAULTS.timeout  # seconds one evaluation by the engine may take
    backends: Backends | None = None  # loaded on first use
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed, failed or skipped
    selected: int = 0  # audit items left after selection (-k, -m, node ids)

    def loaded(self) -> Backends:
        if self.backends is None:  # once per session: importing JAX or PyTorch takes seconds
            self.backends = load_backends(self.spec, self.oracles, timeout=self.timeout)
        return self.backends

    def reference_names(self) -> list[str]:
        return list(self.oracles) if self.backends is None else self.backends.reference_names

    def pytest_report_header(self) -> str:
        return (
            f"{ROOT}: engine {self.spec}, {len(self.cases)} cases, "
            f"references {', '.join(self.oracles)}, ops {', '.join(self.generator.ops)}"
        )

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        report = yield
        # The session's own children (directories, files) come first; the audit follows them.
        if isinstance(collector, pytest.Session) and report.passed:
            # Its node id is a path of its own, as a file's would be, so the ids of its cases read
            # `autodiff-audit::SPEC::g00042-s0` (a child of the session alone would get `::autodiff-audit`).
            report.result.append(AuditRoot.from_parent(collector, name=ROOT, nodeid=ROOT))
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = sum(isinstance(item, AuditCase) for item in session.items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        report = yield
        if isinstance(item, AuditCase) and report.skipped and isinstance(report.longrepr, tuple):
            # A skip is reported where it was raised, a line of this module; name the case instead.
            report.longrepr = (item.skipped_at, None, report.longrepr[2])
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(ROOT + "::"):
            return
        if report.failed or self.outcomes.get(report.nodeid) == "failed":
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped:
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call":
            self.outcomes[report.nodeid] = "passed"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if terminalreporter.config.getoption("collectonly"):
            return
        counts = {outcome: list(self.outcomes.values()).count(outcome) for outcome in ("passed", "failed", "skipped")}
        cases = max(self.selected, len(self.outcomes))
        unavailable = self.backends.unavailable if self.backends else []
        missing = "".join(f" ({u.name} unavailable: {u.reason})" for u in unavailable)
        terminalreporter.write_line(
            f"{ROOT}: {cases} cases of {self.spec} against {', '.join(self.reference_names()) or 'nothing'}: "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped{missing}"
        )


STATE = pytest.StashKey[AuditSession]()


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
    group = parser.getgroup(ROOT, "autodiff-audit: audit an engine plug-in against JAX, PyTorch and finite differences")
    group.addoption("--audit-engine", metavar="SPEC", help="the engine plug-in, package.module[:attribute]")
    group.addoption(
        "--audit-graphs", metavar="N", type=lambda t: _count(t, 1), default=DEFAULTS.graphs,
        help=f"random cases ({DEFAULTS.graphs})",
    )  # fmt: skip
    group.addoption(
        "--audit-seed", metavar="S", type=lambda t: _count(t, 0), default=DEFAULTS.seed,
        help=f"root seed ({DEFAULTS.seed})",
    )  # fmt: skip
    group.addoption(
        "--audit-oracles",
        metavar="NAMES",
        help="comma-separated references (default: jax and torch if installed, numeric)",
    )
    group.addoption(
        "--audit-dtype", choices=DTYPES, default=DEFAULTS.generator.dtype,
        help=f"dtype of the cases ({DEFAULTS.generator.dtype})",
    )  # fmt: skip
    group.addoption(
        "--audit-max-rank", type=int, choices=[0, 1, 2, 3], default=DEFAULTS.generator.max_rank,
        help=f"largest tensor rank ({DEFAULTS.generator.max_rank}); 0 for a scalar-only engine",
    )  # fmt: skip
    group.addoption(
        "--audit-kinks", action="store_true",
        help="kink mode: some operands exactly on kinks and ties, judged by the op table's rule there",
    )  # fmt: skip
    group.addoption(
        "--audit-timeout", metavar="T", type=float, default=DEFAULTS.timeout,
        help=f"seconds one evaluation by the engine may take before it is a timeout finding ({DEFAULTS.timeout:g})",
    )  # fmt: skip
    group.addoption(
        "--audit-shrink-seconds", metavar="T", type=float, default=DEFAULTS.shrink_seconds,
        help=f"time budget of one shrink ({DEFAULTS.shrink_seconds:g})",
    )  # fmt: skip


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _oracles(text: str | None) -> tuple[str, ...]:
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


def _load_engine(spec: str) -> Backend:
    try:
        return probe_engine(spec)  # in a child process: an engine whose import exits cannot end the session
    except PluginError as error:
        message = str(error).replace("\n", " ")
        for prefix in (f"--engine {spec!r}: ", f"engine {spec!r}: "):  # the spec is named once, below
            message = message.removeprefix(prefix)
        raise pytest.UsageError(f"--audit-engine {spec!r}: {message}") from None


def _selected_cases(config: pytest.Config, spec: str, default: list[tuple[int, int, str]]):
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


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {description}")
    spec = config.getoption("--audit-engine")
    if not spec:
        return
    engine = _load_engine(spec)
    oracles = _oracles(config.getoption("--audit-oracles"))
    dtype = config.getoption("--audit-dtype")
    generator = dataclasses.replace(
        DEFAULTS.generator,
        dtype=dtype,
        kinks=config.getoption("--audit-kinks"),
        max_rank=config.getoption("--audit-max-rank"),
    )
    ops = tuple(op for op in generator.ops if op in engine.ops)  # random graphs use only the engine's ops
    if not ops:
        raise pytest.UsageError(f"--audit-engine {spec!r}: supports none of the ops {', '.join(generator.ops)}")
    seed, graphs = config.getoption("--audit-seed"), config.getoption("--audit-graphs")
    state = AuditSession(
        spec=spec,
        oracles=oracles,
        generator=dataclasses.replace(generator, ops=ops),
        cases=_selected_cases(config, spec, [(i, seed, dtype) for i in range(graphs)]),
        shrink_seconds=config.getoption("--audit-shrink-seconds"),
        timeout=config.getoption("--audit-timeout"),
    )
    config.stash[STATE] = state
    config.pluginmanager.register(state, f"{ROOT}-session")


class AuditRoot(pytest.Collector):
    def collect(self):
        yield EngineCollector.from_parent(self, name=self.config.stash[STATE].spec)


class EngineCollector(pytest.Collector):
    def collect(self):
        state = self.config.stash[STATE]
        for index, seed, dtype in state.cases:
            generator = (
                state.generator if dtype == state.generator.dtype else dataclasses.replace(state.generator, dtype=dtype)
            )
            case = generate_case(seed, index, generator)
            item = AuditCase.from_parent(self, name=case_id(index, seed, dtype), case=case)
            item.extra_keyword_matches.update(node["op"] for node in case.graph["nodes"])
            for marker in ("jax", "torch"):
                if marker in state.oracles:
                    item.add_marker(marker)
            if len(case.graph["nodes"]) >= SLOW_NODES:
                item.add_marker("slow")
            yield item

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ValueError):  # a generator config that cannot make graphs
            return f"{ROOT}: cannot generate the cases: {excinfo.value}"
        return super().repr_failure(excinfo)


class AuditFailure(Exception):
    """The engine is wrong on this case; the message is the whole report."""


class AuditCase(pytest.Item):
    def __init__(self, *, case: Case, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.skipped_at = self.nodeid  # what a skip report names as its place

    def reportinfo(self):
        # The path is the first part of the node id, as for a test in a file; the name shown
        # in headlines has no dots (pytest's verbose line would turn a dotted one into `::`).
        return self.config.rootpath / ROOT, None, f"{ROOT} {self.name} of {self.config.stash[STATE].spec}"

    def runtest(self) -> None:
        state = self.config.stash[STATE]
        backends = state.loaded()
        assert self.case.seed is not None  # generated cases carry (seed, index)
        run = run_case(self.case, backends, self.case.seed[1], shrink=Budget(seconds=state.shrink_seconds))
        result = run.result
        if result.skipped:
            assert self.parent is not None  # an item always hangs under its engine's collector
            self.skipped_at = self.parent.nodeid  # one line for all the cases declined for one reason
            pytest.skip(f"{backends.engine.name} declines the graph: {result.skipped}")
        mine = engine_findings(result, backends)
        if mine:
            raise AuditFailure(self._failure_report(mine, run.minimal))
        # The references disagree among themselves (beyond their conventions at kinks) and do not outvote the engine.
        if any(f.kind.rule.discrepancy for f in result.findings):
            details = "; ".join(f"{f.kind} in {f.backend or 'the references'}: {f.detail}" for f in result.findings)
            self.skipped_at = self.nodeid
            pytest.skip(f"references disagree, not the engine's fault: {details}")

    def _failure_report(self, findings, shrunk: Investigation | None) -> str:
        """The finding (its first line is pytest's one-line summary), the minimal case node by
        node, its JSON, and the commands that replay it and re-run this test. `shrunk` is the
        pipeline's shrink of the first finding it shrinks (None: none of them is, as a timeout)."""
        state = self.config.stash[STATE]
        lines, view, minimal = failure_view(findings, shrunk, case_to_json(self.case))
        text = json.dumps(minimal, separators=(",", ":"))
        replay = replay_command(self._save(text), state.spec)
        rerun = ["pytest", "--audit-engine", state.spec]
        if set(state.oracles) != set(REFERENCES):
            replay += f" --oracles {','.join(state.oracles)}"
        if self.config.getoption("--audit-oracles"):
            rerun += ["--audit-oracles", ",".join(state.oracles)]
        # The case id names (index, seed, dtype); the generator's other options make the case too.
        if state.generator.max_rank != DEFAULTS.generator.max_rank:
            rerun += ["--audit-max-rank", str(state.generator.max_rank)]
        if state.generator.kinks:
            rerun.append("--audit-kinks")
        lines += [
            "",
            *view,
            "",
            "case JSON:",
            text,
            "",
            "replay:",
            replay,
            "re-run:",
            shlex.join([*rerun, self.nodeid]),
        ]
        return "\n".join(lines)

    def _save(self, text: str) -> str:
        """Write the case for `autodiff-audit replay`, in pytest's cache directory when there is one."""
        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        directory = cache.mkdir(ROOT) if cache is not None else Path(tempfile.mkdtemp(prefix=f"{ROOT}-"))
        engine = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.config.stash[STATE].spec)
        path = directory / f"{engine}-{self.name}-minimal.json"
        path.write_text(text + "\n")
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AuditFailure):
            return str(excinfo.value)  # the report, without a Python traceback
        return super().repr_failure(excinfo, style=style)
