"""Graph builders shared by the benchmarks, written once for any engine module that has
the notebook's classes (our `autodiff`, or `examples.notebook_engine`)."""

import time

import numpy as np


def scalar_chain(engine, steps: int):
    """x -> mult(., w) -> sigmoid -> mult(., w) -> sigmoid ... : `steps` (mult, sigmoid) pairs.

    Returns (feed, nodes): the notebook's engine needs the node list in order.
    """
    x, w = engine.NodeInput("x", []), engine.NodeInput("w", [])
    nodes = [x, w]
    node = x
    for i in range(steps):
        node = engine.NodeMult(f"m{i}", [node, w])
        nodes.append(node)
        node = engine.NodeSigmoid(f"s{i}", [node])
        nodes.append(node)
    nodes.append(engine.NodeOutput("out", [node]))
    return {x: 0.5, w: 1.5}, nodes


def forward_backward(engine, feed, nodes):
    engine.run(feed, nodes)


def median_seconds(function, repeats: int = 30) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


if __name__ == "__main__":
    # python -m benchmarks.chains: forward+backward on the 1,000-step scalar chain, both engines.
    import autodiff
    from examples import notebook_engine

    for engine in (autodiff, notebook_engine):
        feed, nodes = scalar_chain(engine, 1000)
        seconds = median_seconds(lambda: engine.run(feed, nodes), repeats=50)  # noqa: B023
        print(f"{engine.__name__:26s} {seconds * 1e3:7.3f} ms  ({seconds / 2000 * 1e6:.2f} us per op node)")
