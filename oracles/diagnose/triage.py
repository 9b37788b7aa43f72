"""Triage: blame down to the op.

For a failing case, every node is checked on its own: a one-node graph whose operands are
the references' values at that node and whose cotangent is the references' adjoint there
(d sum(v * output) / d node). The engine is reached only through the plug-in protocol, so
this works for any engine. If a node's local rule disagrees, that op is named (`value` or
`gradient`); if every local rule agrees but the whole graph does not, the bug is in how
gradients are combined (fan-out accumulation, ordering): `composition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..check import Backends, CaseResult, check_case
from ..format import Case, reference_values


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
    verdict: str  # "ok", or the kind of the local finding: value, gradient, crash, shape, nan-inf
    detail: str = ""
    actual_value: object = None
    expected_vjp: dict = field(default_factory=dict)  # operand -> the references' local VJP
    actual_vjp: dict = field(default_factory=dict)  # operand -> the engine's local VJP


@dataclass
class Triage:
    kind: str | None  # value, gradient, crash, shape, nan-inf, composition; None if the case passes
    op: str | None
    node: str | None
    nodes: list[NodeReport]


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
    name, so the op's own rule is checked apart from the fan-in of one node into two slots."""
    names = []
    for operand in node["inputs"]:
        name = operand
        while name in names or name == node["name"]:
            name += "'"
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
    culprit = None
    for node in case.graph["nodes"]:
        local = one_node_case(case, node, intermediate, node_adjoints[node["name"]])
        result = check_case(local, backends, keep=True)
        mine = [f for f in result.findings if f.backend == engine.name]
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
            verdict=mine[0].kind if mine else "ok",
            detail=mine[0].detail if mine else "",
            actual_value=_plain(engine_eval.value) if engine_eval and not engine_eval.crash else None,
            expected_vjp=_plain_dict(reference_eval.gradients) if reference_eval and reference_eval.gradients else {},
            actual_vjp=_plain_dict(engine_eval.gradients) if engine_eval and not engine_eval.crash else {},
        )
        reports.append(report)
        # A wrong forward poisons everything after it: the first node whose value is wrong is
        # the culprit. Otherwise the first node with a wrong local gradient.
        if mine and (culprit is None or (report.verdict == "value" and culprit.verdict != "value")):
            culprit = report
    if culprit is not None:
        return Triage(culprit.verdict, culprit.op, culprit.name, reports)
    if whole is None:
        whole = check_case(case, backends)
    failing = [f for f in whole.findings if f.backend == engine.name]
    kind = "composition" if failing else None
    return Triage(kind, None, None, reports)


def _plain(value):
    try:
        return np.asarray(value).tolist()
    except Exception:
        return repr(value)


def _plain_dict(gradients):
    if not isinstance(gradients, dict):
        return {}
    return {name: _plain(g) for name, g in gradients.items()}
