"""Each backend's way of running a workload, derived from its graph dicts.

`prepare(backend, workload, pass_name)` does all the building (node objects, tensors, code,
JIT compilation) and returns a `Prepared`: `run`, the zero-argument call a benchmark times,
and `read`, which turns what `run` returned into numpy for the correctness checks.

- `autodiff`: our engine's programming model: node classes wired through input lists and a
  `NodeOutput`, the order computed once by `autodiff.topological_order`; forward is
  `autodiff.forward(feed, order)`, forward+backward `autodiff.run(feed, order, cotangent)`.
- `notebook`: `examples.notebook_engine`, scalar graphs with cotangent 1 only (it can seed
  nothing else and gets tensors wrong): a loop of `n.forward(fd.get(n))`, and its `run(fd, nodes)`.
- `torch`: eager PyTorch on float64 leaves with requires_grad; forward+backward adds
  `torch.autograd.grad(out, leaves, grad_outputs=cotangent)`.
- `jax`: eager JAX (lax primitives); forward+backward is `jax.vjp` then the pullback.
- `jax-jit`: `jax.jit` of the same two functions (the vjp inside the jitted function),
  compiled ahead of the timing; the compile time is `Prepared.compile_seconds`.

torch and JAX run straight-line Python generated from the graph (one statement per node, as
a user would write it by hand), so no interpreter loop is timed along with them. Each statement
calls the entry of the audit's oracle op map (`oracles.backends.torch_backend.OPS`,
`jax_backend.OPS`): the benchmarks time the very rules the audit checks against, for every op
those maps hold, and keep no copy of them.
A rank-0 value is fed to the node engines as a Python float, as the notebook's users write it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import autodiff
from examples import notebook_engine
from oracles.backends.autodiff_engine import NODE_CLASSES

from .workloads import Workload

BACKENDS = ("autodiff", "notebook", "torch", "jax", "jax-jit")
PASSES = ("forward", "forward+backward")

# The numpy result of one graph: its output, and (forward+backward only) d output / d input by name.
Evaluation = tuple[np.ndarray, "dict[str, np.ndarray] | None"]


class Unsupported(Exception):
    """The backend cannot express this workload; the message says why."""


@dataclass
class Prepared:
    run: Callable[[], Any]  # the timed call: evaluates every case of the workload once
    read: Callable[[Any], list[Evaluation]]  # what `run` returned, as numpy, one entry per case
    compile_seconds: float | None = None  # jax-jit only: tracing, lowering and XLA compilation


def _one_after_another(calls: list[Callable[[], Any]]) -> Callable[[], Any]:
    if len(calls) == 1:  # one case: time the backend's call itself, not a loop around it
        return calls[0]

    def run_all():
        return [call() for call in calls]

    return run_all


def _as_list(result, count: int) -> list:
    return [result] if count == 1 else result


def _native(value):
    """A rank-0 array as a Python float (the node engines' scalar path), anything else as is."""
    value = np.asarray(value)
    return float(value) if value.ndim == 0 else value


# ---- the node engines ------------------------------------------------------------------------

# The op table's names to our node classes: the audit's own adapter has the mapping.
_AUTODIFF_NODES = NODE_CLASSES


def _autodiff(workload: Workload, pass_name: str) -> Prepared:
    calls, graphs = [], []
    for case in workload.cases:
        graph = case.graph
        nodes = {entry["name"]: autodiff.NodeInput(entry["name"]) for entry in graph["inputs"]}
        inputs = list(nodes.values())
        for entry in graph["nodes"]:
            node_class = _AUTODIFF_NODES[entry["op"]]
            operands = [nodes[name] for name in entry["inputs"]]
            nodes[entry["name"]] = node_class(entry["name"], operands, **(entry.get("attrs") or {}))
        output = autodiff.NodeOutput("output", [nodes[graph["output"]]])
        order = autodiff.topological_order([output, *inputs])  # inputs too: an unused one still gets zeros
        feed = {node: _native(case.values[node.name]) for node in inputs}
        if pass_name == "forward":
            calls.append(functools.partial(autodiff.forward, feed, order))
        else:
            calls.append(functools.partial(autodiff.run, feed, order, cotangent=_native(case.cotangent)))
        graphs.append((output, inputs))

    return Prepared(_one_after_another(calls), _node_results(graphs, pass_name))


def _node_results(graphs, pass_name: str) -> Callable[[Any], list[Evaluation]]:
    """`read` for the node engines, which keep their results on the nodes (both have the
    notebook's `value` and `gradients[node]`)."""

    def read(_result) -> list[Evaluation]:
        return [
            (
                np.asarray(output.value),
                None if pass_name == "forward" else {n.name: np.asarray(n.gradients[n]) for n in inputs},
            )
            for output, inputs in graphs
        ]

    return read


def _notebook_forward(fd, nodes):
    # The forward half of the notebook's run(fd, nodes), as the notebook writes it.
    for n in nodes:
        n.forward(fd.get(n))


def _notebook(workload: Workload, pass_name: str) -> Prepared:
    calls, graphs = [], []
    for case in workload.cases:
        graph = case.graph
        if any(entry["shape"] for entry in graph["inputs"]) or float(case.cotangent) != 1.0:
            raise Unsupported("the notebook's engine handles scalars only and always seeds the cotangent 1")
        # Explicit empty input lists: the notebook's default `[]` is shared by every node.
        nodes = {entry["name"]: notebook_engine.NodeInput(entry["name"], []) for entry in graph["inputs"]}
        inputs = list(nodes.values())
        ordered = list(inputs)
        for entry in graph["nodes"]:
            node_class = notebook_engine.NODE_CLASSES[entry["op"]]
            nodes[entry["name"]] = node_class(entry["name"], [nodes[name] for name in entry["inputs"]])
            ordered.append(nodes[entry["name"]])
        output = notebook_engine.NodeOutput("output", [nodes[graph["output"]]])
        ordered.append(output)  # the notebook's run needs every node, in topological order, by hand
        fd = {node: _native(case.values[node.name]) for node in inputs}
        runner = _notebook_forward if pass_name == "forward" else notebook_engine.run
        calls.append(functools.partial(runner, fd, ordered))
        graphs.append((output, inputs))
    return Prepared(_one_after_another(calls), _node_results(graphs, pass_name))


# ---- straight-line code for torch and JAX ----------------------------------------------------


def straight_line_function(graph: dict, ops: dict[str, Callable]) -> Callable:
    """The graph as a Python function of its inputs (in order): one statement per node.

    `ops` is an oracle's op map (`oracles.backends.torch_backend.OPS`, `jax_backend.OPS`):
    op name -> function of the operands, then the node's attrs dict. Each node's attrs are
    bound in the function's namespace as a constant, so node 3 becomes
    `v3 = op_mult(v1, v2, A3)`; a node without "attrs" gets {}.
    """
    names = {entry["name"]: f"v{i}" for i, entry in enumerate(graph["inputs"])}
    namespace: dict[str, Any] = {}
    functions: dict[str, str] = {}  # op name -> its name in the generated code
    lines = [f"def graph_function({', '.join(names.values())}):"]
    for entry in graph["nodes"]:
        op = entry["op"]
        if op not in functions:
            if op not in ops:
                raise Unsupported(f"the op map has no {op!r} (it has {', '.join(ops)})")
            # Any op name: prefixed, it can be no keyword, builtin or variable; not an identifier, numbered.
            functions[op] = f"op_{op}" if op.isidentifier() else f"op_{len(functions)}"
            namespace[functions[op]] = ops[op]
        index = len(names)
        variable = names[entry["name"]] = f"v{index}"
        namespace[f"A{index}"] = dict(entry.get("attrs") or {})
        arguments = [names[name] for name in entry["inputs"]]
        lines.append(f"    {variable} = {functions[op]}({', '.join([*arguments, f'A{index}'])})")
    lines.append(f"    return {names[graph['output']]}")
    exec(compile("\n".join(lines), f"<graph of {len(graph['nodes'])} nodes>", "exec"), namespace)
    return namespace["graph_function"]


def _oracle_ops(backend: str) -> dict[str, Callable]:
    """The op map of the audit's `backend` oracle, imported on first use (it imports torch or JAX)."""
    if backend == "torch":
        from oracles.backends import torch_backend  # sets torch to one thread, as conftest does

        return torch_backend.OPS
    from oracles.backends import jax_backend, jax_kernels  # jax_backend enables float64

    # The benchmarks time JAX as its users run it: not through the audit's kernel store, whose
    # dispatch (in Python) would be timed with it.
    jax_kernels.uninstall()
    return jax_backend.OPS


# ---- torch -----------------------------------------------------------------------------------


def _torch(workload: Workload, pass_name: str) -> Prepared:
    import torch

    calls, shapes = [], []
    for case in workload.cases:
        function = straight_line_function(case.graph, _oracle_ops("torch"))
        names = [entry["name"] for entry in case.graph["inputs"]]
        leaves = [torch.tensor(case.values[name], dtype=torch.float64, requires_grad=True) for name in names]
        if pass_name == "forward":
            calls.append(functools.partial(function, *leaves))
        else:
            cotangent = torch.tensor(case.cotangent, dtype=torch.float64)

            def forward_backward(function=function, leaves=leaves, cotangent=cotangent):
                output = function(*leaves)
                # allow_unused: an input that does not reach the output has gradient None (zeros).
                return output, torch.autograd.grad(output, leaves, grad_outputs=cotangent, allow_unused=True)

            calls.append(forward_backward)
        shapes.append([(name, case.values[name].shape) for name in names])

    def read(result) -> list[Evaluation]:
        evaluations = []
        for one, names in zip(_as_list(result, len(shapes)), shapes):
            if pass_name == "forward":
                evaluations.append((one.detach().numpy(), None))
                continue
            output, gradients = one
            by_name = {
                name: np.zeros(shape) if gradient is None else gradient.numpy()
                for (name, shape), gradient in zip(names, gradients)
            }
            evaluations.append((output.detach().numpy(), by_name))
        return evaluations

    return Prepared(_one_after_another(calls), read)


# ---- JAX -------------------------------------------------------------------------------------


@functools.cache
def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)  # before any array is made: float64 stays float64
    return jax


