"""What happens to a failing case: shrink it, confirm it, and name the op at fault.

Shrinking calls the predicate hundreds of times, so it runs against the fast references
(PyTorch and finite differences; JAX compiles once per new shape, and shrinking makes
new shapes on every step). The minimal case is then confirmed against every reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .graph import Case, case_to_json
from .shrink import shrink, size
from .triage import triage

# The kinds that triage can sharpen: a wrong local rule names its op; none means composition.
RULE_KINDS = ("value", "gradient", "composition")


@dataclass
class Investigation:
    index: int
    target: str  # the kind of finding that was kept while shrinking
    kind: str  # the finding's kind after triage of the minimal case
    backend: str | None
    op: str | None
    node: str | None  # the node of the minimal case whose local rule is wrong
    minimal: dict | None  # the minimal case, graph format
    confirmed: bool  # the minimal case fails the same way against every reference
    original_size: tuple[int, int]  # (op nodes, input elements)
    minimal_size: tuple[int, int]
    shrink_steps: int
    shrink_seconds: float
    nodes: list[dict] = field(default_factory=list)  # the minimal case, node by node (triage)
    error: str | None = None  # if the investigation itself could not finish
    expected: dict | None = None  # the references' value and VJPs on the minimal case
    actual: dict | None = None  # the engine's, or {"crash": "..."}


def fast_references(references: list) -> list:
    """The references for predicates that run many times: all but JAX, when another AD remains."""
    others = [r for r in references if r.name != "jax"]
    return others or references


def accepted(engine, graph: dict) -> str | None:
    """The engine's reason for declining `graph` (the optional `accepts` hook), or None."""
    accepts = getattr(engine.plugin, "accepts", None)
    if accepts is None:
        return None
    try:
        reason = accepts(graph)
    except Exception:  # a faulty hook declines nothing; the evaluation will tell
        return None
    return reason if isinstance(reason, str) and reason else None


def _matches(finding, kind: str, backend: str | None, crash_type: str | None) -> bool:
    if finding.backend != backend:
        return False
    if kind in RULE_KINDS:
        return finding.kind in ("value", "gradient")
    if kind == "crash":
        return finding.kind == "crash" and _crash_type(finding.detail) == crash_type
    return finding.kind == kind


def _crash_type(detail: str) -> str:
    return detail.split(":")[0]


def op_of(case: Case, engine, references, use_numeric, check_case) -> tuple[str | None, str | None]:
    """Triage of `case` with the fast references: (the local kind, value or gradient, and its
    op) for a wrong local rule; ("composition", None) when every local rule agrees; (None,
    None) when triage cannot tell."""
    try:
        local = triage(case, engine, fast_references(references), use_numeric, check_case)
    except Exception:  # triage is a diagnosis: if it cannot finish, the finding stands as found
        return None, None
    return local.kind, local.op


def investigate(
    case: Case,
    index: int,
    kind: str,
    backend: str | None,
    detail: str,
    engine,
    references: list,
    use_numeric: bool,
    check_case,
    max_steps: int = 400,
    max_seconds: float = 5.0,
) -> Investigation:
    """Shrink `case` while a finding of this kind in this backend persists; then triage it."""
    fast = fast_references(references) if backend != "jax" else references
    crash_type = _crash_type(detail) if kind == "crash" else None

    def still_fails(candidate: Case) -> bool:
        if accepted(engine, candidate.graph):
            return False
        result = check_case(candidate, engine, fast, use_numeric)
        return any(_matches(f, kind, backend, crash_type) for f in result.findings)

    shrunk = shrink(case, still_fails, max_steps=max_steps, max_seconds=max_seconds)
    minimal = shrunk.case
    confirmed_result = check_case(minimal, engine, references, use_numeric, keep=True)
    confirmed = any(_matches(f, kind, backend, crash_type) for f in confirmed_result.findings)
    final_kind, op, node, nodes = kind, None, None, []
    if backend == engine.name:
        local = triage(minimal, engine, fast, use_numeric, check_case)
        nodes = [asdict(report) for report in local.nodes]
        op, node = local.op, local.node
        if kind in RULE_KINDS and local.kind:
            # A wrong local rule keeps its own kind (value, gradient, or shape for a scalar
            # where a tensor is due); no wrong local rule is composition.
            final_kind = local.kind
    return Investigation(
        index=index,
        target=kind,
        kind=final_kind,
        backend=backend,
        op=op,
        node=node,
        minimal=case_to_json(minimal),
        confirmed=confirmed,
        original_size=size(case),
        minimal_size=size(minimal),
        shrink_steps=shrunk.steps,
        shrink_seconds=round(shrunk.seconds, 3),
        nodes=nodes,
        expected=_result_of(confirmed_result, lambda e: e.role == "reference"),
        actual=_result_of(confirmed_result, lambda e: e.backend == engine.name),
    )


def _result_of(result, which) -> dict | None:
    for evaluation in result.evaluations or []:
        if which(evaluation):
            if evaluation.crash:
                return {"backend": evaluation.backend, "crash": evaluation.crash}
            try:
                gradients = {n: np.asarray(g).tolist() for n, g in (evaluation.gradients or {}).items()}
                return {
                    "backend": evaluation.backend,
                    "value": np.asarray(evaluation.value).tolist(),
                    "gradients": gradients,
                }
            except Exception:
                return {"backend": evaluation.backend, "malformed": repr(evaluation.value)[:200]}
    return None
