"""The report as typed data. `build.py` makes a `Report` from an `AuditRun`; report.md, the
terminal summary and the files of a report folder are rendered from it, and it becomes JSON
only when it is written (`Report.to_json`), against the published schema in
docs/report.schema.json. The field names are the JSON's keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..diagnose import Investigation
from ..failures import FailureDatabaseRun
from ..kinds import Kind


@dataclass
class OpStats:
    graphs: int = 0  # audited graphs that use the op
    checks: int = 0
    max_margin: float = 0.0  # the worst engine margin of those graphs
    failures: int = 0  # of those graphs, the failing ones


@dataclass(frozen=True)
class MinimalSize:
    op_nodes: int
    input_elements: int
    original_op_nodes: int
    original_input_elements: int


@dataclass(frozen=True)
class Group:
    """Discrepancies of one (kind, backend, op), as diagnosed, with the group's minimal case."""

    kind: Kind
    backend: str | None
    op: str | None
    discrepancies: int
    graphs: list[int]
    minimal_from: int | None  # the graph whose minimal case stands for the group
    minimal_size: MinimalSize | None
    why_no_minimal: str | None = None  # when no minimal case stands for it: why
    # Whether a shrunk case of it failed again when checked against every reference (None: none
    # was shrunk). A group whose shrunk cases all passed then is no bug to fix yet.
    reproduced: bool | None = None

    def key(self) -> tuple:
        return (self.kind, self.backend, self.op)


@dataclass(frozen=True)
class FindingEntry:
    """One finding on one graph, with that graph's case."""

    index: int
    seed: list[int]
    kind: Kind
    op: str | None
    backend: str | None
    quantity: str | None
    input: str | None
    detail: str
    margin: float | None
    expected_from: list[str]
    expected: object
    actual: object
    case: dict
    case_file: str | None


@dataclass(frozen=True)
class Discrepancy(FindingEntry):
    """A finding that counts, with its group's minimal case."""

    minimal: dict | None = None
    minimal_from: int | None = None
    minimal_confirmed: bool | None = None
    minimal_file: str | None = None


@dataclass
class MinimalCase(Investigation):
    """An investigation with the files the report writes for it."""

    case_file: str | None = None  # its minimal case's JSON
    reproducer: str | None = None  # its standalone pytest file (when the references' answer is recorded)
    # A script for the engine's issue tracker, numpy and the engine only (report/upstream.py): written
    # with the reproducer when the engine is an adapter in the layout of engines/compose.py.
    upstream: str | None = None

    def key(self) -> tuple:
        return (self.index, self.kind, self.backend, self.op)


@dataclass(frozen=True)
class KinkRow:
    """What every backend answered at one kind of kink, over the audit's kink nodes."""

    kink: str
    op: str
    nodes: int
    engine: dict[str, int]  # answer -> nodes
    references: dict[str, dict[str, int]]  # reference -> answer -> nodes
    engine_follows: dict[str, int]  # whom the engine followed -> nodes
    verdicts: dict[str, int]


@dataclass(frozen=True)
class Conventions:
    engine_findings: int  # convention findings against the engine
    reference_differences: int  # graphs where the references differ only in their conventions
    kinks: list[KinkRow]


@dataclass(frozen=True)
class Coverage:
    ops: dict[str, int]  # op -> audited graphs that use it
    op_pairs: dict[str, int]
    op_pairs_seen: int
    op_pairs_possible: int
    features: dict[str, int]
    features_seen: int
    features_total: int
    out_of_reach: dict[str, str]  # feature -> why these flags can never produce it
    not_seen: list[str]
    kinks: dict[str, int] | None  # kink mode only


@dataclass(frozen=True)
class Skipped:
    graphs: int
    reasons: dict[str, int]


@dataclass(frozen=True)
class Generation:
    redraws: int
    graphs_with_a_redraw: int


@dataclass(frozen=True)
class ModeUse:
    """Which references checked how much (check.CheckMode)."""

    name: str
    jax_sample: float | None
    jax_graphs: int
    jax_fraction: float | None
    jax_because: dict[str, int]


@dataclass(frozen=True)
class DerivativeMode:
    """One derivative mode (vjp, jvp, hvp): whether it was checked, and how much."""

    name: str
    checked: bool
    why_not: str | None  # when not checked: the engine lacks it, or --modes left it out
    graphs: int  # graphs with at least one check in this mode
    checks: int
    worst_margin: float | None  # the engine's worst margin in this mode
    discrepancies: int


@dataclass(frozen=True)
class Shrinking:
    shrunk: int
    failed: list[dict]  # {"index", "error"} of each investigation that could not finish
    median_seconds: float | None
    max_seconds: float | None
    limit_per_group: int


@dataclass(frozen=True)
class BackendsRan:
    engine: str
    engine_spec: str
    references: list[str]
    unavailable: dict[str, str]
    left_running: list[str]  # processes that outlived every kill, "pid 123 (name)"
    notes: dict[str, str]  # a reference's one line about how it ran


@dataclass(frozen=True)
class NearMiss:
    index: int
    margin: float


@dataclass(frozen=True)
class Summary:
    graphs: int
    graphs_requested: int
    interrupted: bool
    time_budget_seconds: float | None  # set when --time ended the audit before its target
    checks: int
    discrepancies: int
    failing_graphs: int
    coverage: Coverage
    conventions: Conventions
    skipped: Skipped
    generation: Generation
    mode: ModeUse
    derivative_modes: list[DerivativeMode]
    failure_database: FailureDatabaseRun | None
    kinds: dict[str, int]
    groups: list[Group]
    shrinking: Shrinking
    backends: BackendsRan
    ops: dict[str, OpStats]
    worst_passing_margin: float | None
    near_misses: list[NearMiss]
    seed: int
    report_folder: str
    generator: dict
    error_model: dict
    versions: dict[str, str | None]
    workers: int
    ran_on: str | None
    wall_seconds: float
    graphs_per_second: float | None
    backend_seconds: dict[str, float]


@dataclass(frozen=True)
class Report:
    summary: Summary
    discrepancies: list[Discrepancy]
    reference_conventions: list[FindingEntry]  # the references' differences in their conventions at kinks
    minimal_cases: list[MinimalCase] = field(default_factory=list)

    def groups_shown_under(self, section: str) -> list[Group]:
        """The groups report.md shows in `section` (kinds.WHAT_TO_FIX or kinds.CONVENTIONS), largest
        first; a group none of whose shrunk cases failed again is not among them (`not_reproduced`)."""
        return [g for g in self.summary.groups if g.kind.rule.shown_under == section and g.reproduced is not False]

    def not_reproduced(self) -> list[Group]:
        """The groups whose shrunk cases all passed when checked again: shown apart, never as a bug."""
        return [g for g in self.summary.groups if g.reproduced is False]

    def first_of(self, group: Group) -> Discrepancy:
        """The group's first discrepancy, in case order."""
        return next(d for d in self.discrepancies if (d.kind, d.backend, d.op) == group.key())

    def minimal_case_of(self, group: Group) -> MinimalCase | None:
        """The minimal case that stands for `group` (None when it was not shrunk)."""
        key = (group.minimal_from, group.kind, group.backend, group.op)
        return next((m for m in self.minimal_cases if m.minimal is not None and m.key() == key), None)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def unavailable_line(name: str, reason: str) -> str:
    """A reference that did not judge, and why: "left out" when it is the engine's own library
    (check/core.py LEFT_OUT), "unavailable" when it could not be loaded here."""
    if reason.startswith("left out: "):
        return f"left out: {name}: {reason.removeprefix('left out: ')}"
    return f"unavailable: {name}: {reason}"
