"""autodiff: the seed notebook's reverse-mode node engine, made correct for tensors.

numpy only. Build nodes, wire them through input lists, `run(feed, nodes)`, and read
`x.gradients[x]`:

    >>> from autodiff import NodeInput, NodeMult, NodeOutput, run
    >>> x, a = NodeInput("x"), NodeInput("a")
    >>> out = NodeOutput("out", [NodeMult("mul", [x, a])])
    >>> _ = run({x: 12, a: 4})
    >>> x.gradients[x], a.gradients[a]
    (4.0, 12.0)

Forward mode and second order take tangents, one per input: `run_jvp(feed, tangents)` leaves
each node's derivative along them in `node.tangent`, and `run_hvp(feed, tangents)` returns
each input's Hessian-vector product (the backward rules rerun on `Dual` arrays):

    >>> _ = run_jvp({x: 12.0, a: 4.0}, {x: 1.0})
    >>> out.tangent
    4.0
    >>> run_hvp({x: 12.0, a: 4.0}, {x: 1.0})[a]  # d/dx of d(x a)/da = 1
    1.0
"""

from .dual import Dual
from .nodes import (
    GraphError,
    NodeAbs,
    NodeAdd,
    NodeAtan2,
    NodeBase,
    NodeBroadcastTo,
    NodeClip,
    NodeConcatenate,
    NodeConv1d,
    NodeCos,
    NodeCumProd,
    NodeCumSum,
    NodeDiv,
    NodeDot,
    NodeEinsum,
    NodeErf,
    NodeExp,
    NodeExpm1,
    NodeInput,
    NodeLog,
    NodeLog1p,
    NodeLogAddExp,
    NodeLogSigmoid,
    NodeLogSoftmax,
    NodeLogSumExp,
    NodeMatmul,
    NodeMaximum,
    NodeMaxPool1d,
    NodeMinimum,
    NodeMult,
    NodeNeg,
    NodeNorm,
    NodeOutput,
    NodePow,
    NodePower,
    NodeReduceMax,
    NodeReduceMean,
    NodeReduceMin,
    NodeReduceProd,
    NodeReduceSum,
    NodeRelu,
    NodeReshape,
    NodeSigmoid,
    NodeSin,
    NodeSlice,
    NodeSoftmax,
    NodeSoftplus,
    NodeSqrt,
    NodeStack,
    NodeStd,
    NodeSubstract,
    NodeSubtract,
    NodeTake,
    NodeTanh,
    NodeTranspose,
    NodeVar,
    NodeWhere,
    sum_to_shape,
)
from .numeric import ngrad, ngrad_directional, ngrad_hvp, ngrad_jvp
from .run import forward, print_all, run, run_hvp, run_jvp, topological_order

__version__ = "0.1.0"

__all__ = [
    "Dual",
    "GraphError",
    "NodeAbs",
    "NodeAdd",
    "NodeAtan2",
    "NodeBase",
    "NodeBroadcastTo",
    "NodeClip",
    "NodeConcatenate",
    "NodeConv1d",
    "NodeCos",
    "NodeCumProd",
    "NodeCumSum",
    "NodeDiv",
    "NodeDot",
    "NodeEinsum",
    "NodeErf",
    "NodeExp",
    "NodeExpm1",
    "NodeInput",
    "NodeLog",
    "NodeLog1p",
    "NodeLogAddExp",
    "NodeLogSigmoid",
    "NodeLogSoftmax",
    "NodeLogSumExp",
    "NodeMatmul",
    "NodeMaxPool1d",
    "NodeMaximum",
    "NodeMinimum",
    "NodeMult",
    "NodeNeg",
    "NodeNorm",
    "NodeOutput",
    "NodePow",
    "NodePower",
    "NodeReduceMax",
    "NodeReduceMean",
    "NodeReduceMin",
    "NodeReduceProd",
    "NodeReduceSum",
    "NodeRelu",
    "NodeReshape",
    "NodeSigmoid",
    "NodeSin",
    "NodeSlice",
    "NodeSoftmax",
    "NodeSoftplus",
    "NodeSqrt",
    "NodeStack",
    "NodeStd",
    "NodeSubstract",
    "NodeSubtract",
    "NodeTake",
    "NodeTanh",
    "NodeTranspose",
    "NodeVar",
    "NodeWhere",
    "forward",
    "ngrad",
    "ngrad_directional",
    "ngrad_hvp",
    "ngrad_jvp",
    "print_all",
    "run",
    "run_hvp",
    "run_jvp",
    "sum_to_shape",
    "topological_order",
]
