"""Loading a plug-in: the object a user names with `--engine`, checked against the protocol of
graph-format.md and wrapped as a `Backend`."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from ..engines import SHORT_NAMES
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
    # The derivative modes it has: "vjp" always (evaluate), "jvp" and "hvp" when it defines them.
    modes: frozenset[str] = frozenset({"vjp"})

    def evaluate(self, graph, values, cotangent):
        return self.plugin.evaluate(graph, values, cotangent)

    def jvp(self, graph, values, tangents):
        return self.plugin.jvp(graph, values, tangents)

    def hvp(self, graph, values, cotangent, tangents):
        return self.plugin.hvp(graph, values, cotangent, tangents)

    def declines(self, graph: dict) -> str | None:
        """The plug-in's reason for declining `graph` (its optional `accepts` hook), or None."""
        accepts = getattr(self.plugin, "accepts", None)
        if accepts is None:
            return None
        try:
            reason = accepts(graph)
        except Exception:  # a faulty hook declines nothing; the evaluation will tell
            return None
        return reason if isinstance(reason, str) and reason else None


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
        modes=modes_of(plugin),
    )


DERIVATIVE_MODES = ("vjp", "jvp", "hvp")  # in the order reports list them


def modes_of(plugin) -> frozenset[str]:
    """The derivative modes a plug-in has (graph-format.md): vjp by `evaluate`, and jvp and hvp
    by the optional functions of those names."""
    return frozenset({"vjp"} | {mode for mode in ("jvp", "hvp") if callable(getattr(plugin, mode, None))})


def load_engine(spec: str) -> Backend:
    """Load `package.module:attribute` (or `package.module`) as the engine under test. A short name
    of oracles/engines (autograd, mygrad, tensorflow, tinygrad, micrograd) is that adapter."""
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
