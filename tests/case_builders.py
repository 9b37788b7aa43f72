"""Hand-written cases for the tests, in the graph format, with as little typing as possible."""

from oracles.graph import Case, validate_case


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
