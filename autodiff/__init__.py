"""autodiff: the seed notebook's reverse-mode node engine, made correct for tensors.

numpy only. Build nodes, wire them through input lists, `run(feed, nodes)`, and read
`x.gradients[x]`:

    >>> from autodiff import NodeInput, NodeMult, NodeOutput, run
    >>> x, a = NodeInput("x"), NodeInput("a")
    >>> out = NodeOutput("out", [NodeMult("mul", [x, a])])
    >>> _ = run({x: 12, a: 4})
    >>> x.gradients[x], a.gradients[a]
    (4.0, 12.0)
"""

from .nodes import (
    GraphError,
    NodeAbs,
    NodeAdd,
    NodeBase,
    NodeBroadcastTo,
    NodeCos,
    NodeDiv,
    NodeDot,
    NodeExp,
    NodeInput,
    NodeLog,
    NodeLogSoftmax,
    NodeLogSumExp,
    NodeMaximum,
    NodeMult,
    NodeNeg,
    NodeOutput,
    NodePow,
    NodePower,
    NodeReduceMax,
    NodeReduceMean,
    NodeReduceSum,
    NodeRelu,
    NodeReshape,
    NodeSigmoid,
    NodeSin,
    NodeSoftmax,
    NodeSqrt,
    NodeSubstract,
    NodeSubtract,
    NodeTanh,
    NodeTranspose,
    sum_to_shape,
)
from .numeric import ngrad, ngrad_directional
from .run import forward, print_all, run, topological_order

__version__ = "0.1.0"

__all__ = [
    "GraphError",
    "NodeAbs",
    "NodeAdd",
    "NodeBase",
    "NodeBroadcastTo",
    "NodeCos",
    "NodeDiv",
    "NodeDot",
    "NodeExp",
    "NodeInput",
    "NodeLog",
    "NodeLogSoftmax",
    "NodeLogSumExp",
    "NodeMaximum",
    "NodeMult",
    "NodeNeg",
    "NodeOutput",
    "NodePow",
    "NodePower",
    "NodeReduceMax",
    "NodeReduceMean",
    "NodeReduceSum",
    "NodeRelu",
    "NodeReshape",
    "NodeSigmoid",
    "NodeSin",
    "NodeSoftmax",
    "NodeSqrt",
    "NodeSubstract",
    "NodeSubtract",
    "NodeTanh",
    "NodeTranspose",
    "forward",
    "ngrad",
    "ngrad_directional",
    "print_all",
    "run",
    "sum_to_shape",
    "topological_order",
]
