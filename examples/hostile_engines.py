"""Engines that misbehave, behind the plug-in protocol: what the harness must survive.

Each is the correct reference engine of broken_engines.py, except on graphs with a `sin` node,
where it does one hostile thing: hang, exit the process, segfault, raise KeyboardInterrupt or
SystemExit, raise an exception that cannot be printed, flood stdout, return something that is
not an array, or leave a child process behind. Each of those graphs must become one finding
on exactly that graph, and every other graph must pass. For example:

    autodiff-audit audit --engine examples.hostile_engines:hangs --timeout 2

Two more are correct on every graph but start a process of their own when the harness loads
them, as an engine that starts a compiler does: `starts_a_child` (in the engine's process
group) and `starts_an_escaped_child` (in a session of its own, out of that group). No process of
theirs may outlive the audit, or hold its stdout open. `starts_an_unkillable_child` starts one
that no kill can end (see there): the audit must name it, on stderr and in its report.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

from examples.broken_engines import correct

# The ops the engines that misbehave on `sin` take: few, so that most of their graphs hold a
# `sin` whatever else the op table holds (the tests count those graphs with the same ops).
SIN_GRAPH_OPS = frozenset({"add", "mult", "sin", "tanh", "reduce_sum"})


def _has_sin(graph) -> bool:
    return any(node["op"] == "sin" for node in graph["nodes"])


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("this message cannot be printed")


def _hang():
    time.sleep(10**6)


def _exit():
    os._exit(3)


def _segfault():
    ctypes.string_at(0)  # reads address 0: SIGSEGV


def _interrupt():
    raise KeyboardInterrupt


def _system_exit():
    sys.exit(0)


def _unprintable():
    raise Unprintable


def _flood():
    sys.stdout.write("x" * 1_000_000 + "\n")
    sys.stdout.flush()


def _orphan():
    # A child of the engine's own that would outlive everything, then a hang.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1000)"])
    time.sleep(10**6)


MISDEEDS = {
    "hangs": _hang,
    "exits": _exit,
    "segfaults": _segfault,
    "interrupts": _interrupt,
    "system_exit": _system_exit,
    "unprintable": _unprintable,
    "floods_stdout": _flood,
    "leaves_a_child": _orphan,
}


class HostileEngine:
    def __init__(self, misdeed: str):
        self.name = f"hostile:{misdeed}"
        self.misdeed = MISDEEDS[misdeed]
        self.ops = SIN_GRAPH_OPS

    def evaluate(self, graph, values, cotangent):
        if _has_sin(graph):
            self.misdeed()
        return correct.evaluate(graph, values, cotangent)


class ReturnsNoArray:
    """Answers a graph with `sin` with objects that are not arrays (and cannot be pickled)."""

    name = "hostile:returns_no_array"
    ops = SIN_GRAPH_OPS

    def evaluate(self, graph, values, cotangent):
        if _has_sin(graph):
            return (x for x in ()), {entry["name"]: lambda: 0 for entry in graph["inputs"]}
        return correct.evaluate(graph, values, cotangent)


class MutatingAccepts:
    """Its `accepts` rewrites the graph it is shown (and takes every graph)."""

    name = "hostile:mutating_accepts"
    ops = correct.ops

    def accepts(self, graph):
        for node in graph["nodes"]:
            node["op"] = "add" if len(node["inputs"]) == 2 else "neg"
        graph["nodes"].clear()
        return None

    def evaluate(self, graph, values, cotangent):
        return correct.evaluate(graph, values, cotangent)


def sleeper_command() -> list[str]:
    """A Python that sleeps 10 minutes. Its command line ends with $HOSTILE_CHILD_TAG, so a test
    that sets it to a marker of its own finds exactly the processes it caused."""
    tag = os.environ.get("HOSTILE_CHILD_TAG", "hostile-engines-child")
    return [sys.executable, "-c", f"import time; time.sleep(600)  # {tag}"]


class StartsAChild:
    """Correct, but starts a child that sleeps 10 minutes when it is loaded, in the engine's process group."""

    name = "hostile:starts_a_child"
    ops = correct.ops
    new_session = False

    def __init__(self):
        # Its stdout and stderr are the engine's own.
        self.child = subprocess.Popen(sleeper_command(), start_new_session=self.new_session)

    def evaluate(self, graph, values, cotangent):
        return correct.evaluate(graph, values, cotangent)


class StartsAnEscapedChild(StartsAChild):
    """Correct, but starts a child that sleeps 10 minutes when it is loaded, in a session (and a
    process group) of its own: killing the engine's group does not reach it."""

    name = "hostile:starts_an_escaped_child"
    new_session = True


class StartsAnUnkillableChild(StartsAnEscapedChild):
    """Correct, but starts an escaped child that it then freezes in the cgroup v1 freezer folder
    named by $HOSTILE_FREEZER (it needs the right to write there): a frozen process does not die
    of SIGKILL until it is thawed, as one stuck in the kernel on a dead device does not."""

    name = "hostile:starts_an_unkillable_child"

    def __init__(self):
        super().__init__()
        freezer = os.environ["HOSTILE_FREEZER"]
        with open(os.path.join(freezer, "cgroup.procs"), "w") as file:
            file.write(str(self.child.pid))
        with open(os.path.join(freezer, "freezer.state"), "w") as file:
            file.write("FROZEN")


# These engines start their child when the harness asks for them by name (its import of the
# plug-in), not at every import of this module: `--engine examples.hostile_engines:hangs` must
# start nothing.
_STARTING_A_CHILD = {
    "starts_a_child": StartsAChild, "starts_an_escaped_child": StartsAnEscapedChild,
    "starts_an_unkillable_child": StartsAnUnkillableChild,
}  # fmt: skip


def __getattr__(name: str):
    if name not in _STARTING_A_CHILD:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    engine = globals()[name] = _STARTING_A_CHILD[name]()
    return engine


# One module attribute per misdeed, so `--engine examples.hostile_engines:<misdeed>` names it.
globals().update({misdeed: HostileEngine(misdeed) for misdeed in MISDEEDS})
returns_no_array = ReturnsNoArray()
mutating_accepts = MutatingAccepts()
