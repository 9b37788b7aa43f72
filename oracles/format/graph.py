"""The graph format (version 1): validate, load and save graphs and cases.

Every problem is reported as one `FormatError` line that names the place in the JSON
(`graph.nodes[3].inputs[1]: 'w' is not defined before node 'd'`), so a user can fix the
file without reading this code. See `shared/graph-format.md` and the op table in `ops.py`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ops import OPS, ShapeError

FORMAT = "autodiff-graph"
VERSION = 1
DTYPES = ("float64", "float32")


class FormatError(ValueError):
    """A graph or case that does not follow the format. The message is one line: where, then what."""


# Names flow into generated Python (reproducers), Markdown and the terminal: letters, digits and
# underscores only, so that no writer needs to escape them.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The most elements any input, node or cotangent may have, checked before anything is allocated.
MAX_ELEMENTS = 1_000_000
MAX_SEED = 2**63 - 1


def printable(text: str, limit: int, keep_newlines: bool = False) -> str:
    """`text` for a terminal, Markdown or a generated file: control characters (ANSI escapes, NUL,
    RTL overrides) shown as escapes, newlines too unless kept, and at most `limit` characters."""
    shown = "".join(
        c
        if c.isprintable() or (keep_newlines and c == "\n")
        else f"\\x{ord(c):02x}"
        if ord(c) < 256
        else f"\\u{ord(c):04x}"
        for c in text[: limit + 1]
    )
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _show(value, limit: int = 60) -> str:
    """`value`'s repr for a one-line message, cut to `limit` characters and free of control characters."""
    return printable(repr(value), limit)


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
        raise FormatError(f"{where}.format: expected {_show(FORMAT)}, got {_show(graph['format'])}")
    version = graph.get("version", VERSION)
    if not _is_int(version) or version != VERSION:
        raise FormatError(
            f"{where}.version: {_show(graph['version'])} is not supported (this tool reads version {VERSION})"
        )
    dtype = graph.get("dtype", "float64")
    if dtype not in DTYPES:
        raise FormatError(f"{where}.dtype: {_show(dtype)} is not one of {', '.join(DTYPES)}")

    defined: dict[str, str] = {}  # name -> where it was defined
    shapes: dict[str, tuple] = {}

    def define(name, place):
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise FormatError(_not_a_name(name, place))
        if name in defined:
            raise FormatError(f"{place}.name: {_show(name)} is already defined ({defined[name]})")
        defined[name] = place

    inputs = graph.get("inputs")
    if not isinstance(inputs, list):
        raise FormatError(f"{where}.inputs: expected a list, got {type(inputs).__name__}")
    normalized_inputs = []
    for i, entry in enumerate(inputs):
        place = f"{where}.inputs[{i}]"
        if not isinstance(entry, dict):
            raise FormatError(f"{place}: expected an object with name and shape, got {_show(entry)}")
        define(entry.get("name"), place)
        shape = entry.get("shape")
        if not isinstance(shape, list):
            raise FormatError(f"{place}.shape: expected a list of sizes ([] for a scalar), got {_show(shape)}")
        for axis, size in enumerate(shape):
            if not _is_int(size) or size < 1:
                raise FormatError(f"{place}.shape[{axis}]: {_show(size)} is not a positive integer")
        if len(shape) > 32:  # numpy's limit on dimensions
            raise FormatError(f"{place}.shape: {len(shape)} axes, more than 32")
        _check_size(tuple(shape), place)
        shapes[entry["name"]] = tuple(shape)
        normalized_inputs.append({**entry, "shape": list(shape)})

    nodes = graph.get("nodes")
    if not isinstance(nodes, list):
        raise FormatError(f"{where}.nodes: expected a list, got {type(nodes).__name__}")
    normalized_nodes = []
    for i, node in enumerate(nodes):
        place = f"{where}.nodes[{i}]"
        if not isinstance(node, dict):
            raise FormatError(f"{place}: expected an object with name, op and inputs, got {_show(node)}")
        name = node.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise FormatError(_not_a_name(name, place))
        op_name = node.get("op")
        op = OPS.get(op_name) if isinstance(op_name, str) else None
        if op is None:
            raise FormatError(f"{place}.op: unknown op {_show(op_name)} (known: {', '.join(OPS)})")
        operands = node.get("inputs")
        if not isinstance(operands, list) or not all(isinstance(n, str) for n in operands):
            raise FormatError(f"{place}.inputs: expected a list of names, got {_show(operands)}")
        if len(operands) not in op.arities:
            takes = f"{op.arity} to {op.max_arity}" if op.max_arity else str(op.arity)
            raise FormatError(f"{place}.inputs: {_show(op.name)} takes {takes} input(s), got {len(operands)}")
        for k, operand in enumerate(operands):
            if operand not in defined:
                raise FormatError(f"{place}.inputs[{k}]: {_show(operand)} is not defined before node {_show(name)}")
        attrs = node.get("attrs")
        if attrs is None:
            attrs = {}
        if not isinstance(attrs, dict):
            raise FormatError(f"{place}.attrs: expected an object, got {_show(attrs)}")
        unknown = sorted(set(attrs) - set(op.attrs))
        if unknown:
            known = ", ".join(op.attrs) or "none"
            raise FormatError(
                f"{place}.attrs: unknown attr {_show(unknown[0])} for op {_show(op.name)} (known: {known})"
            )
        attrs = op.with_defaults(attrs)
        problem = op.check_attrs(attrs)
        if problem:
            raise FormatError(f"{place}.attrs: {_clip(problem)}")
        define(name, place)
        try:
            shapes[name] = op.shape(*(shapes[o] for o in operands), attrs)
        except ShapeError as error:
            raise FormatError(f"{place}: node {_show(name)} ({op.name}): {_clip(str(error))}") from None
        _check_size(shapes[name], place)
        normalized_nodes.append({**node, "inputs": list(operands), "attrs": attrs})

    output = graph.get("output")
    if output is None:
        raise FormatError(f"{where}.output: missing (name the node or input whose value is the result)")
    if not isinstance(output, str) or output not in defined:
        raise FormatError(f"{where}.output: {_show(output)} is not defined")
    return {
        **graph,
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype,
        "inputs": normalized_inputs,
        "nodes": normalized_nodes,
        "output": output,
    }