def _value_and_vjp(function: Callable) -> Callable:
    """(cotangent, *inputs) -> (output, gradients): one forward+backward evaluation."""
    jax = _jax()

    def evaluate(cotangent, *arrays):
        output, pullback = jax.vjp(function, *arrays)
        return output, pullback(cotangent)

    return evaluate


def _jax_backend(workload: Workload, pass_name: str, jit: bool) -> Prepared:
    jax = _jax()
    calls, names_per_case, compile_seconds = [], [], 0.0
    for case in workload.cases:
        function = straight_line_function(case.graph, _oracle_ops("jax"))
        names = [entry["name"] for entry in case.graph["inputs"]]
        arguments = [jax.device_put(np.asarray(case.values[name], dtype=np.float64)) for name in names]
        if pass_name == "forward+backward":
            function = _value_and_vjp(function)
            arguments.insert(0, jax.device_put(np.asarray(case.cotangent, dtype=np.float64)))
        if jit:
            function = jax.jit(function)
            compile_seconds += _compile(function, arguments)
        calls.append(functools.partial(_blocking, function, *arguments))
        names_per_case.append(names)

    def read(result) -> list[Evaluation]:
        evaluations = []
        for one, names in zip(_as_list(result, len(names_per_case)), names_per_case):
            if pass_name == "forward":
                evaluations.append((np.asarray(one), None))
            else:
                output, gradients = one
                evaluations.append((np.asarray(output), {n: np.asarray(g) for n, g in zip(names, gradients)}))
        return evaluations

    return Prepared(_one_after_another(calls), read, compile_seconds if jit else None)


