"""Engines that misbehave, behind the plug-in protocol: what the harness must survive.

Each is the correct reference engine of broken_engines.py, except on graphs with a `sin` node,
where it does one hostile thing: hang, exit the process, segfault, raise KeyboardInterrupt or
SystemExit, raise an exception that cannot be printed, flood stdout, return something that is
not an array, or leave a child process behind. Each of those graphs must become one finding
on exactly that graph, and every other graph must pass. For example:

    autodiff-audit audit --engine examples.hostile_engines:hangs --timeout 2
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import time

from examples.broken_engines import correct


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
        self.ops = correct.ops

    def evaluate(self, graph, values, cotangent):
        if _has_sin(graph):
            self.misdeed()
        return correct.evaluate(graph, values, cotangent)


class ReturnsNoArray:
    """Answers a graph with `sin` with objects that are not arrays (and cannot be pickled)."""

    name = "hostile:returns_no_array"
    ops = correct.ops

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


# One module attribute per misdeed, so `--engine examples.hostile_engines:<misdeed>` names it.
globals().update({misdeed: HostileEngine(misdeed) for misdeed in MISDEEDS})
returns_no_array = ReturnsNoArray()
mutating_accepts = MutatingAccepts()
