"""One case, from start to finish: accepted by the engine, checked against the references,
diagnosed, and its failure shrunk to a minimal case. The audit (on a pool or on Dask), the
pytest plugin, the selftest and `replay` all take a case through here, and nothing they give
it is changed: each step returns a new result.

- `run_case`: accept, check (in the audit's mode), ask the engine again where it fails (an
  answer that changes is `nondeterministic`, and is not diagnosed), diagnose; and, when asked
  with a `Budget`, shrink the first finding against the engine that is shrunk.
- `shrink_case`: shrink one finding of a case (the audit shrinks the findings it picks, once
  every case is in, so that the choice does not depend on the workers' order).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .check import Backends, CaseResult, CheckMode, Finding, answer_again, check_in_mode
from .crash import TIMED_OUT
from .diagnose import Investigation, diagnose, engine_findings, investigate
from .format import Case
from .generate import case_features, op_pairs

FULL = CheckMode()  # every reference on every case


@dataclass(frozen=True)
class Budget:
    """What shrinking one finding may spend."""

    steps: int = 400  # candidates tried
    seconds: float = 5.0


@dataclass(frozen=True)
class CaseRun:
    result: CaseResult  # the case's findings, settled by the diagnosis
    minimal: Investigation | None = None  # the first shrinkable finding against the engine, shrunk (when asked)


def run_case(
    case: Case, backends: Backends, index: int = -1, mode: CheckMode = FULL, keep: bool = False,
    shrink: Budget | None = None,
) -> CaseRun:  # fmt: skip
    """Take `case` through accept, check, diagnose and (with `shrink`) shrink. `keep` keeps
    every backend's evaluation in the result (replay prints them)."""
    reason = backends.engine.declines(case.graph)
    if reason:
        ops = sorted({node["op"] for node in case.graph["nodes"]})
        return CaseRun(CaseResult(index, {}, ops, 0, 0.0, [], {}, skipped=reason, redraws=case.redraws))
    checked = check_in_mode(case, backends, index, mode, keep=True)
    again = _asked_again(case, checked, backends)
    if again is not None:  # no op to blame: the engine's answer changes when the case is asked again
        others = [f for f in checked.findings if f.backend != backends.engine.name]
        result = dataclasses.replace(checked, findings=[*others, again])
    else:
        result = diagnose(case, checked, backends).result
    result = dataclasses.replace(
        result, features=sorted(case_features(case)), op_pairs=sorted(op_pairs(case)),
        evaluations=result.evaluations if keep else None,
    )  # fmt: skip
    if shrink is None or (target := shrink_target(result, backends)) is None:
        return CaseRun(result)
    return CaseRun(result, shrink_case(case, index, target, backends, shrink))


def _asked_again(case: Case, checked: CaseResult, backends: Backends) -> Finding | None:
    """A case the engine fails is asked again before it is diagnosed: an engine whose answers
    change between identical calls is `nondeterministic`, not wrong in some op. (A hang is not
    asked again: it would wait out the time limit a second time.)"""
    if not engine_findings(checked, backends):
        return None
    first = next(e for e in checked.evaluations or [] if e.role == "engine")
    if first.crash is not None and first.crash.cause == TIMED_OUT:
        return None
    return answer_again(case, backends, first)


def shrink_target(result: CaseResult, backends: Backends) -> Finding | None:
    """The first finding against the engine whose kind is shrunk."""
    return next((f for f in engine_findings(result, backends) if f.kind.rule.shrunk), None)


def shrink_case(case: Case, index: int, finding: Finding, backends: Backends, budget: Budget) -> Investigation:
    """Shrink `case` while `finding` persists with its diagnosis; confirm and triage the minimal case."""
    return investigate(case, index, finding, backends, max_steps=budget.steps, max_seconds=budget.seconds)
