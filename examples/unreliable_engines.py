"""Engines that are right in their rules but not in their behaviour, behind the plug-in
protocol: what the harness must blame on the engine as a whole, never on an op.

    autodiff-audit audit --engine examples.unreliable_engines:noisy
    autodiff-audit audit --engine examples.unreliable_engines:raises_everywhere
    autodiff-audit audit --engine examples.unreliable_engines:hangs_everywhere --timeout 2
"""

from __future__ import annotations

import os
import time

import numpy as np

from examples.broken_engines import correct


class Noisy:
    """Right, except that one call in five adds random noise of relative size 1e-3 to one input's
    gradient: its answers change between identical calls (a race, an unseeded random number)."""

    name = "unreliable:noisy"
    ops = correct.ops

    def __init__(self, rate: float = 0.2, noise: float = 1e-3):
        self.rate, self.noise = rate, noise
        self.random = np.random.default_rng()  # unseeded on purpose: no call can be predicted

    def evaluate(self, graph, values, cotangent):
        value, gradients = correct.evaluate(graph, values, cotangent)
        if self.random.random() < self.rate and gradients:
            name = sorted(gradients)[0]
            gradients[name] = gradients[name] * (1 + self.noise * self.random.standard_normal())
        return value, gradients


class RaisesEverywhere:
    """Raises the same OSError, at the same line, on every call, whatever the graph holds."""

    name = "unreliable:raises_everywhere"
    ops = correct.ops

    def evaluate(self, graph, values, cotangent):
        raise OSError("[Errno 5] Input/output error: the device went away")


noisy = Noisy()
raises_everywhere = RaisesEverywhere()


def _count_the_call() -> None:
    # Where the tests count how often the harness asked (each call runs in a fresh engine process).
    if os.environ.get(CALLS):
        with open(os.environ[CALLS], "a") as calls:
            calls.write("call\n")


CALLS = "UNRELIABLE_ENGINES_CALLS"  # a file each call of the engines below adds a line to, when set


class HangsEverywhere:
    """Never answers: every call sleeps past any time limit."""

    name = "unreliable:hangs_everywhere"
    ops = correct.ops

    def evaluate(self, graph, values, cotangent):
        _count_the_call()
        time.sleep(10**6)


class Slow:
    """Right, but every call takes `seconds` (0.6 s): most of a time limit of one second."""

    name = "unreliable:slow"
    ops = correct.ops

    def __init__(self, seconds: float = 0.6):
        self.seconds = seconds

    def evaluate(self, graph, values, cotangent):
        time.sleep(self.seconds)
        return correct.evaluate(graph, values, cotangent)


hangs_everywhere = HangsEverywhere()
slow = Slow()
