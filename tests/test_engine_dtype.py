"""The dtype rule: every gradient has the dtype of the value it is the gradient of.

`run` casts the cotangent to the output value's dtype, and `NodeBase.store_gradients` casts
every part to its input's dtype; Python scalars have no dtype and stay Python scalars.
"""

import numpy as np
import pytest

import autodiff as ad

# One graph per node class: (build the node from its input nodes, the inputs' shapes).
# The shapes broadcast where the op does, so that the summed-back parts are cast too.
NODE_CASES = {
    "add": (lambda a, b: ad.NodeAdd("n", [a, b]), [(2, 3), (3,)]),
    "subtract": (lambda a, b: ad.NodeSubtract("n", [a, b]), [(2, 3), (1, 3)]),
    "mult": (lambda a, b: ad.NodeMult("n", [a, b]), [(3,), (2, 3)]),
    "power": (lambda a: ad.NodePower("n", [a], exponent=3), [(2, 3)]),
    "reduce_sum": (lambda a: ad.NodeReduceSum("n", [a], axis=1), [(2, 3)]),
    "reduce_sum_all": (lambda a: ad.NodeReduceSum("n", [a]), [(2, 3)]),
    "dot": (lambda a, b: ad.NodeDot("n", [a, b]), [(2, 3), (3, 4)]),
    "dot_vector": (lambda a, b: ad.NodeDot("n", [a, b]), [(3,), (3, 2)]),
    "sigmoid": (lambda a: ad.NodeSigmoid("n", [a]), [(2, 3)]),
    **{
        name: (lambda a, node_class=node_class: node_class("n", [a]), [(2, 3)])
        for name, node_class in [
            ("neg", ad.NodeNeg),
            ("exp", ad.NodeExp),
            ("log", ad.NodeLog),
            ("sqrt", ad.NodeSqrt),
            ("tanh", ad.NodeTanh),
            ("sin", ad.NodeSin),
            ("cos", ad.NodeCos),
            ("relu", ad.NodeRelu),
            ("abs", ad.NodeAbs),
            ("softmax", ad.NodeSoftmax),
            ("log_softmax", ad.NodeLogSoftmax),
            ("softplus", ad.NodeSoftplus),
            ("log_sigmoid", ad.NodeLogSigmoid),
            ("log1p", ad.NodeLog1p),
            ("expm1", ad.NodeExpm1),
            ("erf", ad.NodeErf),
        ]
    },
    "div": (lambda a, b: ad.NodeDiv("n", [a, b]), [(3,), (2, 3)]),
    "maximum": (lambda a, b: ad.NodeMaximum("n", [a, b]), [(2, 3), (1, 3)]),
    "pow": (lambda a, b: ad.NodePow("n", [a, b]), [(2, 3), (3,)]),
    "reduce_mean": (lambda a: ad.NodeReduceMean("n", [a], axis=0), [(2, 3)]),
    "reduce_max": (lambda a: ad.NodeReduceMax("n", [a], axis=-1, keepdims=True), [(2, 3)]),
    "logsumexp": (lambda a: ad.NodeLogSumExp("n", [a]), [(2, 3)]),
    "transpose": (lambda a: ad.NodeTranspose("n", [a], axes=[1, 2, 0]), [(2, 3, 4)]),
    "reshape": (lambda a: ad.NodeReshape("n", [a], shape=[3, 2]), [(2, 3)]),
    "broadcast_to": (lambda a: ad.NodeBroadcastTo("n", [a], shape=[4, 2, 3]), [(1, 3)]),
    "reduce_prod": (lambda a: ad.NodeReduceProd("n", [a], axis=1), [(2, 3)]),
    "reduce_prod_all": (lambda a: ad.NodeReduceProd("n", [a]), [(2, 3)]),
    "cumsum": (lambda a: ad.NodeCumSum("n", [a], axis=0), [(2, 3)]),
    "cumprod": (lambda a: ad.NodeCumProd("n", [a]), [(2, 3)]),
    "minimum": (lambda a, b: ad.NodeMinimum("n", [a, b]), [(2, 3), (3,)]),
    "reduce_min": (lambda a: ad.NodeReduceMin("n", [a], axis=0), [(2, 3)]),
    # Python-float bounds must not widen float32 values.
    "clip": (lambda a: ad.NodeClip("n", [a], lo=0.8, hi=1.5), [(2, 3)]),
    "where": (lambda a, b: ad.NodeWhere("n", [a, b], mask=[[True], [False]]), [(3,), (2, 1)]),
    "take": (lambda a: ad.NodeTake("n", [a], indices=[2, 0, -1], axis=-1), [(2, 3)]),
    "slice": (lambda a: ad.NodeSlice("n", [a], starts=[None, 2], stops=[None, None], steps=[-1, -2]), [(2, 3)]),
    "concatenate": (lambda a, b, c: ad.NodeConcatenate("n", [a, b, c], axis=1), [(2, 3), (2, 1), (2, 2)]),
    "stack": (lambda a, b: ad.NodeStack("n", [a, b], axis=-1), [(2, 3), (2, 3)]),
    "logaddexp": (lambda a, b: ad.NodeLogAddExp("n", [a, b]), [(2, 3), (3,)]),
    "atan2": (lambda a, b: ad.NodeAtan2("n", [a, b]), [(2, 1), (1, 3)]),
    "var": (lambda a: ad.NodeVar("n", [a], axis=-1, ddof=1), [(2, 3)]),
    "var_all": (lambda a: ad.NodeVar("n", [a]), [(2, 3)]),
    "std": (lambda a: ad.NodeStd("n", [a], axis=0, keepdims=True), [(2, 3)]),
    "norm": (lambda a: ad.NodeNorm("n", [a], axis=-2), [(2, 3)]),
    "norm_all": (lambda a: ad.NodeNorm("n", [a]), [(2, 3)]),
    "matmul": (lambda a, b: ad.NodeMatmul("n", [a, b]), [(4, 2, 3), (3, 2)]),
    "matmul_vector": (lambda a, b: ad.NodeMatmul("n", [a, b]), [(3,), (4, 3, 2)]),
    "einsum": (lambda a, b, c: ad.NodeEinsum("n", [a, b, c], subscripts="ij,jk,k->i"), [(2, 3), (3, 4), (4,)]),
    "einsum_diagonal": (lambda a: ad.NodeEinsum("n", [a], subscripts="iij->j"), [(3, 3, 2)]),
    "conv1d": (
        lambda x, w: ad.NodeConv1d("n", [x, w], stride=2, padding=1, dilation=2, groups=2),
        [(2, 4, 8), (6, 2, 3)],
    ),
    "max_pool1d": (lambda a: ad.NodeMaxPool1d("n", [a], kernel=3, stride=2), [(2, 3, 7)]),
}


