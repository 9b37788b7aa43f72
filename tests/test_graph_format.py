"""The graph format, version 1, as specifications: what `oracles.graph` accepts, what it
fills in, and the exact one-line message, located in the JSON, for what it rejects.

Every error test compares the whole message, so the location format
(`graph.nodes[3].inputs[1]: 'w' is not defined before node 'd'`) is pinned."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from oracles.format import (
    FormatError,
    case_to_json,
    infer_shapes,
    load_case,
    read_json,
    reference_values,
    save_case,
    validate_case,
    validate_graph,
)
from oracles.ops import OPS

KNOWN_OPS = ", ".join(OPS)


# --- building blocks -------------------------------------------------------------------


def node(name: str, op: str, *inputs: str, **attrs) -> dict:
    entry = {"name": name, "op": op, "inputs": list(inputs)}
    if attrs:
        entry["attrs"] = attrs
    return entry


def make_graph(inputs: dict[str, list], nodes: list[dict], output=None, **fields) -> dict:
    """A complete graph; the output defaults to the last node (or the first input)."""
    if output is None:
        output = nodes[-1]["name"] if nodes else next(iter(inputs))
    graph = {
        "format": "autodiff-graph",
        "version": 1,
        "dtype": "float64",
        "inputs": [{"name": name, "shape": shape} for name, shape in inputs.items()],
        "nodes": nodes,
        "output": output,
    }
    graph.update(fields)
    return graph


def one_node_graph(op: str, *shapes: list, **attrs) -> dict:
    """Inputs a, b, ... of the given shapes feeding one node `n`."""
    names = "abcdefgh"[: len(shapes)]
    return make_graph(dict(zip(names, shapes)), [node("n", op, *names, **attrs)])


def example_graph() -> dict:
    """The example of graph-format.md, with the input `w` it trims."""
    return make_graph(
        {"x": [3, 4], "a": [], "w": [4, 2]},
        [
            node("m", "mult", "x", "a"),
            node("s", "sigmoid", "m"),
            node("p", "power", "s", exponent=2),
            node("d", "dot", "p", "w"),
            node("r", "reduce_sum", "d", axis=None, keepdims=False),
        ],
        output="r",
    )


def small_case(**fields) -> dict:
    """A graph `sum(x * a)` with x of shape [2, 3] and a scalar a, and values for both."""
    case = {
        "graph": make_graph({"x": [2, 3], "a": []}, [node("m", "mult", "x", "a"), node("r", "reduce_sum", "m")]),
        "values": {"x": [[0.1, -0.5, 1.25], [2.0, 0.0, 1.0]], "a": 0.75},
    }
    case.update(fields)
    return case


def graph_error(graph) -> str:
    with pytest.raises(FormatError) as info:
        validate_graph(graph)
    return str(info.value)


def case_error(case) -> str:
    with pytest.raises(FormatError) as info:
        validate_case(case)
    return str(info.value)


# --- the graph as a whole --------------------------------------------------------------


def test_a_graph_that_is_not_an_object_is_rejected():
    assert graph_error([1, 2]) == "graph: expected an object, got list"


def test_a_graph_of_another_format_is_rejected():
    assert graph_error(make_graph({"x": []}, [], format="onnx")) == (
        "graph.format: expected 'autodiff-graph', got 'onnx'"
    )


def test_a_graph_of_another_version_is_rejected():
    assert graph_error(make_graph({"x": []}, [], version=2)) == (
        "graph.version: 2 is not supported (this tool reads version 1)"
    )


def test_a_dtype_other_than_float64_or_float32_is_rejected():
    assert graph_error(make_graph({"x": []}, [], dtype="float16")) == (
        "graph.dtype: 'float16' is not one of float64, float32"
    )


def test_format_version_and_dtype_may_be_omitted_and_are_filled_in():
    graph = make_graph({"x": [2]}, [node("s", "sigmoid", "x")])
    for key in ("format", "version", "dtype"):
        del graph[key]
    normalized = validate_graph(graph)
    assert (normalized["format"], normalized["version"], normalized["dtype"]) == ("autodiff-graph", 1, "float64")


def test_inputs_that_are_not_a_list_are_rejected():
    assert graph_error({"inputs": {"x": [3]}, "nodes": [], "output": "x"}) == (
        "graph.inputs: expected a list, got dict"
    )


def test_nodes_that_are_not_a_list_are_rejected():
    graph = make_graph({"x": [3]}, [])
    graph["nodes"] = None
    assert graph_error(graph) == "graph.nodes: expected a list, got NoneType"


# --- names ------------------------------------------------------------------------------


def test_an_input_without_a_name_is_rejected():
    graph = make_graph({"x": [3]}, [])
    graph["inputs"].append({"shape": [3]})
    assert graph_error(graph).startswith("graph.inputs[1].name: None is not a name")


def test_an_input_named_twice_names_both_places():
    graph = make_graph({"x": [3]}, [])
    graph["inputs"].append({"name": "x", "shape": [2]})
    assert graph_error(graph) == "graph.inputs[1].name: 'x' is already defined (graph.inputs[0])"


def test_a_node_named_like_an_input_names_both_places():
    graph = make_graph({"x": [3], "y": [3]}, [node("y", "add", "x", "x")])
    assert graph_error(graph) == "graph.nodes[0].name: 'y' is already defined (graph.inputs[1])"


def test_a_node_named_like_an_earlier_node_names_both_places():
    graph = make_graph({"x": [3]}, [node("s", "sigmoid", "x"), node("t", "sigmoid", "s"), node("s", "add", "t", "x")])
    assert graph_error(graph) == "graph.nodes[2].name: 's' is already defined (graph.nodes[0])"


def test_forward_reference_names_the_node_and_input():
    graph = example_graph()
    del graph["inputs"][2]  # drop `w`, as the trimmed example does
    assert graph_error(graph) == "graph.nodes[3].inputs[1]: 'w' is not defined before node 'd'"


def test_a_node_using_itself_is_a_forward_reference():
    graph = make_graph({"x": [3]}, [node("s", "add", "x", "s")])
    assert graph_error(graph) == "graph.nodes[0].inputs[1]: 's' is not defined before node 's'"


def test_a_cycle_is_reported_at_its_first_node_as_a_forward_reference():
    graph = make_graph({"x": [3]}, [node("a", "add", "x", "b"), node("b", "sigmoid", "a")])
    assert graph_error(graph) == "graph.nodes[0].inputs[1]: 'b' is not defined before node 'a'"


def test_a_name_may_feed_many_nodes_and_appear_twice_in_one():
    graph = make_graph(
        {"x": [3]}, [node("sq", "mult", "x", "x"), node("s", "sigmoid", "x"), node("t", "add", "sq", "s")]
    )
    assert [entry["name"] for entry in validate_graph(graph)["nodes"]] == ["sq", "s", "t"]


def test_the_output_may_be_an_input():
    assert validate_graph(make_graph({"x": [2, 2]}, [], output="x"))["output"] == "x"


def test_an_output_that_is_not_defined_is_rejected():
    assert graph_error(make_graph({"x": [3]}, [node("s", "sigmoid", "x")], output="z")) == (
        "graph.output: 'z' is not defined"
    )


# --- shapes of inputs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("3", "graph.inputs[0].shape: expected a list of sizes ([] for a scalar), got '3'"),
        (3, "graph.inputs[0].shape: expected a list of sizes ([] for a scalar), got 3"),
        (None, "graph.inputs[0].shape: expected a list of sizes ([] for a scalar), got None"),
        ([2, 0], "graph.inputs[0].shape[1]: 0 is not a positive integer"),
        ([-1], "graph.inputs[0].shape[0]: -1 is not a positive integer"),
        ([True, 2], "graph.inputs[0].shape[0]: True is not a positive integer"),
        ([2.0], "graph.inputs[0].shape[0]: 2.0 is not a positive integer"),
        ([2, "3"], "graph.inputs[0].shape[1]: '3' is not a positive integer"),
    ],
    ids=repr,
)
def test_a_bad_shape_names_the_input_and_the_axis(shape, message):
    assert graph_error(make_graph({"x": shape}, [])) == message


# --- ops and arity --------------------------------------------------------------------------


def test_an_unknown_op_lists_the_known_ones():
    assert graph_error(one_node_graph("frobnicate", [3])) == (
        f"graph.nodes[0].op: unknown op 'frobnicate' (known: {KNOWN_OPS})"
    )


def test_a_node_without_an_op_is_an_unknown_op():
    graph = make_graph({"x": [3]}, [{"name": "n", "inputs": ["x"]}])
    assert graph_error(graph) == f"graph.nodes[0].op: unknown op None (known: {KNOWN_OPS})"


def test_a_binary_op_with_one_input_is_rejected():
    assert graph_error(one_node_graph("add", [3])) == "graph.nodes[0].inputs: 'add' takes 2 input(s), got 1"


def test_a_unary_op_with_two_inputs_is_rejected():
    assert graph_error(one_node_graph("sigmoid", [3], [3])) == (
        "graph.nodes[0].inputs: 'sigmoid' takes 1 input(s), got 2"
    )


def test_node_inputs_must_be_a_list_of_names():
    graph = make_graph({"x": [3]}, [{"name": "n", "op": "sigmoid", "inputs": "x"}])
    assert graph_error(graph) == "graph.nodes[0].inputs: expected a list of names, got 'x'"


def test_a_node_that_is_not_an_object_is_rejected():
    graph = make_graph({"x": [3]}, [["n", "sigmoid", "x"]], output="x")
    assert graph_error(graph) == (
        "graph.nodes[0]: expected an object with name, op and inputs, got ['n', 'sigmoid', 'x']"
    )


# --- shapes of ops ---------------------------------------------------------------------------


def test_add_of_shapes_that_do_not_broadcast_is_rejected():
    assert graph_error(one_node_graph("add", [2, 3], [2])) == (
        "graph.nodes[0]: node 'n' (add): shapes [2, 3] and [2] do not broadcast"
    )


def test_dot_of_vectors_of_different_lengths_is_rejected():
    assert graph_error(one_node_graph("dot", [3], [4])) == (
        "graph.nodes[0]: node 'n' (dot): shapes [3] and [4] do not fit a @ b (3 != 4)"
    )


def test_dot_of_matrices_with_mismatched_inner_sizes_is_rejected():
    assert graph_error(one_node_graph("dot", [2, 3], [2, 3])) == (
        "graph.nodes[0]: node 'n' (dot): shapes [2, 3] and [2, 3] do not fit a @ b (3 != 2)"
    )


def test_dot_of_a_vector_and_a_matrix_checks_the_matrix_rows():
    assert graph_error(one_node_graph("dot", [3], [2, 3])) == (
        "graph.nodes[0]: node 'n' (dot): shapes [3] and [2, 3] do not fit a @ b (3 != 2)"
    )


def test_dot_of_a_three_dimensional_operand_is_rejected():
    assert graph_error(one_node_graph("dot", [2, 2, 2], [2])) == (
        "graph.nodes[0]: node 'n' (dot): dot takes 1-D or 2-D operands, got shapes [2, 2, 2] and [2]"
    )


def test_dot_of_a_scalar_is_rejected():
    assert graph_error(one_node_graph("dot", [], [3])) == (
        "graph.nodes[0]: node 'n' (dot): dot takes 1-D or 2-D operands, got shapes [] and [3]"
    )


@pytest.mark.parametrize(("axis", "shape"), [(2, [2, 3]), (-3, [2, 3]), (0, [])])
def test_reduce_sum_over_an_axis_out_of_range_is_rejected(axis, shape):
    assert graph_error(one_node_graph("reduce_sum", shape, axis=axis)) == (
        f"graph.nodes[0]: node 'n' (reduce_sum): axis {axis} is out of range for shape {shape}"
    )


def test_a_shape_error_deep_in_a_graph_names_that_node():
    graph = example_graph()
    graph["inputs"][2]["shape"] = [3, 2]
    assert graph_error(graph) == "graph.nodes[3]: node 'd' (dot): shapes [3, 4] and [3, 2] do not fit a @ b (4 != 3)"


# --- attrs -------------------------------------------------------------------------------------


def test_an_unknown_attr_lists_the_known_ones():
    assert graph_error(one_node_graph("power", [3], exp=3)) == (
        "graph.nodes[0].attrs: unknown attr 'exp' for op 'power' (known: exponent)"
    )


def test_an_attr_on_an_op_without_attrs_is_unknown():
    assert graph_error(one_node_graph("sigmoid", [3], axis=0)) == (
        "graph.nodes[0].attrs: unknown attr 'axis' for op 'sigmoid' (known: none)"
    )


def test_attrs_that_are_not_an_object_are_rejected():
    graph = one_node_graph("power", [3])
    graph["nodes"][0]["attrs"] = 3
    assert graph_error(graph) == "graph.nodes[0].attrs: expected an object, got 3"


@pytest.mark.parametrize(("exponent", "shown"), [(2.5, "2.5"), (2.0, "2.0"), ("2", "'2'"), (None, "None")])
def test_a_non_integer_exponent_is_rejected(exponent, shown):
    assert graph_error(one_node_graph("power", [3], exponent=exponent)) == (
        f"graph.nodes[0].attrs: exponent must be an integer, got {shown}"
    )


def test_a_boolean_exponent_is_rejected():
    assert graph_error(one_node_graph("power", [3], exponent=True)) == (
        "graph.nodes[0].attrs: exponent must be an integer, got True"
    )


@pytest.mark.parametrize(("axis", "shown"), [("0", "'0'"), (1.0, "1.0"), (True, "True"), ([0], "[0]")])
def test_an_axis_that_is_not_null_or_an_integer_is_rejected(axis, shown):
    assert graph_error(one_node_graph("reduce_sum", [2, 3], axis=axis)) == (
        f"graph.nodes[0].attrs: axis must be null or an integer, got {shown}"
    )


@pytest.mark.parametrize(("keepdims", "shown"), [(1, "1"), ("false", "'false'"), (None, "None")])
def test_keepdims_that_is_not_a_boolean_is_rejected(keepdims, shown):
    assert graph_error(one_node_graph("reduce_sum", [2, 3], keepdims=keepdims)) == (
        f"graph.nodes[0].attrs: keepdims must be true or false, got {shown}"
    )


def test_missing_attrs_take_their_defaults():
    graph = make_graph(
        {"x": [2, 3]},
        [node("p", "power", "x"), node("r", "reduce_sum", "p", keepdims=True), node("s", "sigmoid", "r")],
    )
    assert [entry["attrs"] for entry in validate_graph(graph)["nodes"]] == [
        {"exponent": 2},
        {"axis": None, "keepdims": True},
        {},
    ]


def test_null_attrs_take_their_defaults():
    graph = one_node_graph("reduce_sum", [2, 3])
    graph["nodes"][0]["attrs"] = None
    assert validate_graph(graph)["nodes"][0]["attrs"] == {"axis": None, "keepdims": False}


def test_validating_does_not_change_the_given_graph():
    graph = example_graph()
    del graph["dtype"]
    del graph["nodes"][2]["attrs"]
    before = json.dumps(graph, sort_keys=True)
    validate_graph(graph)
    assert json.dumps(graph, sort_keys=True) == before


# --- accepted graphs and inferred shapes -------------------------------------------------------


def test_the_example_graph_of_the_format_validates():
    normalized = validate_graph(example_graph())
    assert normalized["output"] == "r"
    assert [entry["op"] for entry in normalized["nodes"]] == ["mult", "sigmoid", "power", "dot", "reduce_sum"]


def test_the_example_graph_has_the_shapes_its_ops_imply():
    shapes = infer_shapes(validate_graph(example_graph()))
    assert shapes == {"x": (3, 4), "a": (), "w": (4, 2), "m": (3, 4), "s": (3, 4), "p": (3, 4), "d": (3, 2), "r": ()}


# (op, operand shapes, attrs, result shape)
SHAPE_RULES = [
    ("add", ([2, 3], [2, 3]), {}, (2, 3)),
    ("add", ([2, 1], [3]), {}, (2, 3)),
    ("subtract", ([], [2]), {}, (2,)),
    ("subtract", ([1], [2, 2]), {}, (2, 2)),
    ("mult", ([4, 1, 3], [2, 1]), {}, (4, 2, 3)),
    ("mult", ([], []), {}, ()),
    ("power", ([2, 3],), {"exponent": 3}, (2, 3)),
    ("power", ([],), {}, ()),
    ("sigmoid", ([5],), {}, (5,)),
    ("dot", ([3], [3]), {}, ()),
    ("dot", ([2, 3], [3]), {}, (2,)),
    ("dot", ([3], [3, 4]), {}, (4,)),
    ("dot", ([2, 3], [3, 4]), {}, (2, 4)),
    ("reduce_sum", ([2, 3],), {}, ()),
    ("reduce_sum", ([2, 3],), {"keepdims": True}, (1, 1)),
    ("reduce_sum", ([2, 3],), {"axis": 0}, (3,)),
    ("reduce_sum", ([2, 3],), {"axis": -1}, (2,)),
    ("reduce_sum", ([2, 3],), {"axis": 1, "keepdims": True}, (2, 1)),
    ("reduce_sum", ([],), {}, ()),
    ("reduce_sum", ([],), {"keepdims": True}, ()),
    *((op, ([2, 3],), {}, (2, 3)) for op in ("neg", "exp", "log", "sqrt", "tanh", "sin", "cos", "relu", "abs")),
    *((op, ([2, 1], [3]), {}, (2, 3)) for op in ("div", "maximum", "pow")),
    ("reduce_mean", ([2, 3],), {"axis": 0}, (3,)),
    ("reduce_max", ([2, 3],), {"axis": -1, "keepdims": True}, (2, 1)),
    ("logsumexp", ([2, 3],), {}, ()),
    ("transpose", ([2, 3, 4],), {}, (4, 3, 2)),
    ("transpose", ([2, 3, 4],), {"axes": [1, 2, 0]}, (3, 4, 2)),
    ("reshape", ([2, 3],), {"shape": [3, 1, 2]}, (3, 1, 2)),
    ("broadcast_to", ([1, 3],), {"shape": [4, 2, 3]}, (4, 2, 3)),
    ("softmax", ([2, 3],), {}, (2, 3)),
    ("log_softmax", ([2, 3],), {"axis": 0}, (2, 3)),
    ("reduce_prod", ([2, 3],), {"axis": -2}, (3,)),
    ("cumsum", ([2, 3],), {}, (2, 3)),
    ("cumprod", ([2, 3, 2],), {"axis": -3}, (2, 3, 2)),
    ("minimum", ([2, 1], [3]), {}, (2, 3)),
    ("reduce_min", ([2, 3],), {"keepdims": True}, (1, 1)),
    ("clip", ([2, 3],), {"lo": -0.5, "hi": 1.0}, (2, 3)),
    ("where", ([2, 1], [3]), {"mask": [True, False, True]}, (2, 3)),
    ("where", ([], []), {"mask": [[True], [False]]}, (2, 1)),
    ("take", ([4, 3],), {"indices": [0, -1, 0, 2, 3], "axis": 0}, (5, 3)),
    ("take", ([4, 3],), {"indices": [-3], "axis": -1}, (4, 1)),
    ("slice", ([5, 4],), {"starts": [None, -1], "stops": [None, 0], "steps": [2, -2]}, (3, 2)),
    ("slice", ([3],), {"starts": [1], "stops": [2], "steps": [None]}, (1,)),
    ("concatenate", ([2, 1], [2, 3], [2, 2]), {"axis": -1}, (2, 6)),
    ("concatenate", ([1], [1], [2], [3]), {}, (7,)),
    ("stack", ([2, 3], [2, 3]), {"axis": -1}, (2, 3, 2)),
    ("stack", ([], [], []), {}, (3,)),
    ("softplus", ([2, 3],), {}, (2, 3)),
    ("log_sigmoid", ([],), {}, ()),
    ("log1p", ([3],), {}, (3,)),
    ("expm1", ([3, 1],), {}, (3, 1)),
    ("logaddexp", ([2, 1], [3]), {}, (2, 3)),
    ("erf", ([2],), {}, (2,)),
    ("atan2", ([], [2, 2]), {}, (2, 2)),
    ("var", ([2, 3],), {"axis": -1, "ddof": 1}, (2,)),
    ("var", ([2, 3],), {"keepdims": True}, (1, 1)),
    ("std", ([2, 3, 2],), {"axis": 1, "keepdims": True, "ddof": 1}, (2, 1, 2)),
    ("norm", ([2, 3],), {"axis": 0}, (3,)),
    ("norm", ([2, 3],), {}, ()),
    ("matmul", ([3], [3]), {}, ()),
    ("matmul", ([3], [2, 3, 4]), {}, (2, 4)),
    ("matmul", ([2, 3, 4], [4]), {}, (2, 3)),
    ("matmul", ([1, 2, 3], [4, 3, 2]), {}, (4, 2, 2)),
    ("matmul", ([2, 3], [4, 3, 5]), {}, (4, 2, 5)),
    ("einsum", ([3, 3],), {"subscripts": "ii->"}, ()),
    ("einsum", ([3, 3],), {"subscripts": "ii->i"}, (3,)),
    ("einsum", ([2, 3], [3, 4], [4]), {"subscripts": "ij,jk,k->i"}, (2,)),
    ("einsum", ([2], [3]), {"subscripts": "i,j->ji"}, (3, 2)),
    ("conv1d", ([2, 4, 7], [6, 2, 3]), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}, (2, 6, 3)),
    ("conv1d", ([1, 1, 3], [1, 1, 3]), {}, (1, 1, 1)),
    ("max_pool1d", ([2, 3, 7],), {"kernel": 3, "stride": 2}, (2, 3, 3)),
    ("max_pool1d", ([1, 1, 5],), {}, (1, 1, 2)),
]


@pytest.mark.parametrize(("op", "shapes", "attrs", "expected"), SHAPE_RULES, ids=str)
def test_the_inferred_shape_is_the_shape_numpy_computes(op, shapes, attrs, expected):
    graph = validate_graph(one_node_graph(op, *shapes, **attrs))
    assert infer_shapes(graph)["n"] == expected
    rng = np.random.default_rng(0)
    values = {entry["name"]: rng.uniform(0.5, 2.0, entry["shape"]) for entry in graph["inputs"]}
    assert reference_values(graph, values)["n"].shape == expected


def test_every_op_has_a_shape_rule_above():
    assert {op for op, *_ in SHAPE_RULES} == set(OPS)


# What the third op wave's attrs may not be: each a one-line error naming the node's place.
BAD_DATA_ATTRS = [
    ("take", ([3],), {"indices": [3]}, "index 3 is out of range for axis 0 of length 3"),
    ("take", ([3],), {"indices": [-4]}, "index -4 is out of range"),
    ("take", ([3],), {"indices": []}, "indices must be a non-empty list of integers"),
    ("take", ([3],), {"indices": [0.5]}, "indices must be a list of integers"),
    ("take", ([3],), {"indices": [0] * 10_001}, "more than 10,000"),
    ("where", ([2], [2]), {"mask": [True, False, True]}, "do not broadcast"),
    ("where", ([2], [2]), {"mask": [[True], [False, True]]}, "not rectangular"),
    ("where", ([2], [2]), {"mask": [1, 0]}, "nested list of booleans"),
    ("where", ([2], [2]), {"mask": [[[[[[[[[True]]]]]]]]]}, "nested more than 8 deep"),
    ("where", ([], []), {"mask": [True] * 10_001}, "more than 10,000 elements"),
    ("slice", ([3],), {"starts": [0], "stops": [2], "steps": [0]}, "a step must not be 0"),
    ("slice", ([3],), {"starts": [2], "stops": [1], "steps": [1]}, "is empty"),
    ("slice", ([3, 2],), {"starts": [0], "stops": [2], "steps": [1]}, "1 entries per list for an operand of rank 2"),
    ("slice", ([3],), {"starts": [0, 1], "stops": [2], "steps": [1]}, "one entry per axis each"),
    ("clip", ([3],), {"lo": 1.0, "hi": 1.0}, "lo must be below hi"),
    ("clip", ([3],), {"lo": -(10**400), "hi": 1.0}, "lo must be a finite number"),
    ("slice", ([3],), {"starts": [10**400], "stops": [None], "steps": [1]}, "at most 2,147,483,647 either way"),
    ("clip", ([3],), {"hi": 1.0}, "lo must be a finite number (clip needs both lo and hi), got None"),
    ("concatenate", ([2, 1], [3, 1]), {"axis": 1}, "differ off axis 1"),
    ("concatenate", ([2], [2, 1]), {}, "differ in rank"),
    ("stack", ([2], [3]), {}, "stack needs operands of one shape"),
    ("stack", ([2], [2]), {"axis": 2}, "axis 2 is out of range for the result of rank 2"),
    ("cumsum", ([2],), {"axis": 1}, "axis 1 is out of range"),
    ("var", ([1, 3],), {"axis": 0, "ddof": 1}, "ddof 1 needs more than 1 elements in each reduced slice, got 1"),
    ("std", ([3],), {"ddof": -1}, "ddof must be an integer from 0"),
    ("std", ([3],), {"ddof": 0.5}, "ddof must be an integer from 0"),
    ("matmul", ([], [3]), {}, "matmul takes operands of rank 1 or more"),
    ("matmul", ([2, 3], [2]), {}, "do not fit a @ b (3 != 2)"),
    ("matmul", ([2, 2, 3], [3, 3, 2]), {}, "batch axes of shapes [2, 2, 3] and [3, 3, 2] do not broadcast"),
    ("einsum", ([3],), {"subscripts": "i"}, "subscripts must be explicit"),
    ("einsum", ([3],), {"subscripts": "...i->i"}, "subscripts must be explicit"),
    ("einsum", ([3],), {"subscripts": 3}, "subscripts must be a string"),
    ("einsum", ([3],), {"subscripts": "i->ii"}, "a label appears twice in the output"),
    ("einsum", ([3],), {"subscripts": "i->j"}, "output label(s) j appear in no operand"),
    ("einsum", ([3], [3]), {"subscripts": "i->i"}, "name 1 operand(s), got 2"),
    ("einsum", ([2, 3],), {"subscripts": "ii->"}, "label 'i' of 'ii->' has sizes 2 and 3"),
    ("einsum", ([2, 3],), {"subscripts": "i->i"}, "does not fit an operand of shape [2, 3]"),
    ("conv1d", ([1, 3, 5], [2, 3, 2]), {"groups": 2}, "groups 2 do not fit"),
    ("conv1d", ([1, 1, 2], [1, 1, 3]), {}, "a window of 3 does not fit a padded width of 2"),
    ("conv1d", ([1, 1, 5], [1, 1, 2]), {"stride": 0}, "stride must be an integer from 1"),
    ("conv1d", ([1, 1, 5], [1, 1, 2]), {"padding": -1}, "padding must be an integer from 0"),
    ("conv1d", ([1, 5], [1, 1, 2]), {}, "conv1d takes x (N, C_in, W)"),
    ("max_pool1d", ([1, 1, 1],), {}, "a window of 2 does not fit a width of 1"),
    ("max_pool1d", ([1, 1, 4],), {"stride": 0}, "stride must be an integer from 1"),
    ("max_pool1d", ([1, 4],), {}, "max_pool1d takes x of shape (N, C, W)"),
]


@pytest.mark.parametrize(("op", "shapes", "attrs", "message"), BAD_DATA_ATTRS, ids=str)
def test_a_bad_attr_of_the_third_wave_is_one_line_naming_the_node(op, shapes, attrs, message):
    with pytest.raises(FormatError) as caught:
        validate_graph(one_node_graph(op, *shapes, **attrs))
    assert message in str(caught.value) and str(caught.value).startswith("graph.nodes[0]")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("count", [1, 5])
def test_a_join_takes_2_to_4_operands(count):
    with pytest.raises(FormatError, match=f"takes 2 to 4 input\\(s\\), got {count}"):
        validate_graph(one_node_graph("concatenate", *[[2]] * count))


def test_a_huge_mask_is_refused_before_any_array_is_made_of_it():
    deep_and_wide = [[True] * 1000] * 1000  # a million leaves: refused at the 10,001st
    with pytest.raises(FormatError, match="more than 10,000 elements"):
        validate_graph(one_node_graph("where", [2], [2], mask=deep_and_wide))


# --- cases ----------------------------------------------------------------------------------------


def test_a_case_that_is_not_an_object_is_rejected():
    assert case_error([]) == "case: expected an object with graph and values, got list"


def test_a_case_without_a_graph_is_rejected():
    assert case_error({"values": {}}) == "case.graph: missing"


def test_a_graph_error_in_a_case_is_located_under_case_graph():
    case = small_case()
    case["graph"]["nodes"][0]["inputs"] = ["x", "b"]
    assert case_error(case) == "case.graph.nodes[0].inputs[1]: 'b' is not defined before node 'm'"


def test_values_that_are_not_an_object_are_rejected():
    assert case_error(small_case(values=[[1.0, 2.0, 3.0]])) == (
        "case.values: expected an object mapping input names to values"
    )


def test_a_missing_value_names_the_input():
    case = small_case()
    del case["values"]["a"]
    assert case_error(case) == "case.values: missing value for input 'a'"


def test_a_value_for_a_name_that_is_not_an_input_lists_the_inputs():
    case = small_case()
    case["values"]["m"] = 1.0
    assert case_error(case) == "case.values: 'm' is not an input of the graph (inputs: x, a)"


def test_a_value_of_the_wrong_shape_gives_both_shapes():
    case = small_case()
    case["values"]["x"] = [1.0, 2.0, 3.0]
    assert case_error(case) == "case.values.x: shape [3] does not match the expected shape [2, 3]"


def test_a_list_of_one_is_not_a_scalar():
    case = small_case()
    case["values"]["a"] = [0.75]
    assert case_error(case) == "case.values.a: shape [1] does not match the expected shape []"


def test_a_ragged_nested_list_is_not_an_array():
    case = small_case()
    case["values"]["x"] = [[1.0, 2.0, 3.0], [4.0, 5.0]]
    assert case_error(case) == "case.values.x: not a number or a rectangular nested list of numbers"


@pytest.mark.parametrize("value", [[["a", "b", "c"], [1.0, 2.0, 3.0]], {"re": 1.0}, [[1j, 1.0, 1.0], [1.0, 1.0, 1.0]]])
def test_a_non_numeric_value_is_not_a_number(value):
    case = small_case()
    case["values"]["x"] = value
    assert case_error(case) == "case.values.x: not a number or a rectangular nested list of numbers"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_literals_in_json_are_rejected(tmp_path, literal):
    path = tmp_path / "case.json"
    text = json.dumps(small_case()).replace("0.75", literal)
    path.write_text(text)
    assert case_error(read_json(path)) == "case.values.a: contains NaN or Inf"


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_floats_in_a_value_are_rejected(number):
    case = small_case()
    case["values"]["x"][1][2] = number
    assert case_error(case) == "case.values.x: contains NaN or Inf"


def test_a_cotangent_of_the_wrong_shape_gives_both_shapes():
    assert case_error(small_case(cotangent=[1.0, 1.0])) == (
        "case.cotangent: shape [2] does not match the expected shape []"
    )


def test_a_nan_cotangent_is_rejected():
    assert case_error(small_case(cotangent=math.nan)) == "case.cotangent: contains NaN or Inf"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_missing_cotangent_is_ones_of_the_output_shape_and_dtype(dtype):
    case = small_case()
    case["graph"]["nodes"][1]["attrs"] = {"axis": 0}
    case["graph"]["dtype"] = dtype
    cotangent = validate_case(case).cotangent
    assert cotangent.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(cotangent, np.ones(3))


def test_a_null_cotangent_is_ones_too():
    np.testing.assert_array_equal(validate_case(small_case(cotangent=None)).cotangent, np.ones(()))


def test_values_are_arrays_of_the_graph_dtype():
    case = small_case()
    case["graph"]["dtype"] = "float32"
    values = validate_case(case).values
    assert {name: (value.dtype, value.shape) for name, value in values.items()} == {
        "x": (np.dtype("float32"), (2, 3)),
        "a": (np.dtype("float32"), ()),
    }


def test_integers_are_numbers():
    case = small_case()
    case["values"]["x"] = [[1, 2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(validate_case(case).values["x"], np.arange(1.0, 7.0).reshape(2, 3))


def test_the_seed_is_kept():
    assert validate_case(small_case(seed=[7, 42])).seed == [7, 42]


# --- files ------------------------------------------------------------------------------------------


def test_truncated_json_gives_the_file_line_and_column(tmp_path):
    path = tmp_path / "case.json"
    path.write_text('{\n  "graph": {\n    "format": "autodiff-graph",\n    "inputs": [{"name": "x", "sha')
    with pytest.raises(FormatError) as info:
        read_json(path)
    assert str(info.value) == f"{path}: invalid JSON at line 4 column 30: Unterminated string starting at"


def test_an_empty_file_is_invalid_json(tmp_path):
    path = tmp_path / "case.json"
    path.write_text("")
    with pytest.raises(FormatError) as info:
        load_case(path)
    assert str(info.value) == f"{path}: invalid JSON at line 1 column 1: Expecting value"


def test_a_missing_file_is_one_line_naming_the_path(tmp_path):
    path = tmp_path / "no-such-case.json"
    with pytest.raises(FormatError) as info:
        load_case(path)
    assert str(info.value) == f"{path}: cannot read case: No such file or directory"


def test_an_error_in_a_loaded_case_is_located_under_the_file_name(tmp_path):
    path = tmp_path / "case.json"
    case = small_case()
    case["values"]["x"] = [1.0]
    path.write_text(json.dumps(case))
    with pytest.raises(FormatError) as info:
        load_case(path)
    assert str(info.value) == f"{path}.values.x: shape [1] does not match the expected shape [2, 3]"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_saved_case_loads_bit_identical(tmp_path, dtype):
    tiny = 1e-300 if dtype == "float64" else 1e-40  # subnormal in float32
    rng = np.random.default_rng(1)
    case = small_case(cotangent=1 / 7, seed=[7, 42])
    case["graph"]["dtype"] = dtype
    case["graph"]["inputs"][0]["shape"] = [2, 4]
    case["values"]["x"] = [
        [0.1, 1 / 3, tiny, -0.0],
        (rng.standard_normal(4) * 10.0 ** rng.integers(-30, 30, 4)).tolist(),
    ]
    case["values"]["a"] = 2 / 3
    original = validate_case(case)
    path = tmp_path / "case.json"
    save_case(original, path)
    loaded = load_case(path)
    assert loaded.graph == original.graph
    assert loaded.seed == [7, 42]
    for name in ("x", "a"):
        assert loaded.values[name].dtype == np.dtype(dtype)
        assert loaded.values[name].tobytes() == original.values[name].tobytes()
    assert loaded.cotangent.tobytes() == original.cotangent.tobytes()


def test_a_saved_case_is_plain_json_at_full_precision(tmp_path):
    original = validate_case(small_case(seed=[1, 2]))
    path = tmp_path / "case.json"
    save_case(original, path)
    saved = json.loads(path.read_text())
    assert saved == case_to_json(original)
    assert saved["values"]["x"][0][0] == 0.1
    assert saved["graph"]["nodes"][1]["attrs"] == {"axis": None, "keepdims": False}


# --- reference values -------------------------------------------------------------------------------


def test_reference_values_are_numpy_by_hand():
    graph = validate_graph(
        make_graph(
            {"x": [2, 3], "w": [3], "b": [], "c": [2]},
            [
                node("xw", "dot", "x", "w"),
                node("z", "add", "xw", "b"),
                node("h", "sigmoid", "z"),
                node("g", "subtract", "h", "c"),
                node("gg", "mult", "g", "g"),
                node("cube", "power", "gg", exponent=3),
                node("total", "reduce_sum", "cube"),
            ],
        )
    )
    x = np.array([[0.1, -0.5, 1.25], [2.0, 0.0, -1.0]])
    w = np.array([0.3, -0.2, 0.7])
    b, c = np.array(0.25), np.array([0.5, -1.5])
    computed = reference_values(graph, {"x": x, "w": w, "b": b, "c": c})

    h = 1 / (1 + np.exp(-(x @ w + b)))
    expected = {"xw": x @ w, "z": x @ w + b, "h": h, "g": h - c, "gg": (h - c) ** 2, "cube": (h - c) ** 6}
    expected["total"] = np.sum((h - c) ** 6)
    assert set(computed) == {"x", "w", "b", "c", *expected}
    for name, value in expected.items():
        assert computed[name].shape == value.shape, name
        np.testing.assert_allclose(computed[name], value, rtol=1e-14, atol=0, err_msg=name)


def test_reference_values_keep_float32():
    graph = validate_graph(example_graph() | {"dtype": "float32"})
    values = {entry["name"]: np.full(entry["shape"], 0.5, dtype=np.float32) for entry in graph["inputs"]}
    assert {value.dtype for value in reference_values(graph, values).values()} == {np.dtype("float32")}


# --- holes found by this file in oracles/graph.py ----------------------------------------------------
# Each test below states the format's rule ("every problem is one FormatError line"); they fail
# until oracles/graph.py gets the fix described in the report that added this file.


@pytest.mark.parametrize("value", [[["1.5", "2", "3"], [1, 2, 3]], [[True, False, True], [1, 2, 3]]], ids=repr)
def test_a_string_or_boolean_is_not_a_number(value):
    case = small_case()
    case["values"]["x"] = value
    assert case_error(case) == "case.values.x: not a number or a rectangular nested list of numbers"


def test_null_in_a_value_is_not_a_number():
    case = small_case()
    case["values"]["x"] = [[1.0, None, 3.0], [4.0, 5.0, 6.0]]
    assert case_error(case) == "case.values.x: not a number or a rectangular nested list of numbers"


def test_an_integer_beyond_float64_is_a_format_error():
    case = small_case()
    case["values"]["a"] = 10**400
    assert case_error(case) == "case.values.a: a value is beyond the range of float64"


def test_a_finite_value_beyond_float32_is_not_called_nan():
    case = small_case()
    case["graph"]["dtype"] = "float32"
    case["values"]["a"] = 1e300
    assert case_error(case) == "case.values.a: a value is beyond the range of float32"


def test_a_seed_that_is_not_a_list_is_rejected():
    assert case_error(small_case(seed=7)) == "case.seed: expected [root seed, graph index], two integers >= 0, got 7"


def test_an_op_that_is_not_a_string_is_an_unknown_op():
    graph = make_graph({"x": [3]}, [{"name": "n", "op": ["sigmoid"], "inputs": ["x"]}])
    assert graph_error(graph) == f"graph.nodes[0].op: unknown op ['sigmoid'] (known: {KNOWN_OPS})"


def test_an_output_that_is_not_a_string_is_not_defined():
    assert graph_error(make_graph({"x": [3]}, [node("s", "sigmoid", "x")], output=["s"])) == (
        "graph.output: ['s'] is not defined"
    )


def test_a_boolean_version_is_not_version_1():
    assert graph_error(make_graph({"x": []}, [], version=True)) == (
        "graph.version: True is not supported (this tool reads version 1)"
    )


def test_attrs_that_are_an_empty_list_are_not_an_object():
    graph = one_node_graph("power", [3])
    graph["nodes"][0]["attrs"] = []
    assert graph_error(graph) == "graph.nodes[0].attrs: expected an object, got []"


def test_a_file_that_is_not_utf8_text_is_a_format_error(tmp_path):
    path = tmp_path / "case.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(FormatError) as info:
        load_case(path)
    assert str(info.value) == f"{path}: cannot read case: not UTF-8 text (invalid start byte at byte 0)"
