"""Rules of the ops that only move data (transpose, reshape, broadcast_to): shape rules, attr
checks, planners, features and samples. Nothing here names an op; `table.py` uses them."""

from __future__ import annotations

import itertools
import math

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import is_int


def _is_shape(value) -> bool:
    return isinstance(value, list) and all(is_int(size) and size >= 1 for size in value)


def check_shape_attr(attrs: dict) -> str | None:
    if not _is_shape(attrs["shape"]):
        return f"shape must be a list of positive integers (no -1), got {attrs['shape']!r}"
    if len(attrs["shape"]) > 32:  # numpy's limit on the number of axes
        return f"shape has {len(attrs['shape'])} axes; at most 32"
    return None


def _anything(shape: tuple, max_rank: int) -> bool:
    return True


# ---- transpose -----------------------------------------------------------------------------------


def check_axes(attrs: dict) -> str | None:
    axes = attrs["axes"]
    if axes is not None and not (isinstance(axes, list) and all(is_int(axis) for axis in axes)):
        return f"axes must be null or a list of integers, got {axes!r}"
    return None


def permutation(attrs: dict, rank: int) -> tuple[int, ...]:
    """The permutation `transpose` applies: `axes`, or all axes reversed when it is null."""
    return tuple(reversed(range(rank))) if attrs["axes"] is None else tuple(attrs["axes"])


def transpose_shape(a: tuple, attrs: dict) -> tuple:
    axes = permutation(attrs, len(a))
    if sorted(axes) != list(range(len(a))):
        raise ShapeError(f"axes {list(axes)} is not a permutation of the {len(a)} axes of shape {list(a)}")
    return tuple(a[axis] for axis in axes)


def _transposes(shape: tuple, max_rank: int) -> bool:
    # A transpose of fewer than two axes is the identity: such a node would test nothing.
    return len(shape) >= 2


def _plan_transpose(context: PlanContext, shape: tuple):
    rank = len(shape)
    if context.boolean(0.25):
        axes = None
    else:
        # Draw a permutation; in rank 3, prefer one that is not its own inverse (the bug's hiding place).
        options = [p for p in itertools.permutations(range(rank)) if list(p) != list(range(rank))]
        cyclic = [p for p in options if any(p[p[k]] != k for k in range(rank))]
        axes = list(context.choice(cyclic if cyclic and context.boolean(0.7) else options))
    perm = permutation({"axes": axes}, rank)
    operand = [0] * rank
    for position, axis in enumerate(perm):  # result axis `position` is operand axis `axis`
        operand[axis] = shape[position]
    return [tuple(operand)], {"axes": axes}


TRANSPOSE = Planner(_transposes, _plan_transpose)


def transpose_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    rank = len(shapes[0])
    perm = permutation(attrs, rank)
    found = set()
    if perm != tuple(range(rank)):
        found.add("transpose_reverse" if attrs["axes"] is None else "transpose_permutation")
    if any(perm[perm[k]] != k for k in range(rank)):
        found.add("transpose_not_self_inverse")
    return found


TRANSPOSE_FEATURES = ("transpose_reverse", "transpose_permutation", "transpose_not_self_inverse")
TRANSPOSE_SAMPLES = (
    Sample(((),), {"axes": None}),
    Sample(((2, 3),), {"axes": None}),
    Sample(((2, 3),), {"axes": [1, 0]}),
    Sample(((2, 3, 4),), {"axes": [1, 2, 0]}),
    Sample(((2, 3, 4),), {"axes": [2, 0, 1]}),
    Sample(((1, 3, 2),), {"axes": [0, 2, 1]}),
)

# ---- reshape -------------------------------------------------------------------------------------


def reshape_shape(a: tuple, attrs: dict) -> tuple:
    shape = tuple(attrs["shape"])
    if math.prod(a) != math.prod(shape):
        raise ShapeError(f"cannot reshape shape {list(a)} ({math.prod(a)} elements) to {list(shape)}")
    return shape


