"""A finding's diagnosis: its final kind and the op at fault. This is the one place they are set.

`compare` says what differs (a value, a gradient, a crash, a shape, NaN/Inf); triage says
where (which node's own rule, or none: composition). `settle` joins the two:
- a wrong value or gradient takes the kind of the first wrong local rule (value, gradient,
  or shape for a scalar where a tensor is due) and that node's op; if every local rule is
  right, it is `composition` (fan-out accumulation, ordering), with no op;
- any other kind (crash, shape, nan-inf) keeps its kind and takes the op of the node whose
  local check fails, if triage found one.
"""

from __future__ import annotations

from ..check import Backends, CaseResult
from ..format import Case
from .triage import Triage, triage

# The kinds compare gives for a wrong number; triage sharpens them to a rule or to composition.
WRONG_NUMBER_KINDS = ("value", "gradient")
RULE_KINDS = (*WRONG_NUMBER_KINDS, "composition")


def settle(kind: str, local: Triage | None) -> tuple[str, str | None]:
    """(final kind, op at fault) of a finding of `kind`, given triage of its case (None if triage failed)."""
    if local is None:
        return kind, None
    if kind not in WRONG_NUMBER_KINDS:
        return kind, local.op
    if local.kind is None:  # the case passed triage's own check: nothing to sharpen
        return kind, None
    return local.kind, local.op  # a wrong local rule, or composition (whose op is None)


def engine_findings(result: CaseResult, backends: Backends) -> list:
    return [f for f in result.findings if f.backend == backends.engine.name]


def diagnose_case(case: Case, result: CaseResult, backends: Backends) -> Triage | None:
    """Settle the kind and op of every finding against the engine in `result` (in place), by
    triage against the fast references. Returns the triage, or None if there was nothing to
    diagnose or triage could not finish (the findings then stand as found)."""
    mine = engine_findings(result, backends)
    if not mine:
        return None
    try:
        local = triage(case, backends.fast(), whole=result)
    except Exception:  # triage is a diagnosis: if it cannot finish, the findings stand as found
        local = None
    for finding in mine:
        finding.kind, finding.op = settle(finding.kind, local)
    return local
