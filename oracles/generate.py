"""Random graphs and cases: deterministic per (root seed, index), rich in the features autodiff
bugs hide in (fan-out, diamonds, one value used twice by one op, broadcasting, every dot and
reduce_sum variant), with values conditioned so float64 and float32 backends can be compared.

Generation is written once, against a small `ChoiceSource`: `generate_case` feeds it from a
numpy Generator, the Hypothesis strategy `cases` from Hypothesis draws, so a failing property
test shrinks the same kind of graph the audit produces.

A graph is built top-down: first the output's shape, then an op that can produce that shape,
then its operands' shapes, recursively, until the node budget is spent. Leaves are new inputs
or values made earlier with the same shape (fan-out; a diamond when the earlier value lies on a
sibling branch). Operands are created before their consumer, so the node list comes out in
topological order and every node is an ancestor of the output, which is the last node.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .graph import DTYPES, FORMAT, VERSION, Case, infer_shapes, reference_values
from .ops import OPS

VALUE_BOUND = 1e3  # every input and intermediate value, in float64
# Beyond 15 sigmoid's gradient is below 3e-7: nothing left to compare. In float32 the
# gradient s (1 - s) loses its digits sooner, as 1 - s nears float32's eps (1.2e-7): at
# |a| = 6, 1 - s = 2.5e-3 still carries 4 significant digits.
SIGMOID_OPERAND_BOUND = {"float64": 15.0, "float32": 6.0}
SMALLEST_NONZERO = 1e-30  # keeps float32 backends out of the subnormal range, where flush-to-zero differs
RESCALES = (1.0, 0.5, 0.25, 0.125, 0.0625)  # input scales tried before a graph is given up
GRAPH_ATTEMPTS = 40  # graphs drawn (from the same stream) before a config is declared unsatisfiable
MAX_NODES_LIMIT = 500  # the builder recurses once per node of a chain

# How often the generator reaches for each bug-prone feature.
P_REUSE = 0.5  # a leaf reuses an earlier value of its shape: fan-out, diamonds
P_SAME_OPERAND = 0.15  # a binary op whose operands share a shape takes one value twice: mult(x, x)
P_SQUARE = 0.4  # dot's inner size equals an outer size: square matrices hide transposition bugs
P_SIZE_ONE = 0.15  # an axis of size 1: broadcasting and keepdims
P_NEGATIVE_AXIS = 0.25
P_UNUSED_INPUT = 0.05  # an input that reaches nothing: its gradient must be zeros

FEATURES = (  # what `case_features` can report
    *("fan_out", "diamond", "same_operand_twice", "broadcast_size_one", "broadcast_rank"),
    *("dot_1d_1d", "dot_2d_1d", "dot_1d_2d", "dot_2d_2d_square", "dot_2d_2d_non_square"),
    *("reduce_sum_all", "reduce_sum_axis_0", "reduce_sum_axis_1", "keepdims"),
    *("exponent_2", "exponent_3", "unused_input"),
)


class ChoiceSource(ABC):
    """Where every random decision of the generator comes from."""

    @abstractmethod
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], both included."""

    @abstractmethod
    def boolean(self, p: float) -> bool:
        """True with probability about p."""

    @abstractmethod
    def normal(self, shape: tuple) -> np.ndarray:
        """A float64 array of `shape`, roughly standard normal."""

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]


class NumpyChoices(ChoiceSource):
    def __init__(self, rng: np.random.Generator):
        # rng.random() is several times cheaper than rng.integers() per call, and a graph makes dozens.
        self._random = rng.random
        self._standard_normal = rng.standard_normal

    def integer(self, lo: int, hi: int) -> int:
        return lo + int(self._random() * (hi - lo + 1))

    def boolean(self, p: float) -> bool:
        return self._random() < p

    def normal(self, shape: tuple) -> np.ndarray:
        return np.asarray(self._standard_normal(shape))