def _clip(text: str, limit: int = 300) -> str:
    """A message from an op's own check, for one line: no control characters, at most `limit` characters."""
    return printable(text, limit)


def _not_a_name(name, place: str) -> str:
    return f"{place}.name: {_show(name)} is not a name (letters, digits and _, not starting with a digit, at most 64)"


def _check_size(shape: tuple, place: str) -> None:
    elements = math.prod(shape)
    if elements > MAX_ELEMENTS:
        raise FormatError(
            f"{place}: shape {_show(list(shape))} has {_show(elements, 30)} elements, more than the limit of "
            f"{MAX_ELEMENTS:,}"
        )


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
            raise FormatError(
                f"{where}.values: {_show(name)} is not an input of the graph (inputs: {', '.join(names)})"
            )
    arrays = {}
    for entry in graph["inputs"]:
        name = entry["name"]
        if name not in values:
            raise FormatError(f"{where}.values: missing value for input {_show(name)}")
        arrays[name] = _array(values[name], dtype, f"{where}.values.{name}", tuple(entry["shape"]))
    output_shape = infer_shapes(graph)[graph["output"]]
    if case.get("cotangent") is None:
        cotangent = np.ones(output_shape, dtype=dtype)
    else:
        cotangent = _array(case["cotangent"], dtype, f"{where}.cotangent", output_shape)
    seed = case.get("seed")
    if seed is not None and not (
        isinstance(seed, list) and len(seed) == 2 and all(_is_int(s) and 0 <= s <= MAX_SEED for s in seed)
    ):
        raise FormatError(f"{where}.seed: expected [root seed, graph index], two integers >= 0, got {_show(seed)}")
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
    except RecursionError:
        raise FormatError(f"{path}: cannot read {what}: JSON nested too deeply") from None
    except ValueError as error:  # an integer of more than 4300 digits
        raise FormatError(f"{path}: cannot read {what}: {error}") from None


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


def json_default(value):
    """JSON for what json cannot write: numpy arrays and scalars as numbers, and whatever else a
    plug-in returned (complex numbers, objects) as its repr, so that no report is lost. (A float
    that is not finite is left to json, which writes it as a bare NaN or Infinity token, as
    Python reads it back: see `finite_json` for standard JSON.)"""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # repr(float) -> its string in JSON


def finite_json(value):
    """`value` as standard JSON can hold it, at any depth: a float that is not finite (numpy's too)
    as the string "NaN", "Infinity" or "-Infinity", which strict parsers (JSON.parse, jq, Go) read;
    the rest as `json_default` makes it. `json.dumps(finite_json(v), allow_nan=False)` never fails
    on a number."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else NON_FINITE[repr(float(value))]
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    made = json_default(value)
    return made if isinstance(made, str) else finite_json(made)
