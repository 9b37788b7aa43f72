"""Standalone reproducers: a pytest file per minimal case, failing while the bug exists.

A reproducer needs numpy, the plug-in under test and this project, nothing else: the
references' answers on the minimal case are recorded in the file (as computed by JAX or
PyTorch during the audit), and finite differences run on numpy alone.
"""

from __future__ import annotations

import json

import numpy as np

from ..backends import Backend
from ..backends.plugin import modes_of
from ..check import Backends, check_case, load_backends
from ..diagnose import Investigation
from ..format import validate_case


class RecordedReference:
    """A reference that answers with what another reference computed during the audit: its value
    and VJPs, and its J t and H t where it gave them (along the tangents of the case's seed)."""

    recorded = True  # its answers are for the recorded case only: nothing may difference them

    def __init__(self, expected: dict):
        self.name = f"recorded {expected['backend']}"
        self.expected = expected
        if "jvp" in expected:
            self.jvp = self._jvp
        if "hvp" in expected:
            self.hvp = self._hvp

    def evaluate(self, graph, values, cotangent):
        dtype = graph["dtype"]
        gradients = {name: np.asarray(g, dtype=dtype) for name, g in self.expected["gradients"].items()}
        return np.asarray(self.expected["value"], dtype=dtype), gradients

    def _jvp(self, graph, values, tangents):
        dtype = graph["dtype"]
        return np.asarray(self.expected["value"], dtype=dtype), np.asarray(self.expected["jvp"], dtype=dtype)

    def _hvp(self, graph, values, cotangent, tangents):
        return {name: np.asarray(p, dtype=graph["dtype"]) for name, p in self.expected["hvp"].items()}


def check_reproducer(engine_spec: str, case_json: dict, expected: dict) -> None:
    """Assert that the engine agrees with the recorded references and finite differences."""
    case = validate_case(case_json)
    loaded = load_backends(engine_spec, ("numeric",))
    recorded = RecordedReference(expected)
    reference = Backend(name=recorded.name, plugin=recorded, ops=loaded.engine.ops, modes=modes_of(recorded))
    backends = Backends(loaded.engine, [reference], loaded.numeric, modes=loaded.modes)
    result = check_case(case, backends)  # the audit's own check, so a reproducer judges exactly as it did
    mine = [f for f in result.findings if f.backend == loaded.engine.name]
    assert not mine, "; ".join(f"{f.kind}: {f.detail}" for f in mine)


def reproducer_source(investigation: Investigation, engine_spec: str, seed: int) -> str:
    index = investigation.index
    where = f"op {investigation.op!r}" if investigation.op else "no single op (composition)"
    node = f", node {investigation.node!r}" if investigation.node else ""
    return f'''"""Reproducer written by autodiff-audit: graph {index} of seed {seed}, minimized.

{investigation.kind} in {where} of {investigation.backend}{node}.
It fails while the bug exists; run it with pytest. It needs numpy, the plug-in under test
and autodiff-oracles: the references' answers are recorded below.
"""

import json

from oracles.report.reproduce import check_reproducer

ENGINE = {engine_spec!r}
CASE = json.loads({json.dumps(investigation.minimal)!r})
EXPECTED = json.loads({json.dumps(investigation.expected)!r})


def test_graph_{index:05d}_minimal_case_matches_the_references():
    check_reproducer(ENGINE, CASE, EXPECTED)
'''
