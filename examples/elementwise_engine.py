"""A complete engine plug-in in about 20 lines: the README's example of the protocol."""

import numpy as np

name = "elementwise"
ops = {"add", "subtract", "mult", "sigmoid"}  # random graphs will use only these

FORWARD = {"add": np.add, "subtract": np.subtract, "mult": np.multiply, "sigmoid": lambda a: 1 / (1 + np.exp(-a))}
VJP = {  # (cotangent, output, operands) -> one contribution per operand
    "add": lambda g, y, a, b: (g, g),
    "subtract": lambda g, y, a, b: (g, -g),
    "mult": lambda g, y, a, b: (g * b, g * a),
    "sigmoid": lambda g, y, a: (g * y * (1 - y),),
}


def unbroadcast(g, shape):  # sum a gradient back to the shape its operand had
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


def evaluate(graph, values, cotangent):
    v = {k: np.asarray(x) for k, x in values.items()}
    for node in graph["nodes"]:
        v[node["name"]] = FORWARD[node["op"]](*(v[i] for i in node["inputs"]))
    adjoint = {graph["output"]: np.asarray(cotangent)}
    for node in reversed(graph["nodes"]):
        if node["name"] in adjoint:
            parts = VJP[node["op"]](adjoint[node["name"]], v[node["name"]], *(v[i] for i in node["inputs"]))
            for i, part in zip(node["inputs"], parts):
                adjoint[i] = adjoint.get(i, 0) + unbroadcast(np.asarray(part), v[i].shape)
    return v[graph["output"]], {e["name"]: adjoint.get(e["name"], np.zeros(e["shape"])) for e in graph["inputs"]}