class HypothesisChoices(ChoiceSource):
    """Choices drawn through Hypothesis, which records them and can shrink them."""

    def __init__(self, draw):
        from hypothesis import strategies as st  # a test-time dependency; the audit needs only numpy
        from hypothesis.extra import numpy as hnp

        self._draw, self._st, self._hnp = draw, st, hnp

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(self._st.integers(lo, hi))

    def boolean(self, p: float) -> bool:
        # A percentile rather than st.booleans() keeps rare features rare; it shrinks to 0, i.e. False.
        return self._draw(self._st.integers(0, 99)) >= 100 - round(100 * p)

    def normal(self, shape: tuple) -> np.ndarray:
        # Multiples of 1/64 in [-3, 3]: exact in float32 too, and they shrink toward 0.
        steps = self._draw(self._hnp.arrays(np.int16, shape, elements=self._st.integers(-192, 192)))
        return np.asarray(steps, dtype=np.float64) / 64


@dataclass(frozen=True)
class GeneratorConfig:
    """What random graphs may contain.

    `output_rank` (None = any) fixes the rank of the output; the output shape is drawn with that
    rank and the graph is built to produce it. When the ops cannot produce such a graph within
    the node range (say `ops=("dot",)` with `max_rank=1` and `min_nodes=2`), `generate_case`
    raises ValueError after GRAPH_ATTEMPTS tries instead of returning something else.
    """

    min_nodes: int = 1
    max_nodes: int = 12
    ops: tuple[str, ...] = tuple(OPS)
    max_rank: int = 2
    # Sizes 1..3 give size-1 broadcasting and square and non-square dots; a larger palette
    # mostly multiplies the shape combinations JAX must compile (see jax_backend.py).
    max_dim: int = 3
    dtype: str = "float64"
    output_rank: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        unknown = [name for name in self.ops if name not in OPS]
        if unknown:
            raise ValueError(f"ops: unknown op(s) {', '.join(map(repr, unknown))} (known: {', '.join(OPS)})")
        unplanned = [name for name in self.ops if name not in _PLANNERS]
        if unplanned:
            raise ValueError(f"ops: no generator rule for {', '.join(map(repr, unplanned))} in oracles/generate.py")
        if not self.ops:
            raise ValueError("ops: at least one op is needed")
        if not 1 <= self.min_nodes <= self.max_nodes <= MAX_NODES_LIMIT:
            raise ValueError(
                f"need 1 <= min_nodes <= max_nodes <= {MAX_NODES_LIMIT}, got {self.min_nodes}, {self.max_nodes}"
            )
        if self.max_rank < 0 or self.max_dim < 1:
            raise ValueError(f"need max_rank >= 0 and max_dim >= 1, got {self.max_rank}, {self.max_dim}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.output_rank is not None and not 0 <= self.output_rank <= self.max_rank:
            raise ValueError(f"output_rank {self.output_rank} is outside 0..max_rank ({self.max_rank})")


def _can_produce(op: str, shape: tuple, max_rank: int) -> bool:
    """Whether `op` can yield `shape` from operands of rank <= max_rank."""
    if op == "dot":
        return (len(shape) == 0 and max_rank >= 1) or (len(shape) in (1, 2) and max_rank >= 2)
    if op == "reduce_sum":
        return len(shape) == 0 or len(shape) < max_rank or 1 in shape
    return True  # elementwise: operands of the result's shape always do


class _GraphBuilder:
    def __init__(self, source: ChoiceSource, config: GeneratorConfig):
        self.source, self.config = source, config
        self.inputs: list[dict] = []
        self.nodes: list[dict] = []
        self.by_shape: dict[tuple, list[str]] = {}  # every value made so far, for reuse

    def dim(self) -> int:
        if self.config.max_dim == 1 or self.source.boolean(P_SIZE_ONE):
            return 1
        return self.source.integer(2, self.config.max_dim)

    def shape(self, rank: int) -> tuple:
        return tuple(self.dim() for _ in range(rank))

    def producible(self, shape: tuple) -> bool:
        return any(_can_produce(op, shape, self.config.max_rank) for op in self.config.ops)

    def add_input(self, shape: tuple) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append({"name": name, "shape": list(shape)})
        self.by_shape.setdefault(shape, []).append(name)
        return name

    def leaf(self, shape: tuple) -> str:
        earlier = self.by_shape.get(shape)
        if earlier and self.source.boolean(P_REUSE):
            return self.source.choice(earlier)
        return self.add_input(shape)

    def build(self, shape: tuple, budget: int) -> str:
        """A value of `shape` made of `budget` new nodes, or fewer when the ops cannot use them all."""
        max_rank = self.config.max_rank
        producers = [op for op in self.config.ops if _can_produce(op, shape, max_rank)]
        if budget == 0 or not producers:
            return self.leaf(shape)
        rest = budget - 1
        for _ in range(4):  # prefer a plan with an operand that can take the rest of the budget
            op = self.source.choice(producers)
            operand_shapes, attrs = _PLANNERS[op](self, shape)
            growable = [i for i, operand_shape in enumerate(operand_shapes) if self.producible(operand_shape)]
            if rest == 0 or growable:
                break
        if len(operand_shapes) == 2 and operand_shapes[0] == operand_shapes[1] and self.source.boolean(P_SAME_OPERAND):
            operand = self.build(operand_shapes[0], rest if growable else 0)
            operands = [operand, operand]
        else:
            budgets = [0] * len(operand_shapes)
            if len(growable) == 2:
                budgets[0] = self.source.integer(0, rest)
                budgets[1] = rest - budgets[0]
            elif growable:
                budgets[growable[0]] = rest
            operands = [self.build(s, b) for s, b in zip(operand_shapes, budgets)]
        name = f"{op}{len(self.nodes)}"
        self.nodes.append({"name": name, "op": op, "inputs": operands, "attrs": OPS[op].with_defaults(attrs)})
        self.by_shape.setdefault(shape, []).append(name)
        return name


# Planners: (builder, result shape) -> (operand shapes, attrs), for an op that can produce the shape.


def _plan_unary(builder: _GraphBuilder, shape: tuple):
    return [shape], {}


def _plan_power(builder: _GraphBuilder, shape: tuple):
    return [shape], {"exponent": builder.source.choice((2, 3))}


def _plan_broadcast(builder: _GraphBuilder, shape: tuple):
    source = builder.source
    mode = source.integer(0, 2)  # 0: equal shapes, 1: one operand broadcast, 2: both (like [3,1] with [1,4])
    if not shape or mode == 0:
        return [shape, shape], {}
    full, reduced = list(shape), list(shape)
    for axis in range(len(shape)):
        owner = source.integer(0, mode)  # which operand keeps the full size: 0 both, 1 `full`, 2 `reduced`
        if owner == 1:
            reduced[axis] = 1
        elif owner == 2:
            full[axis] = 1
    # A missing leading axis broadcasts like a size-1 axis: drop some of them for a rank difference.
    leading_ones = next((axis for axis, size in enumerate(reduced) if size != 1), len(reduced))
    reduced = reduced[source.integer(0, leading_ones) :]
    pair = [tuple(full), tuple(reduced)]
    return (pair if source.boolean(0.5) else pair[::-1]), {}


def _plan_dot(builder: _GraphBuilder, shape: tuple):
    source = builder.source
    if not shape:
        inner = builder.dim()
        return [(inner,), (inner,)], {}
    inner = shape[0] if source.boolean(P_SQUARE) else builder.dim()
    if len(shape) == 2:
        return [(shape[0], inner), (inner, shape[1])], {}
    if source.boolean(0.5):
        return [(shape[0], inner), (inner,)], {}
    return [(inner,), (inner, shape[0])], {}


def _plan_reduce_sum(builder: _GraphBuilder, shape: tuple):
    source, rank = builder.source, len(shape)
    kinds = []
    if rank == 0:
        kinds.append("all")
    if all(size == 1 for size in shape):
        kinds.append("all_keepdims")
    if rank < builder.config.max_rank:
        kinds.append("axis")
    if 1 in shape:
        kinds.append("axis_keepdims")
    kind = source.choice(kinds)
    if kind == "all":
        return [builder.shape(source.integer(0, builder.config.max_rank))], {"axis": None, "keepdims": False}
    if kind == "all_keepdims":
        return [builder.shape(rank)], {"axis": None, "keepdims": True}
    if kind == "axis":
        axis = source.integer(0, rank)
        operand = (*shape[:axis], builder.dim(), *shape[axis:])
    else:
        axis = source.choice([axis for axis, size in enumerate(shape) if size == 1])
        operand = (*shape[:axis], builder.dim(), *shape[axis + 1 :])
    if source.boolean(P_NEGATIVE_AXIS):
        axis -= len(operand)
    return [operand], {"axis": axis, "keepdims": kind == "axis_keepdims"}


_PLANNERS = {
    "add": _plan_broadcast,
    "subtract": _plan_broadcast,
    "mult": _plan_broadcast,
    "power": _plan_power,
    "reduce_sum": _plan_reduce_sum,
    "dot": _plan_dot,
    "sigmoid": _plan_unary,
}

DEFAULT_CONFIG = GeneratorConfig()


def _well_conditioned(graph: dict, values: dict[str, np.ndarray]) -> bool:
    sigmoid_bound = SIGMOID_OPERAND_BOUND[graph["dtype"]]
    with np.errstate(all="ignore"):  # an overflow here only means: not conditioned
        computed = reference_values(graph, {name: value.astype(np.float64) for name, value in values.items()})
    magnitudes = np.abs(np.concatenate([np.ravel(value) for value in computed.values()]))
    if not np.all(magnitudes <= VALUE_BOUND):  # NaN compares False, so it fails here too
        return False
    nonzero = magnitudes[magnitudes > 0]
    if nonzero.size and nonzero.min() < SMALLEST_NONZERO:
        return False
    return all(
        np.all(np.abs(computed[node["inputs"][0]]) <= sigmoid_bound)
        for node in graph["nodes"]
        if node["op"] == "sigmoid"
    )


def _attempt(source: ChoiceSource, config: GeneratorConfig) -> Case | None:
    """One graph with conditioned values, or None if this draw cannot be used."""
    builder = _GraphBuilder(source, config)
    rank = config.output_rank if config.output_rank is not None else source.integer(0, config.max_rank)
    output_shape = builder.shape(rank)
    output = builder.build(output_shape, source.integer(config.min_nodes, config.max_nodes))
    if len(builder.nodes) < config.min_nodes:
        return None
    if source.boolean(P_UNUSED_INPUT):
        builder.add_input(builder.shape(source.integer(0, config.max_rank)))
    graph = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": config.dtype,
        "inputs": builder.inputs,
        "nodes": builder.nodes,
        "output": output,
    }
    dtype = np.dtype(config.dtype)
    drawn = {entry["name"]: source.normal(tuple(entry["shape"])) for entry in builder.inputs}
    # Every op of the table takes any real operand (power only with exponents 2 and 3 here), so one
    # normal draw per input fits all domains; scaling it down tames growth through power and dot.
    for scale in RESCALES:
        values = {name: np.asarray(value * scale, dtype=dtype) for name, value in drawn.items()}
        if _well_conditioned(graph, values):
            cotangent = np.asarray(source.normal(output_shape), dtype=dtype)
            return Case(graph=graph, values=values, cotangent=cotangent)
    return None


