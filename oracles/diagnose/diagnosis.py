"""A finding's diagnosis: its final kind and the op at fault. This is the one place they are set.

`compare` says what differs (a value, a gradient, a crash, a shape, NaN/Inf); triage says
where (which node's own rule, or none: composition). `settle` joins the two:
- a wrong value or gradient takes the kind of the first wrong local rule (value, gradient,
  or shape for a scalar where a tensor is due) and that node's op; if every local rule is
  right, it is `composition` (fan-out accumulation, ordering), with no op;
- any other kind (crash, shape, nan-inf) keeps its kind and takes the op of the node whose
  local check fails, if triage found one.

A case with operands exactly on a kink (kink mode) is always triaged, against every AD
reference, since the whole-case vote cannot judge it alone: there, valid conventions differ.
Each kink node's answers go into the result's `kinks`; a local rule triage finds wrong (or a
convention) that the vote could not blame, because the references disagreed, becomes a finding
of its own; and a disagreement of the references that only their conventions at kinks explain
becomes `reference-conventions`, which blames nobody.
"""

from __future__ import annotations

from ..check import Backends, CaseResult, Finding
from ..format import Case
from .triage import Triage, triage

# The kinds compare gives for a wrong number; triage sharpens them to a rule or to composition.
WRONG_NUMBER_KINDS = ("value", "gradient")
RULE_KINDS = (*WRONG_NUMBER_KINDS, "composition")
# References that disagree only in their valid conventions at kinks blame nobody: such a finding
# is shown with the conventions, never counted as a discrepancy, never shrunk.
NOT_A_DISCREPANCY = ("reference-conventions",)


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
    triage against the fast references (every reference, at kinks). Returns the triage, or None
    if there was nothing to diagnose or triage could not finish (the findings then stand as found)."""
    mine = engine_findings(result, backends)
    at_kinks = bool(result.kink_nodes)
    if not mine and not at_kinks:
        return None
    try:
        local = triage(case, backends if at_kinks else backends.fast(), whole=result)
    except Exception:  # triage is a diagnosis: if it cannot finish, the findings stand as found
        local = None
    if at_kinks and local is not None:
        # A kink whose cotangent is 0 (a relu below it is off) shows no one's answer.
        result.kinks = [
            n.kink for n in local.nodes if n.kink and any("unseen" not in a for a in n.kink["answers"].values())
        ]
        _explain_reference_conventions(result, local, backends.engine.name)
        if not mine and local.op is not None and local.kind is not None:
            # The whole-case vote could not blame the engine (the references disagreed), but its own rule is wrong.
            node = local.culprit()
            assert node is not None  # triage named this node
            detail = f"{node.name} = {node.op}(...): {node.detail or 'the local rule disagrees with the references'}"
            quantity = "value" if local.kind == "value" else "gradient"
            mine = [Finding(local.kind, backends.engine.name, quantity, None, detail)]
            result.findings.extend(mine)
    for finding in mine:
        finding.kind, finding.op = settle(finding.kind, local)
        node = local.culprit() if local is not None else None
        if finding.kind == "convention" and node is not None:
            finding.detail = f"{node.name} = {node.op}(...): {node.detail}"
    return local


def _explain_reference_conventions(result: CaseResult, local: Triage, engine: str) -> None:
    """References that disagree only where they follow different valid conventions at kinks blame nobody."""
    differing = [n for n in local.nodes if n.references_differ]

    def references_valid(node) -> bool:
        return bool(node.kink) and all(ok for backend, ok in node.kink["valid"].items() if backend != engine)

    if not differing or not all(references_valid(n) for n in differing):
        return
    kinks = [n.kink for n in differing if n.kink]
    described = "; ".join(
        f"{kink['kink']} ({', '.join(f'{b} {a}' for b, a in kink['answers'].items() if b != engine)})" for kink in kinks
    )
    for finding in result.findings:
        if finding.kind == "references-disagree":
            finding.kind, finding.op, finding.backend = "reference-conventions", differing[0].op, None
            finding.detail = f"the references follow different conventions at {described}"
