"""What every adapter of oracles/engines shares: the graph composed from the adapter's op map,
and the plug-in's evaluate / jvp / hvp made from the adapter's three differentiators.

An adapter module is written in two parts, so that a standalone reproducer for upstream
(report/upstream.py) can be written from it with no harness import:

- `OPS`: {op name: a lambda or a module-level function}, called with the engine's own arrays and
  the node's attrs last, `(a, b, attrs)` or `(*arrays, attrs)`. The op map is the whole
  translation from the graph format to the engine: everything it calls is the engine's public
  API, numpy, or a helper function of the module that uses only those.
- `vjp_of(function, arrays, cotangent) -> (value, [gradient per array])`, and optionally
  `jvp_of(function, arrays, tangents) -> (value, J t)` and
  `hvp_of(function, arrays, cotangent, tangents) -> [H t per array]`: `function(*engine_arrays)`
  is the graph, `arrays` the inputs as numpy arrays (in the graph's order), and the results are
  anything `np.asarray` reads. They turn numpy arrays into the engine's and differentiate with
  its own API, nothing else.

A reproducer copies the ops a minimal case uses, the differentiator and every module-level
name they reach, verbatim: what it runs is what the audit ran.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def graph_function(graph: dict, ops: dict[str, Callable]) -> Callable:
    """The graph as one function of its inputs' engine arrays, in the graph's order."""
    names = [entry["name"] for entry in graph["inputs"]]

    def function(*inputs):
        computed = dict(zip(names, inputs))
        for node in graph["nodes"]:
            computed[node["name"]] = ops[node["op"]](*(computed[o] for o in node["inputs"]), node["attrs"])
        return computed[graph["output"]]

    return function


def plug_in(ops: dict[str, Callable], vjp_of: Callable, jvp_of: Callable | None = None,
            hvp_of: Callable | None = None) -> tuple[Callable, Callable | None, Callable | None]:  # fmt: skip
    """The plug-in protocol's evaluate, jvp and hvp (graph-format.md) from an adapter's op map and
    differentiators; jvp or hvp is None where the engine has no such mode (the harness then skips it)."""

    def arrays_of(graph, values) -> list:
        return [values[entry["name"]] for entry in graph["inputs"]]

    def by_name(graph, results) -> dict[str, np.ndarray]:
        return {entry["name"]: np.asarray(r) for entry, r in zip(graph["inputs"], results)}

    def evaluate(graph, values, cotangent):
        value, gradients = vjp_of(graph_function(graph, ops), arrays_of(graph, values), cotangent)
        return np.asarray(value), by_name(graph, gradients)

    def jvp(graph, values, tangents):
        assert jvp_of is not None  # only handed out with one
        value, derivative = jvp_of(graph_function(graph, ops), arrays_of(graph, values), arrays_of(graph, tangents))
        return np.asarray(value), np.asarray(derivative)

    def hvp(graph, values, cotangent, tangents):
        assert hvp_of is not None
        products = hvp_of(graph_function(graph, ops), arrays_of(graph, values), cotangent, arrays_of(graph, tangents))
        return by_name(graph, products)

    return evaluate, (jvp if jvp_of else None), (hvp if hvp_of else None)
