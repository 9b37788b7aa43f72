"""Random graphs and cases: deterministic per (root seed, index), rich in the features autodiff
bugs hide in (fan-out, diamonds, one value used twice by one op, broadcasting, and whatever
each op's planner makes), with every value inside the domain its consumer needs.

Generation is written once, against a `ChoiceSource`: `generate_case` feeds it from a numpy
Generator, the Hypothesis strategy `cases` from Hypothesis draws.

A graph is built top-down: first the output's shape, then an op that can produce that shape
(its entry's planner says which, and plans the operands' shapes and attrs), then its
operands, recursively, until the node budget is spent. Leaves are new inputs or values made
earlier with the same shape (fan-out; a diamond when the earlier value lies on a sibling
branch). Operands are created before their consumer, so the node list comes out in
topological order, every node is an ancestor of the output, and the output is the last node.

Values are computed as the graph grows (operands first, in float64, from inputs rounded to
the case's dtype), so every domain holds by construction:
- a fresh input is drawn for the slot it feeds: moved into the slot's `Domain` by a fixed
  rule, kept apart from the other operand of an op that must not tie, and given a single
  clear maximum along the axis of an op that must not tie there;
- an earlier value is reused only where it satisfies the slot;
- a new node whose value leaves the slot's needs (its domain, no ties, finite and within
  VALUE_BOUND) is taken back, with everything built for it, and the slot gets a fresh input
  instead. That is the only redraw, it happens at most once per slot, and `Case.redraws`
  counts it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..format import DTYPES, FORMAT, VERSION, Case
from ..ops import OPS, Op
from ..ops.entry import FAR_FROM, NAIVE_EXP_OVERFLOW
from .choices import ChoiceSource, HypothesisChoices, NumpyChoices
from .kink_operands import KinkOperands
from .values import (
    ANY,
    Need,
    apart,
    away_from_singular,
    has_distinct_max,
    has_distinct_window_max,
    make_away_from_singular,
    make_centered,
    make_distinct_along_last,
    make_distinct_max,
    move_apart,
    plant_zeros,
    slot_need,
    well_centered,
)

VALUE_BOUND = 1e3  # every input and intermediate value, in float64
# Tiny magnitudes are kept: sigmoid(-100) = 4e-44 is subnormal in float32, and a backend that
# flushes it to zero is off by 4e-44, which no tolerance of compare.py's error model notices.
# Nothing amplifies it either: every op that divides by an operand, or takes its log, keeps
# that operand at least a margin from 0 (its domain).
GRAPH_ATTEMPTS = 40  # graphs drawn (from the same stream) before a config is declared unsatisfiable
MAX_NODES_LIMIT = 500  # the builder recurses once per node of a chain

# How often the generator reaches for each bug-prone feature.
P_REUSE = 0.5  # a leaf reuses an earlier value of its shape: fan-out, diamonds
P_SAME_OPERAND = 0.15  # a binary op whose operands share a shape takes one value twice: mult(x, x)
# ... more often for an op whose operands must not tie (maximum, minimum): maximum(x, x) is x,
# and a rule that splits a tie and forgets that both halves are x's gives 0 (mygrad's bug)
P_SAME_OPERAND_OF_A_TIE = 0.5
P_SIZE_ONE = 0.15  # an axis of size 1: broadcasting and keepdims
P_UNUSED_INPUT = 0.05  # an input that reaches nothing: its gradient must be zeros
P_FAR = 0.5  # a fresh input for a slot whose domain has `far` (or `tiny`) goes far out (or tiny)
P_FAR_INPUT = 0.5  # such a slot (or one for a product's zeros) takes a fresh input, whatever the budget left
P_PAST_OVERFLOW = 0.7  # a far-out input goes past where a naive exp overflows
P_KINK = 0.6  # in kink mode, a node of an op with a kink gets fresh inputs exactly on it


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
    ops: tuple[str, ...] = field(default_factory=lambda: tuple(OPS))
    max_rank: int = 3
    # Sizes 1..3 give size-1 broadcasting and square and non-square dots; a larger palette
    # mostly multiplies the shape combinations JAX must compile (see jax_backend.py).
    max_dim: int = 3
    dtype: str = "float64"
    output_rank: int | None = None
    # Kink mode: some nodes of ops with kinks (relu, abs at 0; maximum, reduce_max at ties) get
    # operands exactly on the kink. Off, no value comes within a kink's margin.
    kinks: bool = False

    def __post_init__(self):
        object.__setattr__(self, "ops", tuple(self.ops))
        unknown = [name for name in self.ops if name not in OPS]
        if unknown:
            raise ValueError(f"ops: unknown op(s) {', '.join(map(repr, unknown))} (known: {', '.join(OPS)})")
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


DEFAULT_CONFIG = GeneratorConfig()


class _GraphBuilder(KinkOperands):
    """One graph under construction; it is also the `PlanContext` the op planners see."""

    def __init__(self, source: ChoiceSource, config: GeneratorConfig):
        self.source, self.config = source, config
        self.ops: list[Op] = [OPS[name] for name in config.ops]
        self.shares = {op.name: _share(op.name, config.max_rank, config.max_dim) for op in self.ops}
        self.max_rank, self.max_dim = config.max_rank, config.max_dim
        self.inputs: list[dict] = []
        self.nodes: list[dict] = []
        self.values: dict[str, np.ndarray] = {}  # every value so far, float64 (inputs rounded to the dtype)
        self.by_shape: dict[tuple, list[str]] = {}  # every value made so far, for reuse
        self.redraws = 0

    # -- the PlanContext of the planners ----------------------------------------------------------

    def integer(self, lo: int, hi: int) -> int:
        return self.source.integer(lo, hi)

    def boolean(self, p: float) -> bool:
        return self.source.boolean(p)

    def choice(self, options):
        return self.source.choice(options)

    def dim(self) -> int:
        if self.config.max_dim == 1 or self.source.boolean(P_SIZE_ONE):
            return 1
        return self.source.integer(2, self.config.max_dim)

    def shape(self, rank: int) -> tuple:
        return tuple(self.dim() for _ in range(rank))

    # -- values -------------------------------------------------------------------------------

    def fits(self, value: np.ndarray, need: Need) -> bool:
        """Whether a value may fill a slot: finite, bounded, and the slot's needs."""
        if not np.all(np.abs(value) <= VALUE_BOUND):  # NaN compares False, so it fails here too
            return False
        if not need.domain.holds(value, self.config.dtype):
            return False
        if need.apart_from is not None and not apart(value, need.apart_from, need.domain.margin):
            return False
        if need.window is not None and not has_distinct_window_max(value, need.window, need.domain.margin):
            return False
        if need.singular is not None and not away_from_singular(value, need.singular, need.axis, need.domain.margin):
            return False
        if need.centered and not well_centered(value, need.axis, self.config.dtype):
            return False
        return not need.distinct_max or has_distinct_max(value, need.axis, need.domain.margin, need.lowest)

    def draw(self, shape: tuple, need: Need, extreme: bool = False) -> np.ndarray:
        """A fresh input's value for the slot: drawn, then moved into what the slot needs
        (far out or tiny, when the slot's domain asks for it, `extreme` or part of the time)."""
        margin, domain = need.domain.margin, need.domain
        value = domain.fit(self.source.normal(shape), self.config.dtype)
        if (domain.far is not None or domain.tiny) and (extreme or self.source.boolean(P_FAR)):
            value = self.far_out(value, domain.far[self.config.dtype]) if domain.far else value * 1e-9
        if need.apart_from is not None:
            value = move_apart(value, need.apart_from, margin)
        if need.distinct_max:
            value = make_distinct_max(value, need.axis, margin, need.lowest)
        if need.zeros:
            value = plant_zeros(value, need.axis, self.source)
        if need.window is not None:
            value = make_distinct_along_last(value, margin)
        if need.singular is not None:
            value = make_away_from_singular(value, need.singular, need.axis, margin)
        if need.centered:
            value = make_centered(value, need.axis, self.config.dtype)
        # The case holds the value in its dtype; conditioning sees what the backends will see.
        return np.asarray(value, dtype=self.config.dtype).astype(np.float64)

    def far_out(self, value: np.ndarray, far: float) -> np.ndarray:
        """`value` moved far out on one side, as one block: by a whole number between FAR_FROM
        and the naive overflow, or between it and `far` (P_PAST_OVERFLOW), each a few units
        inside, so the value's own spread does not cross them."""
        overflow = NAIVE_EXP_OVERFLOW[self.config.dtype]
        if self.source.boolean(P_PAST_OVERFLOW):
            distance = self.source.integer(int(overflow) + 5, int(far) - 5)
        else:
            distance = self.source.integer(int(FAR_FROM) + 5, int(overflow) - 5)
        side = 1.0 if self.source.boolean(0.5) else -1.0
        return np.clip(value + side * distance, -far, far)

    # -- structure ----------------------------------------------------------------------------

    def producible(self, shape: tuple) -> bool:
        return any(op.planner.can_produce(shape, self.max_rank, self.max_dim) for op in self.ops)

    def add_input(self, shape: tuple, need: Need = ANY, extreme: bool = False, value: np.ndarray | None = None) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append({"name": name, "shape": list(shape)})
        self.values[name] = self.draw(shape, need, extreme) if value is None else value
        self.by_shape.setdefault(shape, []).append(name)
        return name

    def leaf(self, shape: tuple, need: Need) -> str:
        earlier = [name for name in self.by_shape.get(shape, ()) if self.fits(self.values[name], need)]
        if earlier and self.source.boolean(P_REUSE):
            return self.source.choice(earlier)
        return self.add_input(shape, need)

    def _mark(self) -> tuple[int, int]:
        return len(self.inputs), len(self.nodes)

    def _take_back(self, mark: tuple[int, int]) -> None:
        """Forget every input and node made since `mark`."""
        gone = [entry["name"] for entry in self.inputs[mark[0] :]] + [node["name"] for node in self.nodes[mark[1] :]]
        del self.inputs[mark[0] :], self.nodes[mark[1] :]
        for name in gone:
            del self.values[name]
        for names in self.by_shape.values():
            names[:] = [name for name in names if name in self.values]

    def build(self, shape: tuple, budget: int, need: Need = ANY) -> str:
        """A value of `shape` that fits `need`, made of up to `budget` new nodes."""
        # Each op as many times as its share: conv1d, which makes rank 3 only, would otherwise be in
        # a graph a fourth as often as an elementwise op.
        producers = [
            op
            for op in self.ops
            if op.planner.can_produce(shape, self.max_rank, self.max_dim)
            for _ in range(self.shares[op.name])
        ]
        if budget == 0 or not producers:
            return self.leaf(shape, need)
        # Operands far out, tiny, or with exact zeros come from fresh inputs: computed values rarely are.
        if (need.domain.far is not None or need.domain.tiny or need.zeros) and self.source.boolean(P_FAR_INPUT):
            return self.add_input(shape, need, extreme=True)
        mark = self._mark()
        rest = budget - 1
        for _ in range(4):  # prefer a plan with an operand that can take the rest of the budget
            op = self.source.choice(producers)
            operand_shapes, planned = op.planner.plan(self, shape)
            growable = [i for i, operand_shape in enumerate(operand_shapes) if self.producible(operand_shape)]
            if rest == 0 or growable:
                break
        attrs = op.with_defaults(planned)
        operands = None
        if self.config.kinks and op.kinks and self.source.boolean(P_KINK):
            operands = self.kink_operands(op, attrs, shape, operand_shapes)
        if operands is None:
            operands = self._operands(op, attrs, operand_shapes, rest if growable else 0, growable)
        with np.errstate(all="ignore"):
            value = np.asarray(op.forward(*(self.values[name] for name in operands), attrs), dtype=np.float64)
        if not self.fits(value, need):
            self._take_back(mark)
            self.redraws += 1
            return self.add_input(shape, need)
        name = f"{op.name}{len(self.nodes)}"
        self.nodes.append({"name": name, "op": op.name, "inputs": operands, "attrs": attrs})
        self.values[name] = value
        self.by_shape.setdefault(shape, []).append(name)
        return name

    def _operands(self, op: Op, attrs: dict, shapes: list[tuple], budget: int, growable: list[int]) -> list[str]:
        # The same value twice is no tie (maximum(x, x) is x), so an op that must not tie may take it.
        first = slot_need(op, attrs, 0)
        twice = len(shapes) == 2 and shapes[0] == shapes[1] and first == slot_need(op, attrs, 1)
        if twice and self.boolean(P_SAME_OPERAND_OF_A_TIE if op.no_ties == "operands" else P_SAME_OPERAND):
            operand = self.build(shapes[0], budget, first)
            return [operand, operand]
        budgets = [0] * len(shapes)
        for position, slot in enumerate(growable):  # the budget split at random among the growable operands
            last = position == len(growable) - 1
            budgets[slot] = budget if last else self.source.integer(0, budget)
            budget -= budgets[slot]
        operands: list[str] = []
        for slot, (operand_shape, operand_budget) in enumerate(zip(shapes, budgets)):
            need = slot_need(op, attrs, slot, self.values[operands[0]] if operands else None)
            operands.append(self.build(operand_shape, operand_budget, need))
        return operands


