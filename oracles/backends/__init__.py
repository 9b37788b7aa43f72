"""Backends: everything that evaluates a case, behind the plug-in protocol of graph-format.md.

A plug-in is any object with `evaluate(graph, values, cotangent) -> (value, {input: vjp})`
and, optionally, `name`, `ops`, `unsupported` ({op: why not}) and `accepts(graph)`. Our
own engine, JAX and PyTorch are reached the same way;
the numeric oracle (finite differences) is a reference of a different kind: it estimates one
directional derivative per input instead of whole VJPs (see `numeric.py`).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..ops import OPS


class PluginError(ValueError):
    """An engine that cannot be loaded or does not follow the protocol. One line, for the user."""


@dataclass
class Backend:
    """A loaded backend: the plug-in object, its display name, the ops it supports, and
    whether it is the engine under test or a reference."""

    name: str
    plugin: Any
    ops: frozenset[str]
    role: str = "reference"  # "engine" or "reference"
    unsupported: dict[str, str] = field(default_factory=dict)  # op -> reason

    def evaluate(self, graph, values, cotangent):
        return self.plugin.evaluate(graph, values, cotangent)


@dataclass
class Unavailable:
    """A reference that could not be loaded here (say, jax is not installed), and why."""

    name: str
    reason: str


def from_plugin(plugin, name: str, role: str) -> Backend:
    evaluate = getattr(plugin, "evaluate", None)
    if not callable(evaluate):
        raise PluginError(f"engine {name!r}: has no callable evaluate(graph, values, cotangent)")
    declared = getattr(plugin, "ops", None)
    if declared is None:
        ops = frozenset(OPS)
    else:
        try:
            ops = frozenset(declared)
        except TypeError:
            raise PluginError(f"engine {name!r}: ops must be a set of op names, got {declared!r}") from None
        unknown = sorted(ops - set(OPS))
        if unknown:
            raise PluginError(f"engine {name!r}: ops names unknown op(s) {', '.join(map(repr, unknown))}")
    display = getattr(plugin, "name", None)
    if isinstance(display, str):
        # The name goes into reports, the terminal and generated reproducers' docstrings: plain characters only.
        display = re.sub(r"[^\w.:+\-]", "_", display)[:80]
    unsupported = getattr(plugin, "unsupported", None)
    unsupported = {str(op): str(why) for op, why in unsupported.items()} if isinstance(unsupported, dict) else {}
    return Backend(
        name=display if isinstance(display, str) and display else name,
        plugin=plugin,
        ops=ops,
        role=role,
        unsupported=unsupported,
    )


def load_engine(spec: str) -> Backend:
    """Load `package.module:attribute` (or `package.module`) as the engine under test. A short name
    of oracles/engines (autograd, mygrad, tensorflow, tinygrad, micrograd) is that adapter."""
    from ..engines import SHORT_NAMES

    module_name, _, attribute = SHORT_NAMES.get(spec, spec).partition(":")
    if not module_name:
        raise PluginError(f"--engine {spec!r}: expected package.module or package.module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PluginError(f"--engine {spec!r}: cannot import {module_name!r}: {error}") from None
    except Exception as error:  # the plug-in's own import-time code failed
        raise PluginError(
            f"--engine {spec!r}: importing {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    plugin: object = module
    if attribute:
        plugin = getattr(module, attribute, None)
        if plugin is None:
            raise PluginError(f"--engine {spec!r}: module {module_name!r} has no attribute {attribute!r}")
    return from_plugin(plugin, spec, role="engine")


def start_isolated_engine(spec: str, timeout: float | None = None, log_path: str | None = None) -> Backend:
    """The engine named by `spec`, loaded and run in a child process of its own (isolation.py).
    PluginError, one line, if it cannot be loaded there (including an import that exits)."""
    return launch_isolated_engine(spec, timeout, log_path)()


def launch_isolated_engine(spec: str, timeout: float | None = None, log_path: str | None = None):
    """`start_isolated_engine` in two steps: the child process starts now, and the function
    returned waits for the engine to be loaded there and gives its Backend."""
    from .isolation import DEFAULT_TIMEOUT, launch_engine

    ready = launch_engine(spec, DEFAULT_TIMEOUT if timeout is None else timeout, log_path)
    return lambda: from_plugin(ready(), spec, role="engine")


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
        return Backend(name=name, plugin=module, ops=frozenset(module.ops), unsupported=dict(module.unsupported))
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
