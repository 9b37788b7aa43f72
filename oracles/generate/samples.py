"""One-node cases from an op's `samples`, with values drawn from its domains: what the
table-driven tests run every op on, in every dtype."""

from __future__ import annotations

import zlib

import numpy as np

from ..format import FORMAT, VERSION, Case, infer_shapes
from ..ops import OPS, Sample
from .builder import GeneratorConfig, _GraphBuilder, slot_need
from .choices import NumpyChoices


def sample_case(op_name: str, sample: Sample, dtype: str = "float64") -> Case:
    """`op(x0, x1, ...)` on the sample's shapes and attrs, with values in the op's domains and
    a random cotangent. The same (op, sample, dtype) always gives the same case."""
    op = OPS[op_name]
    attrs = op.with_defaults(sample.attrs)
    stream = zlib.crc32(f"{op_name} {sample}".encode())  # a stable seed: not Python's salted hash
    builder = _GraphBuilder(NumpyChoices(np.random.default_rng(stream)), GeneratorConfig(dtype=dtype))
    names: list[str] = []
    for slot, shape in enumerate(sample.shapes):
        need = slot_need(op, attrs, slot, builder.values[names[0]] if names else None)
        names.append(builder.add_input(tuple(shape), need))
    graph = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "inputs": builder.inputs,
        "nodes": [{"name": "y", "op": op_name, "inputs": names, "attrs": attrs}],
        "output": "y",
    }
    output_shape = infer_shapes(graph)["y"]
    values = {name: builder.values[name].astype(dtype) for name in names}
    cotangent = np.asarray(builder.source.normal(output_shape), dtype=dtype)
    return Case(graph=graph, values=values, cotangent=cotangent, seed=[stream, 0])


def sample_cases(op_name: str, dtype: str = "float64") -> list[Case]:
    return [sample_case(op_name, sample, dtype) for sample in OPS[op_name].samples or ()]
