"""A finding's diagnosis: its final kind and the op at fault. This is the one place they are set.

`compare` says what differs (a value, a gradient, a crash, a shape, NaN/Inf); triage says
where (which node's own rule, or none: composition). `settle` joins the two:
- a kind that triage sharpens (kinds.py: a wrong value or gradient) takes the kind of the
  first wrong local rule (value, gradient, or shape for a scalar where a tensor is due) and
  that node's op; if every local rule is right, it is `composition` (fan-out accumulation,
  ordering), with no op;
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

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..check import Backends, CaseResult, Finding, evaluate
from ..check.modes import mode_of
from ..crash import DIED, Crash
from ..format import Case, FormatError, validate_case
from ..kinds import Kind
from ..ops import OPS
from .triage import NOT_CHECKED, OK, Triage, triage


@dataclass(frozen=True)
class Diagnosis:
    """A case's result with its findings settled (a new result: the one diagnosed is not
    changed), and the triage that settled them (None if there was nothing to triage, or
    triage could not finish)."""

    result: CaseResult
    triage: Triage | None


# The modes whose local rules a finding in each mode is computed with: second order is forward
# over reverse, so a node with a wrong VJP or JVP rule makes H t wrong too.
EXPLAINED_BY = {"vjp": ("vjp",), "jvp": ("jvp",), "hvp": ("hvp", "vjp", "jvp")}


def settle(kind: Kind, local: Triage | None, mode: str = "vjp") -> tuple[Kind, str | None]:
    """(final kind, op at fault) of a finding of `kind` in derivative `mode`, given triage of its
    case (None if triage failed). Only a node whose forward value is wrong (which every mode
    computes from) explains it, or one wrong in a mode that `mode` is computed with: a node wrong
    in `mode` itself gives its own kind, one wrong in another mode only its op."""
    if local is None or not kind.rule.located:
        return kind, None

    def verdict(node) -> Kind | None:
        if node.verdict in (OK, NOT_CHECKED):
            return None
        if Kind(node.verdict).rule.culprit_rank == 0:  # a wrong value: every mode computes from it
            return Kind(node.verdict)
        for explaining in EXPLAINED_BY.get(mode, (mode,)):
            if (found := node.modes.get(explaining)) is not None:
                return Kind(found) if explaining == mode else kind
        return None

    if not kind.rule.sharpened:
        # The node whose own check fails the same way (a crash where the engine crashes), before
        # the first wrong node: in where(m, x, reduce_prod(y)), a NaN of reduce_prod's comes first
        # and a crash of where's is where's. A crash in forward mode is not a crash in reverse mode.
        same = next((node for node in local.nodes if node.modes.get(mode) == kind), None)
        if same is not None:
            return kind, same.op
        culprit = local.culprit()
        return kind, culprit.op if culprit is not None and verdict(culprit) is not None else None
    if local.kind is None:  # the case passed triage's own check: nothing to sharpen
        return kind, None
    relevant = [(found, node) for node in local.nodes if (found := verdict(node)) is not None]
    if not relevant:  # every local rule of this mode is right, the whole graph is not
        return Kind.COMPOSITION, None
    found, culprit = min(relevant, key=lambda pair: pair[0].rule.culprit_rank)
    return found, culprit.op


def engine_findings(result: CaseResult, backends: Backends) -> list[Finding]:
    return [f for f in result.findings if f.backend == backends.engine.name]


def diagnose(case: Case, result: CaseResult, backends: Backends) -> Diagnosis:
    """Settle the kind and op of every finding against the engine in `result`, by triage against
    the fast references (every reference, at kinks). Without triage (nothing to diagnose, or a
    triage that could not finish) the findings stand as found."""
    engine = backends.engine.name
    mine = engine_findings(result, backends)
    at_kinks = bool(result.kink_nodes)
    if not mine and not at_kinks:
        return Diagnosis(result, None)
    try:
        local = triage(case, backends if at_kinks else backends.fast(), whole=result)
    except Exception:  # triage is a diagnosis: if it cannot finish, the findings stand as found
        return Diagnosis(result, None)
    findings, kinks = list(result.findings), result.kinks
    if at_kinks:
        # A kink whose cotangent is 0 (a relu below it is off) shows no one's answer.
        kinks = [n.kink for n in local.nodes if n.kink and any("unseen" not in a for a in n.kink["answers"].values())]
        findings = _explain_reference_conventions(findings, local, engine)
        if not mine and local.op is not None and local.kind is not None:
            # The whole-case vote could not blame the engine (the references disagreed), but its own rule is wrong.
            node = local.culprit()
            assert node is not None  # triage named this node
            detail = f"{node.name} = {node.op}(...): {node.detail or 'the local rule disagrees with the references'}"
            mode = next(iter(node.modes), "vjp")
            quantity = "value" if local.kind == Kind.VALUE else {"vjp": "gradient"}.get(mode, mode)
            findings.append(Finding(local.kind, engine, quantity, None, detail))
    culprit = local.culprit()
    settled = []
    for finding in findings:
        if finding.backend == engine:
            kind, op = settle(finding.kind, local, mode_of(finding))
            if (
                op is not None
                and finding.crash is not None
                and _crashes_whatever_the_op(case, backends, op, finding.crash)
            ):
                op = None  # one finding about the engine, not one per op it happened to meet
            detail = finding.detail
            if kind == Kind.CONVENTION and culprit is not None:
                detail = f"{culprit.name} = {culprit.op}(...): {culprit.detail}"
            finding = dataclasses.replace(finding, kind=kind, op=op, detail=detail)
        settled.append(finding)
    return Diagnosis(dataclasses.replace(result, findings=settled, kinks=kinks), local)


def _crashes_whatever_the_op(case: Case, backends: Backends, op: str, crash: Crash) -> bool:
    """Whether the engine fails the same way (raises the very same exception, with its type,
    message and place; or runs out of time) on a one-node graph of another op: then the failure is
    the engine's, whatever the op. The other op is the first unary op of the table the engine has
    whose domain holds the scalar 0.5 (with its default attrs)."""
    if crash.cause == DIED:
        return False  # how a process dies says nothing of where: it stays with its op
    x, dtype = 0.5, case.graph["dtype"]
    other = next((
        entry for entry in OPS.values()
        if entry.name != op and entry.name in backends.engine.ops and entry.arity == 1
        and entry.domain(0).holds(np.asarray(x), dtype) and entry.check_attrs(dict(entry.attrs)) is None
    ), None)  # fmt: skip
    if other is None:
        return False  # nothing to compare with: the crash stays with its op
    graph = {
        "format": case.graph["format"], "version": case.graph["version"], "dtype": dtype,
        "inputs": [{"name": "x", "shape": []}], "nodes": [{"name": "y", "op": other.name, "inputs": ["x"]}],
        "output": "y",
    }  # fmt: skip
    try:
        probe = validate_case({"graph": graph, "values": {"x": x}, "cotangent": 1.0, "seed": case.seed})
    except FormatError:
        return False  # the op takes no scalar: no probe
    answer = evaluate(backends.engine, probe)  # never raises: whatever the engine does is its answer
    return answer.crash == crash


def _explain_reference_conventions(findings: list[Finding], local: Triage, engine: str) -> list[Finding]:
    """References that disagree only where they follow different valid conventions at kinks blame nobody."""
    differing = [n for n in local.nodes if n.references_differ]

    def references_valid(node) -> bool:
        return bool(node.kink) and all(ok for backend, ok in node.kink["valid"].items() if backend != engine)

    if not differing or not all(references_valid(n) for n in differing):
        return findings
    kinks = [n.kink for n in differing if n.kink]
    described = "; ".join(
        f"{kink['kink']} ({', '.join(f'{b} {a}' for b, a in kink['answers'].items() if b != engine)})" for kink in kinks
    )
    detail = f"the references follow different conventions at {described}"
    explained = {"kind": Kind.REFERENCE_CONVENTIONS, "op": differing[0].op, "backend": None, "detail": detail}
    return [
        dataclasses.replace(finding, **explained) if finding.kind == Kind.REFERENCES_DISAGREE else finding
        for finding in findings
    ]
