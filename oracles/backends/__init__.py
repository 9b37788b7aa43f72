"""Backends: everything that evaluates a case, behind the plug-in protocol of graph-format.md.

A plug-in is any object with `evaluate(graph, values, cotangent) -> (value, {input: vjp})`
and, optionally, `name`, `ops`, `unsupported` ({op: why not}) and `accepts(graph)`. Our
own engine, JAX and PyTorch are reached the same way;
the numeric oracle (finite differences) is a reference of a different kind: it estimates one
directional derivative per input instead of whole VJPs (see `numeric.py`).
"""

from __future__ import annotations

import importlib

from ..ops import OPS
from .isolation import DEFAULT_TIMEOUT, launch_engine
from .plugin import DERIVATIVE_MODES, Backend, PluginError, Unavailable, from_plugin, load_engine

__all__ = [
    "DEFAULT_ENGINE", "DERIVATIVE_MODES", "REFERENCES", "Backend", "PluginError", "Unavailable", "from_plugin",
    "launch_isolated_engine", "load_engine", "load_reference", "probe_engine", "start_isolated_engine",
    "support_table",
]  # fmt: skip


def start_isolated_engine(spec: str, timeout: float | None = None, log_path: str | None = None) -> Backend:
    """The engine named by `spec`, loaded and run in a child process of its own (isolation.py).
    PluginError, one line, if it cannot be loaded there (including an import that exits)."""
    return launch_isolated_engine(spec, timeout, log_path)()


def launch_isolated_engine(spec: str, timeout: float | None = None, log_path: str | None = None):
    """`start_isolated_engine` in two steps: the child process starts now, and the function
    returned waits for the engine to be loaded there and gives its Backend."""
    ready = launch_engine(spec, DEFAULT_TIMEOUT if timeout is None else timeout, log_path)
    return lambda: from_plugin(ready(), spec, role="engine")


def probe_engine(spec: str) -> Backend:
    """The engine's name and ops, read in a child process (so an engine whose import exits or
    crashes is a PluginError here, not the end of the audit)."""
    engine = start_isolated_engine(spec)
    engine.plugin.close()
    return engine


REFERENCES = ("jax", "torch", "numeric")
DEFAULT_ENGINE = "oracles.backends.autodiff_engine"


def load_reference(name: str) -> Backend | Unavailable:
    """One of the references, or why it is unavailable here."""
    if name not in REFERENCES:
        raise PluginError(f"--oracles: unknown oracle {name!r} (known: {', '.join(REFERENCES)})")
    try:
        module = importlib.import_module(f"{__name__}.{name}_backend")
    except ImportError as error:
        return Unavailable(name, f"{error.name or name} is not installed ({error})")
    if name == "numeric":  # no evaluate(): it estimates directional derivatives (numeric_backend.py)
        return Backend(
            name=name, plugin=module, ops=frozenset(module.ops), unsupported=dict(module.unsupported),
            modes=frozenset(DERIVATIVE_MODES),
        )  # fmt: skip
    return from_plugin(module, name, role="reference")


def support_table(backends) -> dict[str, dict[str, str | None]]:
    """{backend name: {op: None if supported, else why not}}, for `autodiff-audit ops` and the docs."""
    table: dict[str, dict[str, str | None]] = {}
    for backend in backends:
        if isinstance(backend, Unavailable):
            table[backend.name] = {op: f"unavailable: {backend.reason}" for op in OPS}
        else:
            table[backend.name] = {
                op: None if op in backend.ops else backend.unsupported.get(op, "not in its ops") for op in OPS
            }
    return table