def run_case(name, input_dtype, cotangent_dtype, seed=0):
    """Builds NODE_CASES[name] on inputs of `input_dtype`, runs it with a random cotangent of
    `cotangent_dtype`; returns (inputs, op node, output node)."""
    build, shapes = NODE_CASES[name]
    rng = np.random.default_rng(seed)
    inputs = [ad.NodeInput(f"x{i}") for i in range(len(shapes))]
    node = build(*inputs)
    output = ad.NodeOutput("out", [node])
    feed = {x: rng.uniform(0.5, 2.0, shape).astype(input_dtype) for x, shape in zip(inputs, shapes)}
    ad.forward(feed)
    cotangent = rng.standard_normal(np.shape(output.value)).astype(cotangent_dtype)
    ad.run(feed, cotangent=cotangent)
    return inputs, node, output


def every_gradient(*nodes):
    """(node whose gradient it is, gradient) for every entry of every node's `gradients`."""
    return [(of, gradient) for node in nodes for of, gradient in node.gradients.items()]


@pytest.mark.parametrize("name", NODE_CASES)
def test_a_float32_graph_with_a_float64_cotangent_has_float32_gradients_through_every_node(name):
    inputs, node, output = run_case(name, np.float32, np.float64)
    assert node.value.dtype == np.float32
    for of, gradient in every_gradient(*inputs, node, output):
        assert gradient.dtype == np.float32, f"d out / d {of.name}"
        assert np.shape(gradient) == np.shape(of.value), f"d out / d {of.name}"


@pytest.mark.parametrize("name", NODE_CASES)
def test_a_float64_graph_with_a_float32_cotangent_has_float64_gradients_through_every_node(name):
    inputs, node, output = run_case(name, np.float64, np.float32)
    for of, gradient in every_gradient(*inputs, node, output):
        assert gradient.dtype == np.float64, f"d out / d {of.name}"


