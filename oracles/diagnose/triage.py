"""Triage: blame down to the op.

For a failing case, every node is checked on its own: a one-node graph whose operands are
the references' values at that node and whose cotangent is the references' adjoint there
(d sum(v * output) / d node). The engine is reached only through the plug-in protocol, so
this works for any engine. If a node's local rule disagrees, that op is named (`value` or
`gradient`); if every local rule agrees but the whole graph does not, the bug is in how
gradients are combined (fan-out accumulation, ordering): `composition`.

A node whose operands sit exactly on a kink of its op (relu at 0, a maximum tie) has no one
right answer. There the engine's local rule is judged by its entry's `kinks` (ops/kinks.py),
against every AD reference: an answer that matches a reference's is right (the node's record
says which it follows); a valid one that matches none is a `convention`; an invalid one (a
tie whose parts add up to 0) is a `gradient` error, as is any difference away from the kink.
The same operand twice (maximum(x, x)) is no kink: any valid split gives the right sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..check import Backends, CaseResult, Finding, check_case
from ..check.compare import RTOL, array_check
from ..check.modes import mode_of
from ..format import Case, reference_values
from ..kinds import Kind
from ..ops import OPS
from ..ops.kinks import judge, kink_at, kink_region

OK = "ok"  # a node's verdict when its local rule agrees with the references
NOT_CHECKED = "not checked"  # ... when an earlier node's local check ran out of time


@dataclass
class NodeReport:
    """One node seen on its own: expected (references) against actual (the engine)."""

    name: str
    op: str
    inputs: list[str]
    local_inputs: list[str]  # the inputs of the one-node check: one per operand slot
    attrs: dict
    value: list | float  # the references' value at the node
    adjoint: list | float  # the references' d sum(v * output) / d node: the local cotangent
    verdict: Kind | str  # "ok", or the kind of the local finding
    detail: str = ""
    actual_value: object = None
    expected_vjp: dict = field(default_factory=dict)  # operand -> the references' local VJP
    actual_vjp: dict = field(default_factory=dict)  # operand -> the engine's local VJP
    references_differ: bool = False  # the references disagree among themselves on this node alone
    kink: dict | None = None  # at a kink: each backend's answer there, and whom the engine follows
    differs: list[str] = field(default_factory=list)  # what the local check found wrong: "value", operand names
    # The local verdict in each derivative mode the node fails in (check/modes.py): a wrong VJP
    # rule is wrong in second order too, and a finding in either mode is explained by it.
    modes: dict[str, str] = field(default_factory=dict)


def _not_checked(node: dict, intermediate: dict, adjoint: np.ndarray, hung: str) -> NodeReport:
    """A node left unchecked: the local check of node `hung`, before it, ran out of time."""
    return NodeReport(
        name=node["name"], op=node["op"], inputs=list(node["inputs"]), local_inputs=local_names(node),
        attrs=dict(node.get("attrs") or {}), value=np.asarray(intermediate[node["name"]]).tolist(),
        adjoint=np.asarray(adjoint).tolist(), verdict=NOT_CHECKED,
        detail=f"not checked: {hung} ran out of time first",
    )  # fmt: skip


def differing(findings: list[Finding], inputs: list[str]) -> list[str]:
    """Where the comparison found an engine's answer wrong, by `findings` against it: "value"
    and the names of the inputs whose VJP is wrong, or all of them when it gave no answer (in
    reverse mode); "jvp" for a wrong J t, and "hvp NAME" for a wrong H t at input NAME."""
    wrong: set[str] = set()
    for finding in findings:
        if finding.crash is not None and mode_of(finding) == "vjp":
            wrong |= {"value", *inputs}
        elif finding.quantity in ("value", "jvp"):
            wrong.add(finding.quantity)
        elif finding.quantity in ("gradient", "hvp") and finding.input is not None:
            wrong.add(finding.input if finding.quantity == "gradient" else f"hvp {finding.input}")
    return [name for name in ("value", *inputs, "jvp", *(f"hvp {i}" for i in inputs)) if name in wrong]


@dataclass
class Triage:
    """The diagnosis of one case: the culprit (kind, op, node) and every node's report."""

    kind: Kind | None  # the culprit's verdict, or composition; None if the case passes
    op: str | None
    node: str | None
    nodes: list[NodeReport]

    def culprit(self) -> NodeReport | None:
        return next((report for report in self.nodes if report.name == self.node), None)


def _tail_graph(graph: dict, cut: str) -> dict:
    """The graph with node `cut` turned into an input named `cut`: the VJP for that input is
    the adjoint of the node."""
    shapes_known = {entry["name"]: entry for entry in graph["inputs"]}
    nodes = [node for node in graph["nodes"] if node["name"] != cut]
    entry = {"name": cut, "shape": None}
    return {**graph, "inputs": [*shapes_known.values(), entry], "nodes": nodes}