def _blocking(function, *arguments):
    # JAX dispatches asynchronously: the timed call ends when the results exist.
    return _jax().block_until_ready(function(*arguments))


def _compile(jitted, arguments) -> float:
    """Seconds to trace, lower and compile `jitted` for `arguments`; the call after it reuses the executable.

    The persistent compilation cache (which the audit's JAX oracle switches on) is off while
    compiling, so that the seconds are a compilation, not a disk read of an earlier one.
    """
    jax = _jax()
    cache_was_on = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        start = time.perf_counter()
        jitted.lower(*arguments).compile()
        return time.perf_counter() - start
    finally:
        jax.config.update("jax_enable_compilation_cache", cache_was_on)


# ---- entry point -----------------------------------------------------------------------------

_MAKERS = {
    "autodiff": _autodiff,
    "notebook": _notebook,
    "torch": _torch,
    "jax": functools.partial(_jax_backend, jit=False),
    "jax-jit": functools.partial(_jax_backend, jit=True),
}


def prepare(backend: str, workload: Workload, pass_name: str) -> Prepared:
    """Build everything `backend` needs to evaluate `workload` (one pass); time nothing of it."""
    if backend not in _MAKERS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if pass_name not in PASSES:
        raise ValueError(f"unknown pass {pass_name!r} (known: {', '.join(PASSES)})")
    return _MAKERS[backend](workload, pass_name)