def _shapes_with(size: int, max_rank: int, max_dim: int) -> list[tuple]:
    """Every shape of rank <= max_rank, axes at most max_dim, with `size` elements."""
    found = []
    for rank in range(max_rank + 1):
        for shape in itertools.product(range(1, max_dim + 1), repeat=rank):
            if math.prod(shape) == size:
                found.append(shape)
    return found


def reorders(a: tuple, b: tuple) -> bool:
    """Whether reading shape `a` into shape `b` in C order differs from reading it in Fortran
    order: only then does a gradient reshaped in the wrong index order come out wrong."""
    elements = np.arange(math.prod(a)).reshape(a)
    return not np.array_equal(elements.reshape(b), elements.reshape(b, order="F"))


def _plan_reshape(context: PlanContext, shape: tuple):
    options = [s for s in _shapes_with(math.prod(shape), context.max_rank, context.max_dim) if s != shape]
    other_rank = [s for s in options if len(s) != len(shape)]
    reordering = [s for s in options if reorders(s, shape)]
    if reordering and context.boolean(0.5):
        operand = context.choice(reordering)  # where index-order bugs show
    elif other_rank and context.boolean(0.7):
        operand = context.choice(other_rank)  # across ranks
    elif options:
        operand = context.choice(options)
    else:
        operand = shape
    return [operand], {"shape": list(shape)}


RESHAPE = Planner(_anything, _plan_reshape)


def reshape_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    (a,) = shapes
    shape = tuple(attrs["shape"])
    found = {"reshape_reorders"} if reorders(tuple(a), shape) else set()
    if len(a) != len(shape):
        return found | {"reshape_across_ranks"}
    return found | {"reshape_same_rank"} if tuple(a) != shape else found


RESHAPE_FEATURES = ("reshape_across_ranks", "reshape_same_rank", "reshape_reorders")
RESHAPE_SAMPLES = (
    Sample(((2, 3),), {"shape": [3, 2]}),
    Sample(((2, 3),), {"shape": [6]}),
    Sample(((6,),), {"shape": [1, 2, 3]}),
    Sample(((2, 3, 2),), {"shape": [3, 4]}),
    Sample(((),), {"shape": [1, 1]}),
    Sample(((1,),), {"shape": []}),
)

# ---- broadcast_to --------------------------------------------------------------------------------


def broadcast_to_shape(a: tuple, attrs: dict) -> tuple:
    shape = tuple(attrs["shape"])
    try:
        ok = tuple(np.broadcast_shapes(a, shape)) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"shape {list(a)} cannot be broadcast to {list(shape)}")
    return shape


def _plan_broadcast_to(context: PlanContext, shape: tuple):
    rank = len(shape)
    dropped = context.integer(0, rank)  # leading axes the operand lacks
    operand = [1 if size > 1 and context.boolean(0.5) else size for size in shape[dropped:]]
    if dropped == 0 and tuple(operand) == shape and rank:
        dropped = 1  # not the identity: at least one leading axis is added
        operand = operand[1:]
    return [tuple(operand)], {"shape": list(shape)}


BROADCAST_TO = Planner(_anything, _plan_broadcast_to)


def broadcast_to_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    (a,), shape = shapes, tuple(attrs["shape"])
    leading = len(shape) > len(a)
    stretched = any(size == 1 < full for size, full in zip(a[::-1], shape[::-1]))
    found = set()
    if leading:
        found.add("broadcast_to_leading_axes")
    if stretched:
        found.add("broadcast_to_stretch")
    if leading and stretched:
        found.add("broadcast_to_leading_axes_and_stretch")
    return found


BROADCAST_TO_FEATURES = ("broadcast_to_leading_axes", "broadcast_to_stretch", "broadcast_to_leading_axes_and_stretch")
BROADCAST_TO_SAMPLES = (
    Sample(((),), {"shape": [2, 2]}),
    Sample(((3,),), {"shape": [2, 3]}),
    Sample(((2, 1),), {"shape": [2, 3]}),
    Sample(((1, 3),), {"shape": [4, 2, 3]}),
    Sample(((3,),), {"shape": [3]}),
)
