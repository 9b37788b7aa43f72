"""Hand-written cases for the tests, in the graph format, with as little typing as possible, and
the helpers the tests share to read what an audit wrote."""

from pathlib import Path

from oracles.format import Case, validate_case


def make_case(inputs: dict, nodes: list, output: str, values: dict, cotangent=None) -> Case:
    """A case from {input: shape}, [(name, op, operands, attrs)], the output and values."""
    return validate_case(
        {
            "graph": {
                "inputs": [{"name": name, "shape": shape} for name, shape in inputs.items()],
                "nodes": [
                    {"name": n, "op": op, "inputs": list(operands), "attrs": attrs} for n, op, operands, attrs in nodes
                ],
                "output": output,
            },
            "values": values,
            "cotangent": cotangent,
        }
    )


def case_around(op: str, avoid: tuple[str, ...] = ()) -> Case:
    """The op's largest sample case, between correct nodes: each operand comes through
    `add(raw, 0)` and the result leaves through `reduce_sum(mult(y, w))`, so a shrinker must
    cut them away to reach the op. `avoid` names ops the surrounding nodes must not use (the
    op of a planted bug); they fall back to `subtract` and `add`, or to no final sum."""
    from oracles.generate import sample_cases

    core = max(sample_cases(op), key=lambda case: sum(value.size for value in case.values.values()))
    shift = "subtract" if "add" in avoid else "add"
    combine = "add" if "mult" in avoid else "mult"
    inputs = {"zero": []}
    values = {"zero": 0.0}
    nodes = []
    for entry in core.graph["inputs"]:
        raw = entry["name"] + "_raw"
        inputs[raw] = entry["shape"]
        values[raw] = core.values[entry["name"]].tolist()
        nodes.append((entry["name"], shift, [raw, "zero"], {}))
    node = core.graph["nodes"][0]
    nodes.append(("y", op, node["inputs"], node["attrs"]))
    y_shape = list(core.cotangent.shape)
    inputs["w"] = y_shape
    values["w"] = (core.cotangent * 0 + 0.75).tolist()
    nodes.append(("weighted", combine, ["y", "w"], {}))
    output = "weighted"
    if "reduce_sum" not in avoid:
        nodes.append(("total", "reduce_sum", ["weighted"], {"axis": None, "keepdims": False}))
        output = "total"
    return make_case(inputs, nodes, output, values, None if output == "total" else core.cotangent.tolist())


def without_keys(value, keys):
    """A JSON value with every dict entry named in `keys` dropped, at any depth (timings, paths)."""
    if isinstance(value, dict):
        return {k: without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without_keys(v, keys) for v in value]
    return value


def stored_cases(folder) -> int:
    """How many finished cases the campaign store in report folder `folder` holds (0 before it exists)."""
    store = Path(folder) / "campaign.jsonl"
    return len(store.read_text().splitlines()) - 1 if store.exists() else 0  # the first line is the configuration
