"""Every op of the table against every available backend, driven by the table alone.

For each op, each of its samples (scalars, size-1 axes, rank differences, its attrs) and
each dtype, every backend's forward must match the op's plain-numpy reference and its VJP
must match finite differences of that reference along a random direction, judged by the
audit's own error model (`check_case`), and the result must come back in the case's dtype.
And each backend's op map, plus the ops it lists as unsupported with a reason, is the table.

A new op gets every one of these tests the moment it is declared: nobody writes one.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from oracles.backends import Backend, load_engine, load_reference
from oracles.check import Backends, check_case
from oracles.format import DTYPES, case_to_json, validate_case
from oracles.generate import sample_case
from oracles.ops import OPS

ENGINE = "oracles.backends.autodiff_engine"
AD_BACKENDS = ("autodiff", "jax", "torch")
BACKEND_MODULES = {
    "autodiff": "oracles.backends.autodiff_engine",
    "jax": "oracles.backends.jax_backend",
    "torch": "oracles.backends.torch_backend",
    "numeric": "oracles.backends.numeric_backend",
}
NEEDS = {"jax": "jax", "torch": "torch"}  # the package a backend needs


def load(name: str) -> Backend:
    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"{NEEDS[name]} is not installed")
    return load_engine(ENGINE) if name == "autodiff" else load_reference(name)  # type: ignore[return-value]


def every_sample():
    return [
        pytest.param(op.name, index, id=f"{op.name}-{sample}")
        for op in OPS.values()
        for index, sample in enumerate(op.samples or ())
    ]


def assert_backend_computes_the_op(backend_name: str, op_name: str, sample_index: int, dtype: str) -> None:
    """The backend's value and VJP on the sample agree with the numpy reference and finite differences."""
    backend = load(backend_name)
    if op_name not in backend.ops:
        pytest.skip(f"{backend_name} does not support {op_name}: {backend.unsupported.get(op_name, 'not in its ops')}")
    op = OPS[op_name]
    case = sample_case(op_name, op.samples[sample_index], dtype)
    # As the engine under test, with finite differences of the op table's numpy forward as the only reference.
    under_test = Backend(backend.name, backend.plugin, backend.ops, role="engine")
    result = check_case(case, Backends(under_test, numeric=load_reference("numeric")), keep=True)
    assert not result.findings, "; ".join(f"{f.kind}: {f.detail}" for f in result.findings)
    assert result.checks > 0
    (evaluation,) = result.evaluations or []
    assert np.asarray(evaluation.value).dtype == np.dtype(dtype), "value"
    for name, gradient in evaluation.gradients.items():
        assert np.asarray(gradient).dtype == np.dtype(dtype), f"gradient for {name!r}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", AD_BACKENDS)
@pytest.mark.parametrize(("op_name", "sample_index"), every_sample())
def test_every_backend_computes_every_op_on_its_samples(op_name, sample_index, backend_name, dtype):
    assert_backend_computes_the_op(backend_name, op_name, sample_index, dtype)


@pytest.mark.parametrize("backend_name", list(BACKEND_MODULES))
def test_each_backends_map_and_its_unsupported_ops_are_the_op_table(backend_name):
    if backend_name in NEEDS and importlib.util.find_spec(NEEDS[backend_name]) is None:
        pytest.skip(f"{NEEDS[backend_name]} is not installed")
    module = importlib.import_module(BACKEND_MODULES[backend_name])
    supported, unsupported = set(module.ops), dict(module.unsupported)
    assert not supported & set(unsupported), "an op both supported and unsupported"
    assert supported | set(unsupported) == set(OPS)
    assert all(isinstance(reason, str) and reason for reason in unsupported.values())


@pytest.mark.parametrize("op_name", list(OPS))
def test_every_op_has_samples_that_are_valid_cases_with_a_tensor_among_them(op_name):
    samples = OPS[op_name].samples or ()
    assert any(len(shape) >= 1 for sample in samples for shape in sample.shapes)
    for index in range(len(samples)):
        case = sample_case(op_name, samples[index])
        assert validate_case(case_to_json(case)).graph == case.graph


@pytest.mark.parametrize("op_name", list(OPS))
def test_every_feature_an_op_reports_is_one_it_declares(op_name):
    op = OPS[op_name]
    for sample in op.samples or ():
        case = sample_case(op_name, sample)
        values = [case.values[name].astype(np.float64) for name in case.graph["nodes"][0]["inputs"]]
        assert op.features(list(sample.shapes), op.with_defaults(sample.attrs), values) <= set(op.feature_names)