def generate_case(root_seed: int, index: int, config: GeneratorConfig = DEFAULT_CONFIG) -> Case:
    """The case number `index` of the stream `root_seed`: the same pair always gives the same case."""
    source = NumpyChoices(np.random.default_rng([root_seed, index]))
    for _ in range(GRAPH_ATTEMPTS):
        case = _attempt(source, config)
        if case is not None:
            case.seed = [int(root_seed), int(index)]
            return case
    raise ValueError(
        f"{config} gave no usable graph in {GRAPH_ATTEMPTS} attempts: its ops cannot build "
        f"{config.min_nodes}..{config.max_nodes} nodes with these ranks, or the values cannot be conditioned"
    )


def cases(config: GeneratorConfig = DEFAULT_CONFIG):
    """A Hypothesis strategy of cases, made by the same builder as `generate_case`, so they shrink."""
    from hypothesis import assume
    from hypothesis import strategies as st

    @st.composite
    def draw_case(draw) -> Case:
        source = HypothesisChoices(draw)
        case = None
        for _ in range(3):  # a few fresh graphs before rejecting the example
            case = _attempt(source, config)
            if case is not None:
                break
        assume(case is not None)
        assert case is not None  # assume() has rejected the example otherwise
        return case

    return draw_case()


def case_features(case: Case) -> set[str]:
    """Which of FEATURES the case contains (reduce_sum axes are normalized, so -1 of a matrix is 1)."""
    graph = case.graph
    shapes = infer_shapes(graph)
    consumers: dict[str, set[str]] = {name: set() for name in shapes}
    found: set[str] = set()
    for node in graph["nodes"]:
        op, operands, result = OPS[node["op"]], node["inputs"], shapes[node["name"]]
        attrs = op.with_defaults(node.get("attrs"))
        operand_shapes = [shapes[operand] for operand in operands]
        for operand in operands:
            consumers[operand].add(node["name"])
        if len(operands) == 2 and operands[0] == operands[1]:
            found.add("same_operand_twice")
        if op.broadcasts:
            for operand_shape in operand_shapes:
                if len(operand_shape) < len(result):
                    found.add("broadcast_rank")
                if any(size == 1 < full for size, full in zip(operand_shape[::-1], result[::-1])):
                    found.add("broadcast_size_one")
        if op.name == "dot":
            found |= _dot_features(*operand_shapes)
        elif op.name == "reduce_sum":
            axis = attrs["axis"]
            found.add("reduce_sum_all" if axis is None else f"reduce_sum_axis_{axis % len(operand_shapes[0])}")
            if attrs["keepdims"]:
                found.add("keepdims")
        elif op.name == "power" and attrs["exponent"] in (2, 3):
            found.add(f"exponent_{attrs['exponent']}")
    if any(len(users) > 1 for users in consumers.values()):
        found.add("fan_out")
    # reaches[v]: v and every value computed from it. Nodes are topological, so walk them backwards.
    reaches: dict[str, set[str]] = {}
    for name in [node["name"] for node in reversed(graph["nodes"])] + [entry["name"] for entry in graph["inputs"]]:
        reaches[name] = {name}.union(*(reaches[user] for user in consumers[name]))
    for node in graph["nodes"]:
        users = sorted(consumers[node["name"]])
        if any(reaches[a] & reaches[b] for i, a in enumerate(users) for b in users[i + 1 :]):
            found.add("diamond")  # an intermediate node whose gradient arrives along two paths
    if any(graph["output"] not in reaches[entry["name"]] for entry in graph["inputs"]):
        found.add("unused_input")
    return found


def _dot_features(a: tuple, b: tuple) -> set[str]:
    if len(a) == 2 and len(b) == 2:
        if a[0] == a[1] == b[1] >= 2:  # a 1x1 matrix cannot show a transposition
            return {"dot_2d_2d_square"}
        return {"dot_2d_2d_non_square"} if a[0] != a[1] or b[0] != b[1] else set()
    return {f"dot_{len(a)}d_{len(b)}d"}
