"""`python -m autodiff`: a short demonstration on a tensor graph.

Builds sigmoid(x @ w + b) summed, runs it, prints every node the notebook's way, and
checks the gradients against central differences.
"""

import numpy as np

from . import NodeAdd, NodeDot, NodeInput, NodeOutput, NodeReduceSum, NodeSigmoid, ngrad, print_all, run


def main() -> int:
    rng = np.random.default_rng(0)
    x, w, b = NodeInput("x"), NodeInput("w"), NodeInput("b")
    hidden = NodeSigmoid("hidden", [NodeAdd("affine", [NodeDot("xw", [x, w]), b])])
    out = NodeOutput("out", [NodeReduceSum("loss", [hidden])])
    feed = {x: rng.standard_normal((2, 3)), w: rng.standard_normal((3, 2)), b: rng.standard_normal(2)}
    numeric = ngrad(feed)
    run(feed)
    print_all(feed)
    print(f"\nout = {out.value:.6f}")
    for node in feed:
        error = np.max(np.abs(node.gradients[node] - numeric[node]))
        print(f"max |gradient - central difference| for {node.name}: {error:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
