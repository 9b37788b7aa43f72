"""A pytest plugin: audit an engine plug-in as tests, one test per generated case.

    pytest --audit-engine mypkg.engine [--audit-graphs 100] [--audit-seed 0]
           [--audit-oracles jax,torch,numeric] [--audit-modes vjp,jvp,hvp] [--audit-dtype float64]
           [--audit-max-rank 3] [--audit-kinks]

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

import contextlib
import dataclasses
import json
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .backends import REFERENCES
from .check import Backends, load_backends
from .diagnose import Investigation, engine_findings
from .format import Case, case_to_json
from .generate import GeneratorConfig, generate_case
from .pipeline import Budget, run_case, shrink_case, shrink_target
from .pytest_options import (  # noqa: F401 - pytest_addoption is this plugin's hook
    DEFAULTS,
    ROOT,
    case_id,
    load_engine_option,
    modes_option,
    oracles_option,
    pytest_addoption,
    selected_cases,
)
from .report import failure_view, replay_command
from .report.model import unavailable_line

SLOW_NODES = 8  # cases with this many op nodes or more are marked `slow`
MARKERS = {
    "jax": "the case is checked against JAX (autodiff-audit)",
    "torch": "the case is checked against PyTorch (autodiff-audit)",
    "slow": "a slow test (autodiff-audit: a case of 8 or more op nodes)",
}


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
    modes: tuple[str, ...] = DEFAULTS.modes  # derivative modes to check, of those the engine has
    backends: Backends | None = None  # loaded on first use
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed, failed or skipped
    selected: int = 0  # audit items left after selection (-k, -m, node ids)
    # (kind, op) of each failure -> the failing cases' node ids, in the order they ran: the first is
    # shown in full with its minimal case, the others refer to it.
    groups: dict[tuple, list[str]] = field(default_factory=dict)

    def loaded(self) -> Backends:
        if self.backends is None:  # once per session: importing JAX or PyTorch takes seconds
            self.backends = load_backends(self.spec, self.oracles, timeout=self.timeout, modes=self.modes)
        return self.backends

    def reference_names(self) -> list[str]:
        return list(self.oracles) if self.backends is None else self.backends.reference_names

    def pytest_report_header(self) -> str:
        return (
            f"{ROOT}: engine {self.spec}, {len(self.cases)} cases, "
            f"references {', '.join(self.oracles)}, modes {', '.join(self.modes)} (those the engine has), "
            f"ops {', '.join(self.generator.ops)}"
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
        missing = "".join(f" ({unavailable_line(u.name, u.reason)})" for u in unavailable)
        for (kind, op), ids in self.groups.items():
            where = f"op {op!r}" if op else "no single op"
            names = [node_id.rsplit("::", 1)[-1] for node_id in ids]
            others = f"; also {', '.join(names[1:])}" if len(names) > 1 else ""
            terminalreporter.write_line(
                f"{ROOT}: {kind} in {where}: {len(ids)} failing cases, {names[0]} shown in full{others}"
            )
        terminalreporter.write_line(
            f"{ROOT}: {cases} cases of {self.spec} against {', '.join(self.reference_names()) or 'nothing'}: "
            f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped{missing}"
        )


STATE = pytest.StashKey[AuditSession]()
NEW_BENCHMARK_STORAGE = pytest.StashKey["Path | None"]()


def _new_benchmark_storage(config: pytest.Config) -> Path | None:
    """The folder pytest-benchmark is about to create for its storage (./.benchmarks by default),
    if it does not exist yet: pytest-benchmark creates it when any session starts, even one that
    saves nothing, in whatever folder a user runs pytest (a reproducer, say); it is removed at the
    end if it is still empty."""
    storage = getattr(config.option, "benchmark_storage", None)
    if not isinstance(storage, str) or ("://" in storage and not storage.startswith("file://")):
        return None
    path = Path(storage.removeprefix("file://")).resolve()
    return None if path.exists() else path


def pytest_unconfigure(config: pytest.Config) -> None:
    storage = config.stash.get(NEW_BENCHMARK_STORAGE, None)
    if storage is not None:
        with contextlib.suppress(OSError):
            storage.rmdir()  # only an empty one: a session that saved benchmarks keeps them


def pytest_configure(config: pytest.Config) -> None:
    config.stash[NEW_BENCHMARK_STORAGE] = _new_benchmark_storage(config)  # before pytest-benchmark's (trylast)
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name, description in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {description}")
    spec = config.getoption("--audit-engine")
    if not spec:
        return
    engine = load_engine_option(spec)
    oracles = oracles_option(config.getoption("--audit-oracles"))
    dtype = config.getoption("--audit-dtype")
    generator = dataclasses.replace(
        DEFAULTS.generator,
        dtype=dtype,
        kinks=config.getoption("--audit-kinks"),
        max_rank=config.getoption("--audit-max-rank"),
    )
    from .audit import AuditConfigError, restricted_generator  # only a session that audits pays its import

    try:  # random graphs use only the engine's ops; flags that make no graph are the user's to change
        generator = restricted_generator(generator, engine)
    except AuditConfigError as error:
        raise pytest.UsageError(f"--audit-engine {spec!r}: {error}") from None
    seed, graphs = config.getoption("--audit-seed"), config.getoption("--audit-graphs")
    state = AuditSession(
        spec=spec,
        oracles=oracles,
        generator=generator,
        cases=selected_cases(config, spec, [(i, seed, dtype) for i in range(graphs)]),
        shrink_seconds=config.getoption("--audit-shrink-seconds"),
        timeout=config.getoption("--audit-timeout"),
        modes=modes_option(config.getoption("--audit-modes")),
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
        index = self.case.seed[1]
        result = run_case(self.case, backends, index).result
        if result.skipped:
            assert self.parent is not None  # an item always hangs under its engine's collector
            self.skipped_at = self.parent.nodeid  # one line for all the cases declined for one reason
            pytest.skip(f"{backends.engine.name} declines the graph: {result.skipped}")
        mine = engine_findings(result, backends)
        if mine:
            target = shrink_target(result, backends)
            group = (target or mine[0]).kind, (target or mine[0]).op
            earlier = state.groups.setdefault(group, [])
            earlier.append(self.nodeid)
            if len(earlier) > 1:  # one minimal case per (kind, op) in full: the others refer to it
                raise AuditFailure(self._failure_report(mine, None, shown_in=earlier[0]))
            budget = Budget(seconds=state.shrink_seconds)
            shrunk = shrink_case(self.case, index, target, backends, budget) if target else None
            raise AuditFailure(self._failure_report(mine, shrunk))
        # The references disagree among themselves (beyond their conventions at kinks) and do not outvote the engine.
        if any(f.kind.rule.discrepancy for f in result.findings):
            details = "; ".join(f"{f.kind} in {f.backend or 'the references'}: {f.detail}" for f in result.findings)
            self.skipped_at = self.nodeid
            pytest.skip(f"references disagree, not the engine's fault: {details}")

    def _failure_report(self, findings, shrunk: Investigation | None, shown_in: str | None = None) -> str:
        """The finding (its first line is pytest's one-line summary), the minimal case node by
        node, its JSON, and the commands that replay it and re-run this test. `shrunk` is the
        pipeline's shrink of the first finding it shrinks (None: none of them is, as a timeout).
        A failure of a (kind, op) already shown in full (`shown_in`) says so, and gives only its
        own replay and re-run commands."""
        state = self.config.stash[STATE]
        lines, view, minimal = failure_view(findings, shrunk, case_to_json(self.case), shown_in)
        text = json.dumps(minimal, separators=(",", ":"))
        replay = replay_command(self._save(text), state.spec)
        rerun = ["pytest", "--audit-engine", state.spec]
        if set(state.oracles) != set(REFERENCES):
            replay += f" --oracles {','.join(state.oracles)}"
        if self.config.getoption("--audit-oracles"):
            rerun += ["--audit-oracles", ",".join(state.oracles)]
        if set(state.modes) != set(DEFAULTS.modes):  # the modes judged the case: the same ones again
            replay += f" --modes {','.join(state.modes)}"
            rerun += ["--audit-modes", ",".join(state.modes)]
        # The case id names (index, seed, dtype); the generator's other options make the case too.
        if state.generator.max_rank != DEFAULTS.generator.max_rank:
            rerun += ["--audit-max-rank", str(state.generator.max_rank)]
        if state.generator.kinks:
            rerun.append("--audit-kinks")
        lines += [
            "",
            *view,
            *([] if shown_in else ["", "case JSON:", text]),
            "",
            "replay:",
            replay,
            "re-run:",
            shlex.join([*rerun, self.nodeid]),
        ]
        return "\n".join(lines)

    def _save(self, text: str) -> str:
        """Write the case for `autodiff-audit replay`: in pytest's cache directory when there is one,
        else in pytest's temporary folder, which pytest prunes."""
        cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        factory = getattr(self.config, "_tmp_path_factory", None)  # pytest's own, which keeps the last 3 sessions'
        if cache is not None:
            directory = cache.mkdir(ROOT)
        elif factory is not None:  # never a folder of our own in TMPDIR that nothing removes
            directory = factory.getbasetemp() / ROOT
            directory.mkdir(exist_ok=True)
        else:  # -p no:tmpdir as well
            directory = Path(tempfile.mkdtemp(prefix=f"{ROOT}-"))
        engine = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.config.stash[STATE].spec)
        path = directory / f"{engine}-{self.name}-minimal.json"
        path.write_text(text + "\n")
        return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, AuditFailure):
            return str(excinfo.value)  # the report, without a Python traceback
        return super().repr_failure(excinfo, style=style)
