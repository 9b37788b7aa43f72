"""Running a graph: the order of the nodes, forward then backward, and printing.

`run(feed, nodes)` is the notebook's: forward in the listed order, backward in reverse.
Unlike the notebook, the list may be omitted (the order is then derived from the graph),
a listed order is checked rather than trusted, every walk is iterative (a 100,000-node
chain is fine), and the output is seeded with a cotangent of its own shape.

`run_jvp(feed, tangents)` is forward mode (each node's `forward_tangent()` in order), and
`run_hvp(feed, tangents)` second order: the backward() rules run again on dual numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dual import Dual, primal_of, tangent_dtype
from .nodes import GraphError, NodeBase, NodeInput, NodeOutput, shape_of


def topological_order(outputs) -> list[NodeBase]:
    """Every node the `outputs` depend on, each after all of its inputs.

    An iterative depth-first walk (no recursion limit); a cycle is reported by name.
    """
    order: list[NodeBase] = []
    done: set[NodeBase] = set()
    on_path: set[NodeBase] = set()
    for root in outputs:
        if root in done:
            continue
        stack = [(root, iter(root.inputs))]
        on_path.add(root)
        while stack:
            node, pending = stack[-1]
            for child in pending:
                if child in done:
                    continue
                if child in on_path:
                    cycle = [n.name for n, _ in stack[[n for n, _ in stack].index(child) :]]
                    raise GraphError(f"cycle through nodes {' -> '.join([*cycle, child.name])}")
                on_path.add(child)
                stack.append((child, iter(child.inputs)))
                break
            else:  # every input is placed: place the node
                stack.pop()
                on_path.discard(node)
                done.add(node)
                order.append(node)
    return order


def connected_nodes(start) -> list[NodeBase]:
    """The sinks (nodes nothing consumes) of the graph that contains the `start` nodes."""
    seen = set(start)
    stack = list(start)
    sinks = []
    while stack:
        node = stack.pop()
        if not node.outputs:
            sinks.append(node)
        for neighbour in (*node.inputs, *node.outputs):
            if neighbour not in seen:
                seen.add(neighbour)
                stack.append(neighbour)
    return sinks


def outputs_of(nodes) -> list[NodeBase]:
    marked: list[NodeBase] = [node for node in nodes if isinstance(node, NodeOutput)]
    return marked or [nodes[-1]]


def forward(feed, nodes=None) -> list[NodeBase]:
    """Compute every node's value. Returns the node order it used."""
    return _forward(feed, nodes, object())


def _forward(feed, nodes, token) -> list[NodeBase]:
    """Forward in order, marking each node as part of run `token`. A listed order is checked
    as it goes: an input not yet computed in this run would hold a stale value."""
    for node in feed:
        if not isinstance(node, NodeBase):
            raise GraphError(f"feed key {node!r} is not a node")
    if nodes is None:
        if not feed:
            raise GraphError("run needs a feed or a list of nodes")
        nodes = topological_order(connected_nodes(list(feed)))
    else:
        nodes = list(nodes)
    for node in nodes:
        for child in node.inputs:
            if child._run is not token:
                position = node.inputs.index(child)
                raise GraphError(
                    f"node {node.name!r}: input {position} {child.name!r} is not listed before it "
                    "(list nodes in topological order, or omit the list)"
                )
        node._run = token
        try:
            node.forward(feed.get(node))
        except GraphError:
            raise
        except (ValueError, TypeError, ArithmeticError) as error:
            raise node.forward_error(error) from None
    return nodes


def run(feed, nodes=None, cotangent=None) -> list[NodeBase]:
    """Forward, then backward. After it, `x.gradients[x]` is d output / d x for every node x.

    `feed` maps input nodes to values. `nodes` is the order to run in (checked); omitted,
    it is derived from the graph the fed inputs belong to. The output is every
    `NodeOutput` in the run, or else the last node. `cotangent` is the vector v of the
    vector-Jacobian product v^T J: an array of the output's shape (default: ones), or a
    dict {output node: array} when there are several outputs.

    The dtype rule: every gradient has the dtype of the value it is the gradient of. The
    cotangent is cast here to its output value's dtype (a float64 cotangent on a float32
    output seeds float32), and every node's parts are cast to their input's dtype in
    `NodeBase.store_gradients`. Python scalars have no dtype and are left as they are.
    """
    nodes = _forward(feed, nodes, object())
    outputs = outputs_of(nodes)
    for output, seed in zip(outputs, _seeds(outputs, cotangent)):
        output.seed = seed
    try:
        for node in reversed(nodes):
            node.backward()
    finally:
        for output in outputs:  # a seed belongs to this run's backward only
            output.seed = None
    return nodes


def _seeds(outputs, cotangent) -> list:
    """Each output's cotangent (see `run`): checked against its shape, cast to its dtype."""
    if not isinstance(cotangent, dict):
        cotangent = {output: cotangent for output in outputs}
    seeds = []
    for output in outputs:
        seed = cotangent.get(output)
        if seed is None:
            # A Python scalar output keeps Python-scalar speed; anything else (numpy scalars
            # too, though np.float64 is a float) gets ones of its shape and dtype.
            value = output.value
            seed = 1.0 if type(value) in (int, float) else np.ones_like(value)
        else:
            if shape_of(seed) != shape_of(output.value):
                seed = np.asarray(seed)
                if seed.shape != shape_of(output.value):
                    raise GraphError(
                        f"output {output.name!r}: cotangent of shape {seed.shape}, expected {shape_of(output.value)}"
                    )
            dtype = getattr(output.value, "dtype", None)
            if dtype is not None and dtype.kind == "f" and getattr(seed, "dtype", None) is not dtype:
                seed = np.asarray(seed, dtype=dtype)
        seeds.append(seed)
    return seeds


