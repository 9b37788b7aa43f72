"""What happens to a failing case: shrink it while its diagnosis holds, confirm it, and show
it node by node.

Shrinking keeps a candidate only if the same finding persists with the same diagnosis: the
same backend, the same kind and, for the engine, the same op at fault (so a group's minimal
case always shows the group's own bug). Its predicate runs hundreds of times, so it checks
against the fast references (`Backends.fast`); the minimal case is then confirmed against all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..check import Backends, Finding, check_case
from ..check.modes import mode_of
from ..crash import Crash
from ..format import Case, case_to_json
from ..kinds import Kind
from .diagnosis import diagnose, engine_findings
from .shrink import shrink, size
from .triage import NodeReport, differing, triage


@dataclass(frozen=True)
class Target:
    """The finding a shrink keeps: the group it belongs to, and the crash's type for a crash."""

    kind: Kind
    backend: str | None
    op: str | None
    crash_type: str | None = None
    mode: str = "vjp"  # a crash in forward mode is not the same finding as one in reverse mode

    @classmethod
    def of(cls, finding: Finding) -> Target:
        # An exception keeps its type; a process that died stays one that died (however it died).
        crash_type = finding.crash.signature() if finding.crash is not None else None
        return cls(finding.kind, finding.backend, finding.op, crash_type, mode_of(finding))

    def group(self) -> tuple:
        return (self.kind, self.backend, self.op)

    def matches(self, finding: Finding) -> bool:
        return Target.of(finding) == self


@dataclass
class Investigation:
    index: int
    kind: Kind
    backend: str | None
    op: str | None
    node: str | None  # the node of the minimal case whose local rule is wrong
    minimal: dict | None  # the minimal case, graph format
    confirmed: bool  # the minimal case fails the same way against every reference
    original_size: tuple[int, int]  # (op nodes, input elements)
    minimal_size: tuple[int, int]
    shrink_steps: int
    shrink_seconds: float
    nodes: list[NodeReport] = field(default_factory=list)  # the minimal case, node by node (triage)
    error: str | None = None  # if the investigation itself could not finish
    expected: dict | None = None  # the references' value and VJPs on the minimal case
    actual: dict | None = None  # the engine's, or {"crash": "..."}
    differs: list[str] = field(default_factory=list)  # where the engine's answer fails its check: "value", inputs

    def group(self) -> tuple:
        return (self.kind, self.backend, self.op)

    @classmethod
    def unfinished(cls, case: Case, index: int, finding: Finding, error: str) -> Investigation:
        """The investigation of `finding` in `case` that could not finish, and why."""
        target = Target.of(finding)
        return cls(
            index=index, kind=target.kind, backend=target.backend, op=target.op, node=None, minimal=None,
            confirmed=False, original_size=size(case), minimal_size=size(case), shrink_steps=0, shrink_seconds=0.0,
            error=error,
        )  # fmt: skip


def _persists(case: Case, target: Target, backends: Backends) -> bool:
    result = check_case(case, backends)
    if target.backend == backends.engine.name:
        if not engine_findings(result, backends):
            return False
        result = diagnose(case, result, backends).result
    return any(target.matches(f) for f in result.findings)


def investigate(
    case: Case, index: int, finding: Finding, backends: Backends, max_steps: int = 400, max_seconds: float = 5.0
) -> Investigation:
    """Shrink `case` while `finding` persists with its diagnosis; then confirm and triage the result.
    A diagnosis that fails leaves an Investigation with `error` set and no minimal case."""
    try:
        return _investigate(case, index, Target.of(finding), backends, max_steps, max_seconds)
    except Exception as error:
        return Investigation.unfinished(case, index, finding, Crash.raised(error).describe())


def _investigate(case, index, target: Target, backends: Backends, max_steps, max_seconds) -> Investigation:
    # Shrinking a JAX finding needs JAX; anything else shrinks against the fast references.
    shrinking = backends if target.backend == "jax" else backends.fast()

    def still_fails(candidate: Case) -> bool:
        return not backends.engine.declines(candidate.graph) and _persists(candidate, target, shrinking)

    shrunk = shrink(case, still_fails, max_steps=max_steps, max_seconds=max_seconds)
    minimal = shrunk.case
    confirmed_result = check_case(minimal, backends, keep=True)
    node, nodes = None, []
    if target.backend == backends.engine.name:
        # The node-by-node view is the diagnosis's own triage; a minimal case that no longer
        # fails against every reference is triaged for the view alone.
        diagnosis = diagnose(minimal, confirmed_result, backends)
        confirmed_result = diagnosis.result
        local = diagnosis.triage or triage(minimal, backends.fast())
        nodes, node = local.nodes, local.node
    confirmed = any(target.matches(f) for f in confirmed_result.findings)
    return Investigation(
        index=index,
        kind=target.kind,
        backend=target.backend,
        op=target.op,
        node=node,
        minimal=case_to_json(minimal),
        confirmed=confirmed,
        original_size=size(case),
        minimal_size=size(minimal),
        shrink_steps=shrunk.steps,
        shrink_seconds=round(shrunk.seconds, 3),
        nodes=nodes,
        expected=_result_of(confirmed_result, lambda e: e.role == "reference"),
        actual=_result_of(confirmed_result, lambda e: e.backend == backends.engine.name),
        differs=differing(engine_findings(confirmed_result, backends), [e["name"] for e in minimal.graph["inputs"]]),
    )


def _result_of(result, which) -> dict | None:
    for evaluation in result.evaluations or []:
        if which(evaluation):
            if evaluation.crash:
                return {"backend": evaluation.backend, "crash": evaluation.crash.describe()}
            try:
                gradients = {n: np.asarray(g).tolist() for n, g in (evaluation.gradients or {}).items()}
                return {
                    "backend": evaluation.backend,
                    "value": np.asarray(evaluation.value).tolist(),
                    "gradients": gradients,
                    **_forward_answers(result, evaluation.backend),
                }
            except Exception:
                return {"backend": evaluation.backend, "malformed": repr(evaluation.value)[:200]}
    return None


def _forward_answers(result, backend: str) -> dict:
    """The backend's J t1 ("jvp") and H t1 ("hvp") on the case, where it gave them: the tangents
    come from the case's seed, so a reproducer asks for the same ones."""
    answers = {}
    for answer in result.mode_answers or []:
        if answer.backend != backend or answer.crash is not None or answer.mode in answers:
            continue  # the first hvp is along t1; the engine's second, along t2, is for symmetry only
        if answer.mode == "jvp" and isinstance(answer.answer, (tuple, list)) and len(answer.answer) == 2:
            answers["jvp"] = np.asarray(answer.answer[1]).tolist()
        elif answer.mode == "hvp" and isinstance(answer.answer, dict):
            answers["hvp"] = {n: np.asarray(p).tolist() for n, p in answer.answer.items()}
    return answers
