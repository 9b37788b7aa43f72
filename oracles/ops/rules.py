"""Rules that several entries of the op table share: shape rules, attr checks, planners,
features and samples. An entry names the rules it uses; nothing here names an op."""

from __future__ import annotations

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError

# ---- shape rules: (*operand shapes, attrs) -> result shape -------------------------------------


def broadcast_shape(a: tuple, b: tuple, attrs: dict) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def same_shape(a: tuple, attrs: dict) -> tuple:
    return a


def reduced_shape(a: tuple, attrs: dict) -> tuple:
    """The shape after reducing `axis` (None: every axis) with or without `keepdims`."""
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    if axis is None:
        return (1,) * len(a) if keepdims else ()
    if not -len(a) <= axis < len(a):
        raise ShapeError(f"axis {axis} is out of range for shape {list(a)}")
    axis %= len(a)
    return a[:axis] + ((1,) if keepdims else ()) + a[axis + 1 :]


# ---- attr checks: attrs -> a problem, or None ----------------------------------------------------


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_axis_and_keepdims(attrs: dict) -> str | None:
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    if axis is not None and not is_int(axis):
        return f"axis must be null or an integer, got {axis!r}"
    if not isinstance(keepdims, bool):
        return f"keepdims must be true or false, got {keepdims!r}"
    return None


# ---- planners: how the generator makes operands for a result shape -------------------------------

P_NEGATIVE_AXIS = 0.5  # an axis spelled from the end (-1 for the last), as often as from the start


def _anything(shape: tuple, max_rank: int) -> bool:
    return True


def _plan_same(context: PlanContext, shape: tuple):
    return [shape], {}


def _plan_broadcast(context: PlanContext, shape: tuple):
    mode = context.integer(0, 2)  # 0: equal shapes, 1: one operand broadcast, 2: both (like [3,1] with [1,4])
    if not shape or mode == 0:
        return [shape, shape], {}
    full, reduced = list(shape), list(shape)
    for axis in range(len(shape)):
        owner = context.integer(0, mode)  # which operand keeps the full size: 0 both, 1 `full`, 2 `reduced`
        if owner == 1:
            reduced[axis] = 1
        elif owner == 2:
            full[axis] = 1
    # A missing leading axis broadcasts like a size-1 axis: drop some of them for a rank difference.
    leading_ones = next((axis for axis, size in enumerate(reduced) if size != 1), len(reduced))
    reduced = reduced[context.integer(0, leading_ones) :]
    pair = [tuple(full), tuple(reduced)]
    return (pair if context.boolean(0.5) else pair[::-1]), {}


ELEMENTWISE = Planner(_anything, _plan_same)
BROADCASTING = Planner(_anything, _plan_broadcast)


def _reduction_produces(shape: tuple, max_rank: int) -> bool:
    return len(shape) == 0 or len(shape) < max_rank or 1 in shape


def _plan_reduction(context: PlanContext, shape: tuple):
    """An operand and (axis, keepdims) that reduce to `shape`: all axes, or one, with or without keepdims."""
    rank = len(shape)
    kinds = []
    if rank == 0:
        kinds.append("all")
    if all(size == 1 for size in shape):
        kinds.append("all_keepdims")
    if rank < context.max_rank:
        kinds.append("axis")
    if 1 in shape:
        kinds.append("axis_keepdims")
    kind = context.choice(kinds)
    if kind == "all":
        return [context.shape(context.integer(0, context.max_rank))], {"axis": None, "keepdims": False}
    if kind == "all_keepdims":
        return [context.shape(rank)], {"axis": None, "keepdims": True}
    if kind == "axis":
        axis = context.integer(0, rank)
        operand = (*shape[:axis], context.dim(), *shape[axis:])
    else:
        axis = context.choice([axis for axis, size in enumerate(shape) if size == 1])
        operand = (*shape[:axis], context.dim(), *shape[axis + 1 :])
    if context.boolean(P_NEGATIVE_AXIS):
        axis -= len(operand)
    return [operand], {"axis": axis, "keepdims": kind == "axis_keepdims"}


REDUCTION = Planner(_reduction_produces, _plan_reduction)


def reduction_features(prefix: str):
    """`features` of a reduction: which axis (normalized, so -1 of a matrix is 1) and keepdims."""

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        axis, rank = attrs["axis"], len(shapes[0])
        found = {f"{prefix}_all" if axis is None else f"{prefix}_axis_{axis % rank}"}
        if attrs["keepdims"]:
            found.add(f"{prefix}_keepdims")
        return found

    return features


def reduction_feature_names(prefix: str, max_rank: int = 3) -> tuple[str, ...]:
    return (f"{prefix}_all", *(f"{prefix}_axis_{axis}" for axis in range(max_rank)), f"{prefix}_keepdims")


def broadcast_slot_feature(slot: int, feature: str):
    """`features` of a broadcasting op: `feature` when operand `slot` is broadcast (a smaller shape)."""

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        result = tuple(np.broadcast_shapes(*shapes))
        return {feature} if tuple(shapes[slot]) != result else set()

    return features


# ---- samples: shapes the table-driven tests run every op on --------------------------------------

UNARY_SAMPLES = (Sample(((),)), Sample(((1,),)), Sample(((2, 3),)), Sample(((3, 1),)))
BROADCAST_SAMPLES = (
    Sample(((), ())),
    Sample(((3,), ())),
    Sample(((), (3,))),
    Sample(((2, 3), (2, 3))),
    Sample(((2, 1), (3,))),
    Sample(((1, 3), (2, 1))),
)
REDUCTION_SAMPLES = (
    Sample(((),), {"axis": None, "keepdims": False}),
    Sample(((2, 3),), {"axis": None, "keepdims": False}),
    Sample(((2, 3),), {"axis": None, "keepdims": True}),
    Sample(((2, 3),), {"axis": 0, "keepdims": False}),
    Sample(((2, 3),), {"axis": -1, "keepdims": True}),
    Sample(((1, 3),), {"axis": 0, "keepdims": False}),
)


def default_planner(arity: int, broadcasts: bool) -> Planner:
    """Broadcasting operands for a broadcasting op; otherwise every operand has the result's shape."""
    if broadcasts:
        return BROADCASTING
    if arity == 1:
        return ELEMENTWISE
    return Planner(_anything, lambda context, shape: ([shape] * arity, {}))


def default_samples(arity: int, broadcasts: bool) -> tuple[Sample, ...]:
    if arity == 1:
        return UNARY_SAMPLES
    if broadcasts:
        return BROADCAST_SAMPLES
    return tuple(Sample((shape,) * arity) for shape in ((), (3,), (2, 3)))