def run_jvp(feed, tangents, nodes=None) -> list[NodeBase]:
    """Forward, then forward mode. After it, `node.tangent` is the derivative of `node.value`
    along `tangents` for every node: the Jacobian-vector product J t.

    `tangents` maps input nodes to the direction t: arrays of their values' shapes, cast to
    the value's dtype (float64 for an integer value, a Python float for a Python scalar). An
    input given none is held fixed (a tangent of zeros). `feed` and `nodes` are `run`'s, and
    so is the node order returned.
    """
    nodes = _forward(feed, nodes, object())
    _feed_tangents(nodes, tangents)
    for node in nodes:
        try:
            node.forward_tangent()
        except GraphError:
            raise
        except (ValueError, TypeError, ArithmeticError) as error:
            raise GraphError(f"{node.forward_error(error)} (in forward_tangent)") from None
        if node.tangent is None:
            raise GraphError(f"node {node.name!r} ({type(node).__name__}): forward_tangent() set no tangent")
    return nodes


def _feed_tangents(nodes, tangents) -> None:
    """Puts each input's tangent, checked and cast, where its forward_tangent() finds it, and
    clears every other node's (a tangent left from another run is not this one's)."""
    inputs = {node for node in nodes if isinstance(node, NodeInput)}
    for node in tangents:
        if node not in inputs:
            raise GraphError(f"tangents key {node!r} is not an input of this run")
    for node in nodes:
        tangent = tangents.get(node)
        if tangent is not None:
            value = node.value
            if shape_of(tangent) != shape_of(value):
                tangent = np.asarray(tangent)
                if tangent.shape != shape_of(value):
                    raise GraphError(
                        f"input {node.name!r}: tangent of shape {tangent.shape}, expected {shape_of(value)}"
                    )
            tangent = float(tangent) if type(value) in (int, float) else np.asarray(tangent, dtype=tangent_dtype(value))
        node.tangent = tangent


def run_hvp(feed, tangents, nodes=None, cotangent=None) -> dict:
    """Hessian-vector products: {input node: array}, one for every input of the run.

    With v the cotangent (as in `run`: ones by default) and s(x) = sum(v * output(x)), the
    array for input x is the derivative along `tangents` of d s / d x, the VJP with v held
    fixed: sum over the inputs y of (d^2 s / dx dy) t_y. It has x's shape and dtype; an input
    the output does not depend on gets zeros.

    Forward over reverse, with no second-order rule anywhere: `run_jvp` gives every node its
    value and tangent, each value becomes Dual(value, tangent) (dual.py), and the backward()
    rules `run` uses run on them, seeded with Dual(v, 0). Each gradient they compute then
    carries its own derivative along the tangents: an input's is Dual(VJP, HVP). After it the
    nodes hold their plain values, `x.gradients[x]` is the VJP as `run` leaves it, and
    `node.tangent` the JVP as `run_jvp` leaves it.
    """
    nodes = run_jvp(feed, tangents, nodes)
    outputs = outputs_of(nodes)
    seeds = _seeds(outputs, cotangent)
    values = [node.value for node in nodes]
    try:
        for node in nodes:
            try:
                node.value = Dual(node.value, node.tangent)
            except ValueError as error:  # a forward_tangent() that got the shape wrong
                raise GraphError(f"node {node.name!r} ({type(node).__name__}): {error}") from None
        for output, seed in zip(outputs, seeds):
            output.seed = Dual(seed, np.zeros(shape_of(seed), tangent_dtype(seed)))  # v does not move
        for node in reversed(nodes):
            try:
                node.backward()
            except TypeError as error:  # most likely an operation a Dual does not support: say where
                raise TypeError(f"node {node.name!r} ({type(node).__name__}), backward() on duals: {error}") from error
    finally:
        for node, value in zip(nodes, values):
            node.value = value
        for output in outputs:
            output.seed = None
    hvps: dict[NodeBase, Any] = {}
    for node in nodes:
        duals = node.gradients
        node.gradients = {key: primal_of(part) for key, part in duals.items()}  # the VJPs, as run leaves them
        if isinstance(node, NodeInput):
            value, gradient = node.value, duals[node]
            if type(value) in (int, float):  # a Python scalar's gradients are Python floats, as in run
                node.gradients[node], hvps[node] = float(gradient.primal), float(gradient.tangent)
            else:
                hvps[node] = np.asarray(gradient.tangent, dtype=tangent_dtype(value))
    return hvps


def print_all(feed, nodes=None) -> None:
    """The notebook's view of a run: the feed, then every node's inputs, value, consumers, gradients."""
    if nodes is None:
        nodes = topological_order(connected_nodes(list(feed)))
    print("FD: ", end="")
    for node, value in feed.items():
        print(node.name, value, end="  ")
    print()
    for node in nodes:
        node.show()
