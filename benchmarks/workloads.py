"""The benchmark workloads, each written once as cases of the graph format (docs/graph-format.md).

A workload is a family and a size: one or more cases (graph dict + float64 values +
cotangent). Every backend in `benchmarks/backends.py` is derived from these dicts, so all
backends compute the same graph on the same values.

- `scalar_chain`, size N: x -> mult(., w) -> sigmoid -> mult(., w) -> sigmoid ..., N steps
  (one step = mult + sigmoid), scalar inputs: 2N op nodes.
- `mlp`, size W: depth 4 of dot -> add bias -> sigmoid on a batch of 64, x of shape [64, W],
  weights [W, W], biases [W]; then reduce_sum to a scalar: 13 op nodes.
- `audit_graphs`, size K: the first K random graphs of `oracles.generate.generate_case(0, i)`,
  evaluated back to back as one batch.

Scalar outputs get the cotangent 1, the seed every engine uses by default (and the only one
the notebook's engine can use); the audit graphs keep their random cotangents.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from oracles.format import FORMAT, VERSION, Case
from oracles.generate import generate_case

# Every size of a family; the `quick` sweep runs the first ones, `full` all of them.
SIZES = {
    # 50,000 steps = 10^5 op nodes: the top of the linearity target (10^3 to 10^5 nodes).
    "scalar_chain": (10, 100, 1000, 10000, 50000),
    "mlp": (8, 64, 256, 512),
    # 25 graphs of the 52-op table: JAX's jit compiles each one (about a second a graph).
    "audit_graphs": (25,),
}
QUICK_SIZES = {
    "scalar_chain": (10, 100, 1000),
    "mlp": (8, 64, 256),
    "audit_graphs": (25,),
}
FAMILIES = tuple(SIZES)

MLP_DEPTH = 4
MLP_BATCH = 64
CHAIN_VALUES = {"x": 0.5, "w": 1.5}  # the sigmoid chain converges to a fixed point: no overflow at any N
AUDIT_ROOT_SEED = 0


@dataclass(frozen=True)
class Workload:
    family: str
    size: int
    cases: tuple[Case, ...]

    @property
    def nodes(self) -> int:
        """Op nodes over all cases (inputs and output markers are not ops)."""
        return sum(len(case.graph["nodes"]) for case in self.cases)

    @property
    def label(self) -> str:
        return f"{self.family}/{self.size}"


def _graph(inputs: list[tuple[str, tuple[int, ...]]], nodes: list[dict], output: str) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "dtype": "float64",
        "inputs": [{"name": name, "shape": list(shape)} for name, shape in inputs],
        "nodes": nodes,
        "output": output,
    }


def _node(name: str, op: str, *inputs: str, **attrs) -> dict:
    return {"name": name, "op": op, "inputs": list(inputs), "attrs": attrs}


def scalar_chain_case(steps: int) -> Case:
    nodes, previous = [], "x"
    for i in range(steps):
        nodes.append(_node(f"m{i}", "mult", previous, "w"))
        nodes.append(_node(f"s{i}", "sigmoid", f"m{i}"))
        previous = f"s{i}"
    graph = _graph([("x", ()), ("w", ())], nodes, previous)
    values = {name: np.asarray(value, dtype=np.float64) for name, value in CHAIN_VALUES.items()}
    return Case(graph=graph, values=values, cotangent=np.asarray(1.0))


def mlp_case(width: int, depth: int = MLP_DEPTH, batch: int = MLP_BATCH) -> Case:
    rng = np.random.default_rng([width, depth, batch])
    inputs = [("x", (batch, width))]
    values = {"x": rng.standard_normal((batch, width))}
    nodes, previous = [], "x"
    for layer in range(depth):
        weight, bias = f"w{layer}", f"b{layer}"
        inputs += [(weight, (width, width)), (bias, (width,))]
        # Weights of scale 1/sqrt(W) keep every layer's pre-activation of order 1 at any width,
        # so sigmoid neither saturates nor loses its gradient.
        values[weight] = rng.standard_normal((width, width)) / np.sqrt(width)
        values[bias] = 0.1 * rng.standard_normal(width)
        nodes.append(_node(f"dot{layer}", "dot", previous, weight))
        nodes.append(_node(f"add{layer}", "add", f"dot{layer}", bias))
        nodes.append(_node(f"sigmoid{layer}", "sigmoid", f"add{layer}"))
        previous = f"sigmoid{layer}"
    nodes.append(_node("total", "reduce_sum", previous, axis=None, keepdims=False))
    return Case(graph=_graph(inputs, nodes, "total"), values=values, cotangent=np.asarray(1.0))


def audit_graph_cases(count: int, root_seed: int = AUDIT_ROOT_SEED) -> tuple[Case, ...]:
    return tuple(generate_case(root_seed, index) for index in range(count))


@functools.cache
def workload(family: str, size: int) -> Workload:
    """The workload `family` at `size`, built once per process (it is plain, read-only data)."""
    if family == "scalar_chain":
        cases = (scalar_chain_case(size),)
    elif family == "mlp":
        cases = (mlp_case(size),)
    elif family == "audit_graphs":
        cases = audit_graph_cases(size)
    else:
        raise ValueError(f"unknown workload family {family!r} (known: {', '.join(FAMILIES)})")
    return Workload(family, size, cases)
