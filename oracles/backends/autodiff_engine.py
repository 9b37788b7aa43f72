"""Our engine behind the plug-in protocol, through its public API only, exactly as a
third-party engine would be reached. `autodiff` knows nothing of this module."""

import autodiff

name = "autodiff"

# op name -> the engine's node class. One line per op of the table.
NODE_CLASSES = {
    "add": autodiff.NodeAdd,
    "subtract": autodiff.NodeSubtract,
    "mult": autodiff.NodeMult,
    "power": autodiff.NodePower,
    "reduce_sum": autodiff.NodeReduceSum,
    "dot": autodiff.NodeDot,
    "sigmoid": autodiff.NodeSigmoid,
    "neg": autodiff.NodeNeg,
    "exp": autodiff.NodeExp,
    "log": autodiff.NodeLog,
    "sqrt": autodiff.NodeSqrt,
    "tanh": autodiff.NodeTanh,
    "sin": autodiff.NodeSin,
    "cos": autodiff.NodeCos,
    "relu": autodiff.NodeRelu,
    "abs": autodiff.NodeAbs,
    "div": autodiff.NodeDiv,
    "maximum": autodiff.NodeMaximum,
    "pow": autodiff.NodePow,
    "reduce_mean": autodiff.NodeReduceMean,
    "reduce_max": autodiff.NodeReduceMax,
    "transpose": autodiff.NodeTranspose,
    "reshape": autodiff.NodeReshape,
    "broadcast_to": autodiff.NodeBroadcastTo,
    "softmax": autodiff.NodeSoftmax,
    "log_softmax": autodiff.NodeLogSoftmax,
    "logsumexp": autodiff.NodeLogSumExp,
    "reduce_prod": autodiff.NodeReduceProd,
    "cumsum": autodiff.NodeCumSum,
    "cumprod": autodiff.NodeCumProd,
    "minimum": autodiff.NodeMinimum,
    "reduce_min": autodiff.NodeReduceMin,
    "clip": autodiff.NodeClip,
    "where": autodiff.NodeWhere,
    "take": autodiff.NodeTake,
    "slice": autodiff.NodeSlice,
    "concatenate": autodiff.NodeConcatenate,
    "stack": autodiff.NodeStack,
    "softplus": autodiff.NodeSoftplus,
    "log_sigmoid": autodiff.NodeLogSigmoid,
    "log1p": autodiff.NodeLog1p,
    "expm1": autodiff.NodeExpm1,
    "logaddexp": autodiff.NodeLogAddExp,
    "erf": autodiff.NodeErf,
    "atan2": autodiff.NodeAtan2,
    "var": autodiff.NodeVar,
    "std": autodiff.NodeStd,
    "norm": autodiff.NodeNorm,
    "matmul": autodiff.NodeMatmul,
    "einsum": autodiff.NodeEinsum,
    "conv1d": autodiff.NodeConv1d,
    "max_pool1d": autodiff.NodeMaxPool1d,
}
ops = NODE_CLASSES.keys()  # a live view: an op added to the map is supported at once
unsupported: dict[str, str] = {}  # op -> why not; with `ops`, this covers the op table


def _build(graph):
    """The graph as the engine's nodes: (output marker, input nodes, the order to run in)."""
    nodes: dict[str, autodiff.NodeBase] = {}
    for entry in graph["inputs"]:
        nodes[entry["name"]] = autodiff.NodeInput(entry["name"], shape=entry["shape"])
    for node in graph["nodes"]:
        node_class = NODE_CLASSES[node["op"]]
        operands = [nodes[operand] for operand in node["inputs"]]
        nodes[node["name"]] = node_class(node["name"], operands, **(node.get("attrs") or {}))
    # Node names are unique in a graph; the marker's name only has to differ from them.
    output = autodiff.NodeOutput("output of " + graph["output"], [nodes[graph["output"]]])
    inputs = [nodes[entry["name"]] for entry in graph["inputs"]]
    return output, inputs, autodiff.topological_order([output, *inputs])


def evaluate(graph, values, cotangent):
    output, inputs, order = _build(graph)
    autodiff.run({node: values[node.name] for node in inputs}, order, cotangent=cotangent)
    return output.value, {node.name: node.gradients[node] for node in inputs}


def jvp(graph, values, tangents):
    """Forward mode: every node's tangent rule, in order."""
    output, inputs, order = _build(graph)
    feed = {node: values[node.name] for node in inputs}
    autodiff.run_jvp(feed, {node: tangents[node.name] for node in inputs}, order)
    return output.value, output.tangent


def hvp(graph, values, cotangent, tangents):
    """Second order: the backward rules run on values that carry their tangents (forward-over-reverse)."""
    _, inputs, order = _build(graph)
    feed = {node: values[node.name] for node in inputs}
    products = autodiff.run_hvp(feed, {node: tangents[node.name] for node in inputs}, order, cotangent=cotangent)
    return {node.name: products[node] for node in inputs}