@functools.cache
def _share(name: str, max_rank: int, max_dim: int) -> int:
    """How many times op `name` is among the producers of a shape it can make: the number of ranks
    (0..max_rank) divided by the number it can make, rounded, so an op made for one rank is met
    about as often as the others (output ranks are drawn evenly)."""
    ranks = sum(
        any(OPS[name].planner.can_produce((size,) * rank, max_rank, max_dim) for size in range(1, max_dim + 1))
        for rank in range(max_rank + 1)
    )
    return max(1, round((max_rank + 1) / ranks)) if ranks else 1


def _attempt(source: ChoiceSource, config: GeneratorConfig) -> Case | None:
    """One graph with values inside every domain, or None if it has too few nodes."""
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
    values = {entry["name"]: builder.values[entry["name"]].astype(dtype) for entry in builder.inputs}
    cotangent = np.asarray(source.normal(output_shape), dtype=dtype)
    return Case(graph=graph, values=values, cotangent=cotangent, redraws=builder.redraws)


def generate_case(root_seed: int, index: int, config: GeneratorConfig = DEFAULT_CONFIG) -> Case:
    """The case number `index` of the stream `root_seed`: the same pair always gives the same case."""
    source = NumpyChoices(np.random.default_rng([root_seed, index]))
    for _ in range(GRAPH_ATTEMPTS):
        case = _attempt(source, config)
        if case is not None:
            case.seed = [int(root_seed), int(index)]
            return case
    rank = f"rank {config.output_rank}" if config.output_rank is not None else f"rank at most {config.max_rank}"
    raise ValueError(
        f"no usable graph in {GRAPH_ATTEMPTS} attempts: the ops {', '.join(config.ops)} cannot build "
        f"{config.min_nodes}..{config.max_nodes} op nodes of {rank} with axes of at most {config.max_dim}"
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