@pytest.mark.parametrize("name", NODE_CASES)
def test_the_float32_gradient_is_the_float64_gradient_rounded(name):
    inputs32, _, _ = run_case(name, np.float32, np.float64)
    inputs64, _, _ = run_case(name, np.float64, np.float64)
    for x32, x64 in zip(inputs32, inputs64):
        np.testing.assert_allclose(x32.gradients[x32], x64.gradients[x64], rtol=1e-5, atol=1e-6)


def test_the_cotangent_is_cast_to_the_dtype_of_the_output():
    x = ad.NodeInput("x")
    output = ad.NodeOutput("out", [ad.NodeSigmoid("s", [x])])
    ad.run({x: np.zeros(3, dtype=np.float32)}, cotangent=np.array([1.0, 2.0, 3.0]))
    assert output.gradients[output].dtype == np.float32
    np.testing.assert_array_equal(x.gradients[x], np.float32([0.25, 0.5, 0.75]))


def test_a_float32_input_mixed_with_a_float64_input_gets_a_float32_gradient():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    m = ad.NodeMult("m", [x, y])
    ad.NodeOutput("out", [m])
    ad.run({x: np.ones(3, dtype=np.float32), y: np.full((2, 3), 2.0)})
    assert m.value.dtype == np.float64  # numpy's promotion decides the value...
    assert m.gradients[m].dtype == np.float64  # ...and the value decides its gradient
    assert x.gradients[x].dtype == np.float32
    np.testing.assert_array_equal(x.gradients[x], [4.0, 4.0, 4.0])  # summed back over the broadcast rows
    assert y.gradients[y].dtype == np.float64


def test_a_float32_input_consumed_by_float64_nodes_sums_float32_parts():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    total = ad.NodeAdd("t", [ad.NodeMult("m", [x, y]), ad.NodeSubtract("s", [x, y])])
    ad.NodeOutput("out", [ad.NodeReduceSum("r", [total])])
    ad.run({x: np.float32([1.0, 2.0]), y: np.array([3.0, 4.0])})
    assert x.gradients[x].dtype == np.float32
    np.testing.assert_array_equal(x.gradients[x], [4.0, 5.0])  # y + 1


def test_float32_numpy_scalars_get_float32_gradients():
    x, a = ad.NodeInput("x"), ad.NodeInput("a")
    ad.NodeOutput("out", [ad.NodeSigmoid("s", [ad.NodeMult("m", [x, a])])])
    ad.run({x: np.float32(0.5), a: np.float32(2.0)}, cotangent=1.0)
    assert x.gradients[x].dtype == np.float32
    assert a.gradients[a].dtype == np.float32


def test_python_float_inputs_keep_python_float_values_and_gradients():
    x, a = ad.NodeInput("x"), ad.NodeInput("a")
    power = ad.NodePower("p", [ad.NodeSigmoid("s", [ad.NodeMult("m", [x, a])])], exponent=2)
    output = ad.NodeOutput("out", [ad.NodeReduceSum("r", [ad.NodeSubtract("d", [ad.NodeAdd("e", [power, x]), a])])])
    ad.run({x: 0.5, a: 1.5})
    assert type(output.value) is float
    assert type(x.gradients[x]) is float
    assert type(a.gradients[a]) is float


def test_a_numpy_float64_scalar_stays_a_numpy_scalar_through_reduce_sum():
    x = ad.NodeInput("x")
    output = ad.NodeOutput("out", [ad.NodeReduceSum("r", [x])])
    ad.run({x: np.float64(2.0)})
    assert isinstance(output.value, np.floating)
    assert x.gradients[x].dtype == np.float64


def test_an_integer_input_gets_an_untruncated_float_gradient():
    x, y = ad.NodeInput("x"), ad.NodeInput("y")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, y])])
    ad.run({x: np.array([1, 2, 3]), y: np.array([0.5, 0.25, 0.125])})
    np.testing.assert_array_equal(x.gradients[x], [0.5, 0.25, 0.125])


def test_a_numpy_float64_output_is_seeded_with_a_numpy_float64():
    x = ad.NodeInput("x")
    ad.NodeOutput("out", [ad.NodeMult("m", [x, x])])
    ad.run({x: np.float64(3.0)})
    assert x.gradients[x].dtype == np.float64
    assert x.gradients[x] == 6.0
