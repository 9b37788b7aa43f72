"""Graph-aware shrinking: the smallest case on which the same discrepancy persists.

Greedy passes, each trying simpler candidates and keeping the first on which the failure
persists (same kind, same backend), until a whole pass changes nothing or the budget of
steps and seconds runs out:

1. structure: replace a node by one of its operands, or by a fresh input holding its value;
   then drop nodes the output does not need and inputs nothing uses;
2. data: an operand dropped from an op of variable arity, smaller attrs (its entry's `smaller_attrs`);
3. shapes: shrink an axis size everywhere it occurs (towards 1 and 2), drop an axis of an
   input, or make an input a scalar;
4. values: towards small integers and halves, for the inputs and then the cotangent.

Every candidate is a valid case in the graph format (invalid ones are skipped), so the
result can be saved, replayed and mailed like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..format import Case, FormatError, infer_shapes, reference_values, validate_graph
from ..ops import OPS


@dataclass
class ShrinkResult:
    case: Case
    steps: int  # candidates tried
    accepted: int  # candidates kept
    seconds: float
    exhausted: bool  # True if the budget ran out before a pass changed nothing


def size(case: Case) -> tuple[int, int]:
    """What shrinking minimizes: op nodes first, then input elements."""
    return len(case.graph["nodes"]), sum(int(np.size(v)) for v in case.values.values())


def _rebuild(case: Case, graph: dict, values: dict, cotangent=None) -> Case | None:
    """Prune what the output does not need, validate, and fit the cotangent; None if invalid."""
    needed = {graph["output"]}
    for node in reversed(graph["nodes"]):
        if node["name"] in needed:
            needed.update(node["inputs"])
    graph = {
        **graph,
        "inputs": [entry for entry in graph["inputs"] if entry["name"] in needed],
        "nodes": [node for node in graph["nodes"] if node["name"] in needed],
    }
    try:
        graph = validate_graph(graph)
        shapes = infer_shapes(graph)
    except FormatError:
        return None
    values = {entry["name"]: values[entry["name"]] for entry in graph["inputs"]}
    for entry in graph["inputs"]:
        if np.shape(values[entry["name"]]) != tuple(entry["shape"]):
            return None
    output_shape = shapes[graph["output"]]
    if cotangent is None:
        cotangent = case.cotangent
    cotangent = np.asarray(cotangent)
    if cotangent.shape != output_shape:
        cotangent = _fit(cotangent, output_shape)
    return Case(graph=graph, values=values, cotangent=cotangent.astype(case.dtype), seed=case.seed)


def _fit(array: np.ndarray, shape: tuple) -> np.ndarray:
    """Keep the leading elements of `array` in `shape` (ones where there are too few)."""
    flat = array.ravel()
    needed = int(np.prod(shape))
    if flat.size >= needed:
        return flat[:needed].reshape(shape)
    return np.ones(shape, dtype=array.dtype)


def _structure(case: Case) -> Iterator[Case | None]:
    graph = case.graph
    pruned = _rebuild(case, graph, case.values)
    if pruned is not None and size(pruned) != size(case):
        yield pruned  # unused inputs (and nodes the output does not need) dropped on their own
    intermediate = None
    # Later nodes first: cutting near the output removes the most.
    for node in reversed(graph["nodes"]):
        name = node["name"]
        for operand in dict.fromkeys(node["inputs"]):
            yield _replace(case, name, operand)
        if intermediate is None:
            with np.errstate(all="ignore"):
                intermediate = reference_values(graph, {n: v.astype(np.float64) for n, v in case.values.items()})
        fresh = np.asarray(intermediate[name]).astype(case.dtype)
        if np.all(np.isfinite(fresh)):
            without = [n for n in graph["nodes"] if n["name"] != name]
            inputs = [*graph["inputs"], {"name": name, "shape": list(fresh.shape)}]
            yield _rebuild(case, {**graph, "inputs": inputs, "nodes": without}, {**case.values, name: fresh})


def _replace(case: Case, name: str, operand: str) -> Case | None:
    """Node `name` removed, every use of it reading `operand` instead."""
    graph = case.graph
    nodes = []
    for node in graph["nodes"]:
        if node["name"] == name:
            continue
        nodes.append({**node, "inputs": [operand if i == name else i for i in node["inputs"]]})
    output = operand if graph["output"] == name else graph["output"]
    return _rebuild(case, {**graph, "nodes": nodes, "output": output}, case.values)


def _attrs(case: Case) -> Iterator[Case | None]:
    """Smaller data in a node: one operand fewer for an op of variable arity (a join), or the
    smaller attrs its entry offers (fewer indices, a smaller mask). Each candidate is strictly
    smaller, so this pass ends."""
    for position, node in enumerate(case.graph["nodes"]):
        op = OPS[node["op"]]
        operands = node["inputs"]
        if len(operands) > op.arity:
            for slot in range(len(operands)):
                attrs = op.without_operand(op.with_defaults(node.get("attrs")), slot)
                if attrs is not None:  # einsum's output may need the operand's labels
                    yield _with_node(case, position, inputs=operands[:slot] + operands[slot + 1 :], attrs=attrs)
        for attrs in op.smaller_attrs(op.with_defaults(node.get("attrs"))):
            yield _with_node(case, position, attrs=attrs)


def _with_node(case: Case, position: int, **changes) -> Case | None:
    """The case with node number `position` changed (its inputs or attrs)."""
    nodes = list(case.graph["nodes"])
    nodes[position] = {**nodes[position], **changes}
    return _rebuild(case, {**case.graph, "nodes": nodes}, case.values)


def _shapes(case: Case) -> Iterator[Case | None]:
    graph = case.graph
    sizes = sorted({size for entry in graph["inputs"] for size in entry["shape"] if size > 1}, reverse=True)
    for size_ in sizes:
        for target in (1, 2):
            if target < size_:
                yield _resize_everywhere(case, size_, target)
    for entry in graph["inputs"]:
        shape = entry["shape"]
        if shape:
            yield _reshape_input(case, entry["name"], [], case.values[entry["name"]].ravel()[:1].reshape(()))
        for axis in range(len(shape)):
            value = np.take(case.values[entry["name"]], 0, axis=axis)
            yield _reshape_input(case, entry["name"], shape[:axis] + shape[axis + 1 :], value)


def _resize_everywhere(case: Case, old: int, new: int) -> Case | None:
    """Every input axis of size `old` keeps its first `new` entries: coupled axes (a dot's
    inner size, a broadcast pair) usually share their size, so they shrink together."""
    inputs, values = [], {}
    for entry in case.graph["inputs"]:
        value = case.values[entry["name"]]
        for axis, size_ in enumerate(entry["shape"]):
            if size_ == old:
                value = np.take(value, np.arange(new), axis=axis)
        inputs.append({**entry, "shape": [new if s == old else s for s in entry["shape"]]})
        values[entry["name"]] = value
    return _rebuild(case, {**case.graph, "inputs": inputs}, values)


def _reshape_input(case: Case, name: str, shape: list, value) -> Case | None:
    inputs = [{**e, "shape": shape} if e["name"] == name else e for e in case.graph["inputs"]]
    return _rebuild(case, {**case.graph, "inputs": inputs}, {**case.values, name: np.asarray(value)})


def _simplicity(value: np.ndarray) -> int:
    """0 for all ones, then all twos, all halves, small integers, halves, anything else."""
    for rank, test in enumerate(
        (
            lambda v: np.all(v == 1),
            lambda v: np.all(v == 2),
            lambda v: np.all(v == 0.5),
            lambda v: np.all(v == np.round(v)),
            lambda v: np.all(v * 2 == np.round(v * 2)),
        )
    ):
        if test(value):
            return rank
    return 5


def _simpler(value: np.ndarray) -> Iterator[np.ndarray]:
    """Candidates strictly simpler than `value`, simplest first (so shrinking never cycles).
    A rule that is right at 1 (the notebook's power rule: 2 x = 2 at x = 1) still shrinks to 2."""
    rank = _simplicity(value)
    # `+ 0.0` turns the -0.0 that rounding leaves into 0.0.
    candidates = (
        np.ones_like(value), np.full_like(value, 2), np.full_like(value, 0.5),
        np.round(value) + 0.0, np.round(value * 2) / 2 + 0.0,
    )  # fmt: skip
    for candidate in candidates:
        if _simplicity(candidate) < rank:
            yield candidate.astype(value.dtype)


def _values(case: Case) -> Iterator[Case]:
    for name, value in case.values.items():
        for candidate in _simpler(value):
            yield Case(case.graph, {**case.values, name: candidate}, case.cotangent, case.seed)
    for candidate in _simpler(case.cotangent):
        yield Case(case.graph, case.values, candidate, case.seed)


PASSES = (_structure, _attrs, _shapes, _values)


def shrink(
    case: Case, still_fails: Callable[[Case], bool], max_steps: int = 400, max_seconds: float = 5.0
) -> ShrinkResult:
    """The smallest case found on which `still_fails` holds, within the budget."""
    start = time.perf_counter()
    steps = accepted = 0
    current = case
    while True:
        changed = False
        for make in PASSES:
            progress = True
            while progress:
                progress = False
                for candidate in make(current):
                    if candidate is None:
                        continue
                    if steps >= max_steps or time.perf_counter() - start > max_seconds:
                        return ShrinkResult(current, steps, accepted, time.perf_counter() - start, True)
                    steps += 1
                    if still_fails(candidate):
                        current, accepted, progress, changed = candidate, accepted + 1, True, True
                        break  # restart this pass on the smaller case
        if not changed:
            return ShrinkResult(current, steps, accepted, time.perf_counter() - start, False)