def adjoints(case: Case, references, intermediate: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """d sum(v * output) / d node, for every node, by the first AD reference (or central
    differences in float64 when there is none)."""
    graph = case.graph
    result = {}
    dtype = case.dtype
    for node in graph["nodes"]:
        name = node["name"]
        shape = list(np.shape(intermediate[name]))
        tail = _tail_graph(graph, name)
        tail["inputs"][-1]["shape"] = shape
        values = {**case.values, name: intermediate[name].astype(dtype)}
        if references:
            _, gradients = references[0].evaluate(tail, values, case.cotangent)
            result[name] = np.asarray(gradients[name], dtype=np.float64)
        else:
            result[name] = _central_difference(tail, values, case.cotangent, name)
    return result


def _central_difference(graph, values, cotangent, name) -> np.ndarray:
    x = np.asarray(values[name], dtype=np.float64)
    base = {n: np.asarray(v, dtype=np.float64) for n, v in values.items()}
    v = np.asarray(cotangent, dtype=np.float64)
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        h = np.cbrt(np.finfo(np.float64).eps) * max(1.0, abs(float(x[index])))
        plus, minus = x.copy(), x.copy()
        plus[index] += h
        minus[index] -= h
        f_plus = reference_values(graph, {**base, name: plus})[graph["output"]]
        f_minus = reference_values(graph, {**base, name: minus})[graph["output"]]
        gradient[index] = float(np.sum(v * (f_plus - f_minus))) / (2 * h)
    return gradient


def local_names(node: dict) -> list[str]:
    """One input name per operand position: a repeated operand (mult(x, x)) gets a second
    name (x_2), so the op's own rule is checked apart from the fan-in of one node into two slots."""
    names = []
    for operand in node["inputs"]:
        name, copy = operand, 1
        while name in names or name == node["name"]:
            copy += 1
            name = f"{operand[:60]}_{copy}"
        names.append(name)
    return names


def one_node_case(case: Case, node: dict, intermediate: dict, adjoint: np.ndarray) -> Case:
    """Node `node` alone: each operand slot becomes an input holding the references' value."""
    dtype = case.dtype
    names = local_names(node)
    graph = {
        "format": case.graph["format"],
        "version": case.graph["version"],
        "dtype": case.graph["dtype"],
        "inputs": [{"name": n, "shape": list(np.shape(intermediate[o]))} for n, o in zip(names, node["inputs"])],
        "nodes": [{**node, "inputs": names}],
        "output": node["name"],
    }
    values = {n: np.asarray(intermediate[o]).astype(dtype) for n, o in zip(names, node["inputs"])}
    return Case(graph=graph, values=values, cotangent=np.asarray(adjoint).astype(dtype), seed=case.seed)


def triage(case: Case, backends: Backends, whole: CaseResult | None = None) -> Triage:
    """Check every node of `case` on its own, against `backends` (usually `Backends.fast()`).
    `whole` is the check of the whole case when the caller has it already; without it,
    triage checks the whole case itself to tell composition from a pass."""
    engine, references = backends.engine, backends.references
    with np.errstate(all="ignore"):
        intermediate = reference_values(case.graph, {n: v.astype(np.float64) for n, v in case.values.items()})
        node_adjoints = adjoints(case, references, intermediate)
    reports = []
    hung = None  # the first node whose local check ran out of time: it explains a hang, and a hang costs one
    for node in case.graph["nodes"]:
        if hung is not None:
            reports.append(_not_checked(node, intermediate, node_adjoints[node["name"]], hung))
            continue
        local = one_node_case(case, node, intermediate, node_adjoints[node["name"]])
        result = check_case(local, backends, keep=True)
        mine = [f for f in result.findings if f.backend == engine.name]
        if any(f.kind == Kind.TIMEOUT for f in mine):
            hung = node["name"]
        evaluations = {e.backend: e for e in result.evaluations or []}
        engine_eval = evaluations.get(engine.name)
        reference_eval = next((evaluations[r.name] for r in references if r.name in evaluations), None)
        report = NodeReport(
            name=node["name"],
            op=node["op"],
            inputs=list(node["inputs"]),
            local_inputs=local_names(node),
            attrs=dict(node.get("attrs") or {}),
            value=np.asarray(intermediate[node["name"]]).tolist(),
            adjoint=np.asarray(node_adjoints[node["name"]]).tolist(),
            verdict=mine[0].kind if mine else OK,
            detail=mine[0].detail if mine else "",
            actual_value=_plain(engine_eval.value) if engine_eval and not engine_eval.crash else None,
            expected_vjp=_plain_dict(reference_eval.gradients) if reference_eval and reference_eval.gradients else {},
            actual_vjp=_plain_dict(engine_eval.gradients) if engine_eval and not engine_eval.crash else {},
            references_differ=any(f.kind == Kind.REFERENCES_DISAGREE for f in result.findings),
            differs=differing(mine, local_names(node)),
            modes=_verdicts_by_mode(mine),
        )
        if report.verdict == OK or Kind(report.verdict).rule.judged_at_kinks:  # a wrong value, a crash stands
            _judge_kink(report, node, local, result, backends)
        reports.append(report)
    # The first node of the lowest culprit rank (kinds.py): a wrong forward poisons everything
    # after it, then a wrong local rule; a convention only if nothing else.
    wrong = [r for r in reports if r.verdict not in (OK, NOT_CHECKED)]
    culprit = min(wrong, key=lambda r: Kind(r.verdict).rule.culprit_rank, default=None)
    if culprit is not None:
        return Triage(Kind(culprit.verdict), culprit.op, culprit.name, reports)
    if whole is None:
        whole = check_case(case, backends)
    failing = [f for f in whole.findings if f.backend == engine.name]
    kind = Kind.COMPOSITION if failing else None
    return Triage(kind, None, None, reports)


def _verdicts_by_mode(findings: list[Finding]) -> dict[str, str]:
    """The first finding's kind in each derivative mode."""
    verdicts: dict[str, str] = {}
    for finding in findings:
        verdicts.setdefault(mode_of(finding), str(finding.kind))
    return verdicts


def _close(a: np.ndarray, b: np.ndarray, scale: float, dtype: str) -> bool:
    """Whether two local answers agree, by the comparison's own error model."""
    return a.shape == b.shape and array_check("gradient", None, "a", a, "b", b, scale, dtype).passed


def _judge_kink(report: NodeReport, node: dict, local: Case, result: CaseResult, backends: Backends) -> None:
    """If the node's operands sit on a kink, judge every backend's local answer there and set the
    report's verdict and `kink` record (see the module's docstring)."""
    op = OPS.get(node["op"])
    names = report.local_inputs
    dtype = local.graph["dtype"]
    operands = [np.asarray(local.values[name], dtype=np.float64) for name in names]
    attrs = op.with_defaults(node.get("attrs")) if op else {}
    kink = kink_at(op, operands, attrs) if op else None
    if kink is None:
        return
    if kink.where == "tie" and any(o.shape != np.shape(local.cotangent) for o in operands):
        # Shares are read element by element: judge the tie with operands broadcast to the result.
        shape = np.shape(local.cotangent)
        graph = {**local.graph, "inputs": [{"name": name, "shape": list(shape)} for name in names]}
        values = {name: np.broadcast_to(local.values[name], shape).copy() for name in names}
        local = Case(graph=graph, values=values, cotangent=local.cotangent, seed=local.seed)
        result = check_case(local, backends, keep=True)
        operands = [np.asarray(values[name], dtype=np.float64) for name in names]
    evaluations = {e.backend: e for e in result.evaluations or [] if e.crash is None and e.backend != "numeric"}
    cotangent = np.asarray(local.cotangent, dtype=np.float64)
    tolerance = RTOL[dtype]
    scale = float(np.max(np.abs(cotangent), initial=0.0))

    def vjps(backend: str):
        gradients = evaluations[backend].gradients if backend in evaluations else None
        if not isinstance(gradients, dict) or any(name not in gradients for name in names):
            return None
        return [np.asarray(gradients[name], dtype=np.float64) for name in names]

    answers, valid = {}, {}
    for backend in [backends.engine.name, *(r.name for r in backends.references)]:
        given = vjps(backend)
        if given is not None and all(g.shape == o.shape for g, o in zip(given, operands)):
            answer = judge(kink, operands, attrs, cotangent, given, tolerance)
            answers[backend], valid[backend] = answer.summary, answer
    engine = backends.engine.name
    references = [r.name for r in backends.references if r.name in answers]
    record = {
        "node": node["name"], "op": node["op"], "kink": kink.label,
        "answers": answers, "valid": {b: a.valid for b, a in valid.items()},
        "engine_follows": [], "verdict": report.verdict,
    }  # fmt: skip
    report.kink = record
    if engine not in answers or not references:
        return
    mine = vjps(engine)
    record["engine_follows"] = follows = [
        r for r in references if all(_close(m, t, scale, dtype) for m, t in zip(mine, vjps(r)))
    ]
    region = kink_region(kink, operands, attrs)
    first = vjps(references[0])
    away = all(_close(m[~inside], t[~inside], scale, dtype) for m, t, inside in zip(mine, first, region))
    same_operand = len(set(node["inputs"])) < len(node["inputs"])
    if follows:
        report.verdict, report.detail = OK, ""
    elif not valid[engine].valid:
        report.verdict, report.detail = Kind.GRADIENT, f"at {kink.label}: {valid[engine].detail}"
    elif not away:
        report.verdict, report.detail = Kind.GRADIENT, f"at {kink.label}: the local rule is wrong away from the kink"
    elif same_operand:
        report.verdict, report.detail = OK, ""  # a valid split of one operand's two parts: the sum is right
    else:
        given = ", ".join(f"{r} {answers[r]}" for r in references)
        report.verdict = Kind.CONVENTION
        report.detail = (
            f"at {kink.label} the engine gives {answers[engine]}, a valid answer no reference gives ({given})"
        )
    record["verdict"] = report.verdict
    # The kink's judgment is of the VJP: it replaces the local check's verdict in that mode too.
    if report.verdict == OK:
        report.modes.pop("vjp", None)
    else:
        report.modes["vjp"] = str(report.verdict)


def _plain(value):
    try:
        return np.asarray(value).tolist()
    except Exception:
        return repr(value)


def _plain_dict(gradients):
    if not isinstance(gradients, dict):
        return {}
    return {name: _plain(g) for name, g in gradients.items()}
