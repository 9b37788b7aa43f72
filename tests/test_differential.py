"""Our engine against every available reference, on generated cases.

Each case has a stable id, `g<index>-s<seed>`, that re-runs it alone:

    pytest 'tests/test_differential.py::test_engine_matches_references[g00042-s0]'

`--differential-graphs N` and `--differential-seed S` scale and move the sweep.
"""

import importlib.util

import pytest

from oracles.check import check_case, load_backends
from oracles.generate import GeneratorConfig, generate_case

AVAILABLE = (*tuple(name for name in ("jax", "torch") if importlib.util.find_spec(name)), "numeric")


@pytest.fixture(scope="module")
def backends():
    return load_backends("oracles.backends.autodiff_engine", AVAILABLE)


def test_engine_matches_references(backends, differential_seed, differential_index):
    case = generate_case(differential_seed, differential_index, GeneratorConfig())
    result = check_case(case, backends, differential_index)
    assert result.checks > 0
    assert not result.findings, "\n".join(f"{f.kind} in {f.backend}: {f.detail}" for f in result.findings)
