"""The graph features a case contains: what coverage counts and the generator's tests demand.

Structural features (fan-out, diamonds, the same operand twice, broadcasting, an unused
input) are read off the graph; every other feature is the op table's: each entry says
which features a node of it produces (`Op.features`) and names them all (`Op.feature_names`).
"""

from __future__ import annotations

import numpy as np

from ..format import Case, infer_shapes, reference_values
from ..ops import OPS

STRUCTURAL_FEATURES = (
    "fan_out",
    "diamond",
    "same_operand_twice",
    "broadcast_size_one",
    "broadcast_rank",
    "unused_input",
)


def all_features(ops=None) -> tuple[str, ...]:
    """Every feature `case_features` can report for graphs of `ops` (default: the whole table)."""
    names = list(STRUCTURAL_FEATURES)
    for name in ops if ops is not None else OPS:
        names += [feature for feature in OPS[name].feature_names if feature not in names]
    return tuple(names)


def node_features(node: dict, shapes: dict[str, tuple], values: dict[str, np.ndarray]) -> set[str]:
    """The features one node produces, from its op's entry and its operands' shapes and values."""
    op = OPS[node["op"]]
    operand_shapes = [shapes[operand] for operand in node["inputs"]]
    result = shapes[node["name"]]
    operand_values = [values[operand] for operand in node["inputs"]]
    found = set(op.features(operand_shapes, op.with_defaults(node.get("attrs")), operand_values))
    if len(node["inputs"]) == 2 and node["inputs"][0] == node["inputs"][1]:
        found.add("same_operand_twice")
    if op.broadcasts:
        for operand_shape in operand_shapes:
            if len(operand_shape) < len(result):
                found.add("broadcast_rank")
            if any(size == 1 < full for size, full in zip(operand_shape[::-1], result[::-1])):
                found.add("broadcast_size_one")
    return found


def case_features(case: Case) -> set[str]:
    """Which features the case contains."""
    graph = case.graph
    shapes = infer_shapes(graph)
    with np.errstate(all="ignore"):
        values = reference_values(graph, {name: value.astype(np.float64) for name, value in case.values.items()})
    consumers: dict[str, set[str]] = {name: set() for name in shapes}
    found: set[str] = set()
    for node in graph["nodes"]:
        found |= node_features(node, shapes, values)
        for operand in node["inputs"]:
            consumers[operand].add(node["name"])
    if any(len(users) > 1 for users in consumers.values()):
        found.add("fan_out")
    # reaches[v]: v and every value computed from it. Nodes are topological, so walk them backwards.
    reaches: dict[str, set[str]] = {}
    for name in [node["name"] for node in reversed(graph["nodes"])] + [entry["name"] for entry in graph["inputs"]]:
        reaches[name] = {name}.union(*(reaches[user] for user in consumers[name]))
    for node in graph["nodes"]:
        users = sorted(consumers[node["name"]])
        if any(reaches[a] & reaches[b] for i, a in enumerate(users) for b in users[i + 1 :]):
            found.add("diamond")  # an intermediate node whose gradient arrives along two paths
    if any(graph["output"] not in reaches[entry["name"]] for entry in graph["inputs"]):
        found.add("unused_input")
    return found


def features_out_of_reach(config) -> dict[str, str]:
    """Every feature of `all_features()` that graphs made with `config` (a GeneratorConfig) can
    never contain, with why. Read off the generator itself: each op's planner is asked, many
    times, for operands of every result shape the config allows, and the features of what it
    plans are collected; a feature no plan shows cannot occur."""
    from itertools import product

    from .builder import _GraphBuilder
    from .choices import NumpyChoices

    ops = set(config.ops)
    builder = _GraphBuilder(NumpyChoices(np.random.default_rng(0)), config)
    dims = range(1, min(config.max_dim, 4) + 1)
    shapes = [shape for rank in range(config.max_rank + 1) for shape in product(dims, repeat=rank)]
    seen: set[str] = set()
    for name in ops:
        op = OPS[name]
        for shape in shapes:
            if not op.planner.can_produce(shape, config.max_rank, config.max_dim):
                continue
            for _ in range(12):
                operand_shapes, attrs = op.planner.plan(builder, shape)
                if any(len(s) > config.max_rank for s in operand_shapes):
                    continue
                for values in _probe_values(operand_shapes):
                    seen |= op.features(operand_shapes, op.with_defaults(attrs), values)
    reasons: dict[str, str] = {}
    owners = {feature: op.name for op in OPS.values() for feature in op.feature_names}
    binary = [name for name in ops if OPS[name].arity == 2]
    broadcasting = [name for name in ops if OPS[name].broadcasts]
    for feature in all_features():
        if feature in STRUCTURAL_FEATURES:
            if feature in ("fan_out", "diamond") and config.max_nodes < 2:
                reasons[feature] = "needs at least 2 op nodes (--max-nodes)"
            elif feature == "same_operand_twice" and not binary:
                reasons[feature] = "needs an op with two operands"
            elif feature.startswith("broadcast_") and (not broadcasting or config.max_rank == 0):
                reasons[feature] = "needs a broadcasting op and tensors (--max-rank >= 1)"
        elif owners.get(feature) not in ops:
            reasons[feature] = f"op {owners.get(feature)!r} is not audited (the engine's ops, or --ops)"
        elif feature not in seen:
            reasons[feature] = f"not producible with --max-rank {config.max_rank} --max-dim {config.max_dim}"
    return reasons


def _probe_values(shapes: list[tuple]) -> list[list[np.ndarray]]:
    """Operand values that show the features that depend on values: large ones (what a far-out
    input would be), tiny ones, a ramp across [-2, 2] (on both sides of clip's bounds), all zeros, and one
    zero among large values (a product's slices with several zeros, and with one)."""

    def one_zero(shape):
        value = np.full(shape, 1e3)
        value.flat[0] = 0.0
        return value

    makers = (
        lambda s: np.full(s, 1e3), lambda s: np.linspace(-2, 2, int(np.prod(s))).reshape(s), np.zeros, one_zero,
        lambda s: np.full(s, 1e-9),
    )  # fmt: skip
    return [[make(shape) for shape in shapes] for make in makers]


def op_pairs(case: Case) -> set[str]:
    """`producer>consumer` for every node that takes another node's value."""
    made_by = {node["name"]: node["op"] for node in case.graph["nodes"]}
    return {f"{made_by[o]}>{node['op']}" for node in case.graph["nodes"] for o in node["inputs"] if o in made_by}
