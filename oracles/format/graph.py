"""The graph format (version 1): validate, load and save graphs and cases.

Every problem is reported as one `FormatError` line that names the place in the JSON
(`graph.nodes[3].inputs[1]: 'w' is not defined before node 'd'`), so a user can fix the
file without reading this code. See `shared/graph-format.md` and the op table in `ops.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ops import OPS, ShapeError

FORMAT = "autodiff-graph"
VERSION = 1
DTYPES = ("float64", "float32")


class FormatError(ValueError):
    """A graph or case that does not follow the format. The message is one line: where, then what."""


@dataclass
class Case:
    """A graph with concrete values: everything needed to reproduce one check."""

    graph: dict
    values: dict[str, np.ndarray]
    cotangent: np.ndarray
    seed: list | None = None
    redraws: int = 0  # values the generator rebuilt to keep a domain (not part of the JSON)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.graph["dtype"])


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_graph(graph, where: str = "graph") -> dict:
    """Check `graph` against the format; return a normalized copy (dtype and attrs filled in)."""
    if not isinstance(graph, dict):
        raise FormatError(f"{where}: expected an object, got {type(graph).__name__}")
    if graph.get("format", FORMAT) != FORMAT:
        raise FormatError(f"{where}.format: expected {FORMAT!r}, got {graph['format']!r}")
    version = graph.get("version", VERSION)
    if not _is_int(version) or version != VERSION:
        raise FormatError(f"{where}.version: {graph['version']!r} is not supported (this tool reads version {VERSION})")
    dtype = graph.get("dtype", "float64")
    if dtype not in DTYPES:
        raise FormatError(f"{where}.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")

    defined: dict[str, str] = {}  # name -> where it was defined
    shapes: dict[str, tuple] = {}

    def define(name, place):
        if not isinstance(name, str) or not name:
            raise FormatError(f"{place}.name: expected a non-empty string, got {name!r}")
        if name in defined:
            raise FormatError(f"{place}.name: {name!r} is already defined ({defined[name]})")
        defined[name] = place

    inputs = graph.get("inputs")
    if not isinstance(inputs, list):
        raise FormatError(f"{where}.inputs: expected a list, got {type(inputs).__name__}")
    normalized_inputs = []
    for i, entry in enumerate(inputs):
        place = f"{where}.inputs[{i}]"
        if not isinstance(entry, dict):
            raise FormatError(f"{place}: expected an object with name and shape, got {entry!r}")
        define(entry.get("name"), place)
        shape = entry.get("shape")
        if not isinstance(shape, list):
            raise FormatError(f"{place}.shape: expected a list of sizes ([] for a scalar), got {shape!r}")
        for axis, size in enumerate(shape):
            if not _is_int(size) or size < 1:
                raise FormatError(f"{place}.shape[{axis}]: {size!r} is not a positive integer")
        shapes[entry["name"]] = tuple(shape)
        normalized_inputs.append({**entry, "shape": list(shape)})

    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        raise FormatError(f"{where}.nodes: expected a list, got {type(nodes).__name__}")
    normalized_nodes = []
    for i, node in enumerate(nodes):
        place = f"{where}.nodes[{i}]"
        if not isinstance(node, dict):
            raise FormatError(f"{place}: expected an object with name, op and inputs, got {node!r}")
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise FormatError(f"{place}.name: expected a non-empty string, got {name!r}")
        op_name = node.get("op")
        op = OPS.get(op_name) if isinstance(op_name, str) else None
        if op is None:
            raise FormatError(f"{place}.op: unknown op {op_name!r} (known: {', '.join(OPS)})")
        operands = node.get("inputs")
        if not isinstance(operands, list) or not all(isinstance(n, str) for n in operands):
            raise FormatError(f"{place}.inputs: expected a list of names, got {operands!r}")
        if len(operands) != op.arity:
            raise FormatError(f"{place}.inputs: {op.name!r} takes {op.arity} input(s), got {len(operands)}")
        for k, operand in enumerate(operands):
            if operand not in defined:
                raise FormatError(f"{place}.inputs[{k}]: {operand!r} is not defined before node {name!r}")
        attrs = node.get("attrs")
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, dict):
            raise FormatError(f"{place}.attrs: expected an object, got {attrs!r}")
        unknown = sorted(set(attrs) - set(op.attrs))
        if unknown:
            known = ", ".join(op.attrs) or "none"
            raise FormatError(f"{place}.attrs: unknown attr {unknown[0]!r} for op {op.name!r} (known: {known})")
        attrs = op.with_defaults(attrs)
        problem = op.check_attrs(attrs)
        if problem:
            raise FormatError(f"{place}.attrs: {problem}")
        define(name, place)
        try:
            shapes[name] = op.shape(*(shapes[o] for o in operands), attrs)
        except ShapeError as error:
            raise FormatError(f"{place}: node {name!r} ({op.name}): {error}") from None
        normalized_nodes.append({**node, "inputs": list(operands), "attrs": attrs})

    output = graph.get("output")
    if output is None:
        raise FormatError(f"{where}.output: missing (name the node or input whose value is the result)")
    if not isinstance(output, str) or output not in defined:
        raise FormatError(f"{where}.output: {output!r} is not defined")
    return {
        **graph,
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "inputs": normalized_inputs,
        "nodes": normalized_nodes,
        "output": output,
    }


def infer_shapes(graph: dict) -> dict[str, tuple]:
    """The shape of every input and node of a validated graph."""
    shapes = {entry["name"]: tuple(entry["shape"]) for entry in graph["inputs"]}
    for node in graph["nodes"]:
        op = OPS[node["op"]]
        shapes[node["name"]] = op.shape(*(shapes[o] for o in node["inputs"]), op.with_defaults(node.get("attrs")))
    return shapes


def _is_numeric(value) -> bool:
    """A number, or (nested) lists of numbers. In JSON, "1.5", true and null are not numbers."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    if isinstance(value, (list, tuple)):
        return all(_is_numeric(item) for item in value)
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _array(value, dtype, place: str, shape: tuple) -> np.ndarray:
    if not _is_numeric(value):
        raise FormatError(f"{place}: not a number or a rectangular nested list of numbers")
    try:
        wide = np.asarray(value, dtype=np.float64)
    except ValueError:  # ragged
        raise FormatError(f"{place}: not a number or a rectangular nested list of numbers") from None
    except OverflowError:  # an integer beyond float64
        raise FormatError(f"{place}: a value is beyond the range of float64") from None
    if wide.shape != shape:
        raise FormatError(f"{place}: shape {list(wide.shape)} does not match the expected shape {list(shape)}")
    if not np.all(np.isfinite(wide)):
        raise FormatError(f"{place}: contains NaN or Inf")
    with np.errstate(over="ignore"):
        array = wide.astype(dtype)
    if not np.all(np.isfinite(array)):
        raise FormatError(f"{place}: a value is beyond the range of {np.dtype(dtype).name}")
    return array


def validate_case(case, where: str = "case") -> Case:
    """Check a case (graph, values, cotangent, seed) and return it with numpy arrays."""
    if not isinstance(case, dict):
        raise FormatError(f"{where}: expected an object with graph and values, got {type(case).__name__}")
    if "graph" not in case:
        raise FormatError(f"{where}.graph: missing")
    graph = validate_graph(case["graph"], f"{where}.graph")
    dtype = np.dtype(graph["dtype"])
    values = case.get("values")
    if not isinstance(values, dict):
        raise FormatError(f"{where}.values: expected an object mapping input names to values")
    names = [entry["name"] for entry in graph["inputs"]]
    for name in values:
        if name not in names:
            raise FormatError(f"{where}.values: {name!r} is not an input of the graph (inputs: {', '.join(names)})")
    arrays = {}
    for entry in graph["inputs"]:
        name = entry["name"]
        if name not in values:
            raise FormatError(f"{where}.values: missing value for input {name!r}")
        arrays[name] = _array(values[name], dtype, f"{where}.values.{name}", tuple(entry["shape"]))
    output_shape = infer_shapes(graph)[graph["output"]]
    if case.get("cotangent") is None:
        cotangent = np.ones(output_shape, dtype=dtype)
    else:
        cotangent = _array(case["cotangent"], dtype, f"{where}.cotangent", output_shape)
    seed = case.get("seed")
    if seed is not None and not isinstance(seed, list):
        raise FormatError(f"{where}.seed: expected a list (root seed, graph index), got {seed!r}")
    return Case(graph=graph, values=arrays, cotangent=cotangent, seed=list(seed) if seed is not None else None)


def case_to_json(case: Case) -> dict:
    """Plain JSON: full-precision floats (Python's repr of a float round-trips exactly)."""
    return {
        "graph": case.graph,
        "values": {name: value.tolist() for name, value in case.values.items()},
        "cotangent": case.cotangent.tolist(),
        "seed": case.seed,
    }


def read_json(path: str | Path, what: str = "file"):
    """Parse a JSON file; any problem is one FormatError line naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FormatError(f"{path}: cannot read {what}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text ({error.reason} at byte {error.start})"
        raise FormatError(f"{path}: cannot read {what}: {problem}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None


def load_case(path: str | Path) -> Case:
    return validate_case(read_json(path, "case"), where=str(path))


def save_case(case: Case, path: str | Path) -> None:
    Path(path).write_text(json.dumps(case_to_json(case), indent=1) + "\n")


def reference_values(graph: dict, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The value of every input and node, by the op table's plain-numpy forward."""
    computed = dict(values)
    for node in graph["nodes"]:
        op = OPS[node["op"]]
        computed[node["name"]] = np.asarray(
            op.forward(*(computed[o] for o in node["inputs"]), op.with_defaults(node.get("attrs")))
        )
    return computed
