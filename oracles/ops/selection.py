"""Rules of the ops that select data (where, take, slice): shape rules, attr checks, planners,
features and samples (concatenate and stack are in `joining.py`, clip in `bounds.py`). Nothing
here names an op; `table.py` uses them.

`where`'s mask and `take`'s indices are constants that are data: they are checked before any
array is made of them (at most ATTR_ELEMENTS elements, nested at most MAX_MASK_RANK deep), so
a hostile graph cannot make the validator allocate.
"""

from __future__ import annotations

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import BROADCASTING, P_NEGATIVE_AXIS, is_int

ATTR_ELEMENTS = 10_000  # the most elements a mask or an index list may have
MAX_BOUND = 2**31 - 1  # a slice's start, stop or step: past any axis, so no meaning is lost
MAX_MASK_RANK = 8


def axis_in(axis: int, rank: int, what: str = "shape") -> int:
    """`axis` normalised for `rank` axes, or ShapeError."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for {what} of rank {rank}")
    return axis % rank


def spelled(context: PlanContext, axis: int, rank: int) -> int:
    """`axis`, spelled from the end as often as from the start."""
    return axis - rank if context.boolean(P_NEGATIVE_AXIS) else axis


# ---- where -----------------------------------------------------------------------------------------


def _mask_shape(mask, depth: int = 0) -> tuple:
    """The shape of a nested list of booleans, or ValueError; it never builds an array of it."""
    if isinstance(mask, bool):
        return ()
    if not isinstance(mask, list) or depth >= MAX_MASK_RANK:
        raise ValueError("not a nested list of booleans (true/false), rectangular")
    if not mask:
        raise ValueError("an empty list")
    shapes = {_mask_shape(item, depth + 1) for item in mask}
    if len(shapes) != 1:
        raise ValueError("not rectangular")
    shape = (len(mask), *shapes.pop())
    if int(np.prod(shape)) > ATTR_ELEMENTS:
        raise ValueError(f"more than {ATTR_ELEMENTS:,} elements")
    return shape


def _count_leaves(value, limit: int, depth: int = 0) -> int:
    """How many leaves a nested list has, stopping once past `limit` (or MAX_MASK_RANK deep)."""
    if not isinstance(value, list):
        return 1
    if depth >= MAX_MASK_RANK:
        return limit + 1
    total = 0
    for item in value:
        total += _count_leaves(item, limit - total, depth + 1)
        if total > limit:
            break
    return total


def check_mask(attrs: dict) -> str | None:
    mask = attrs["mask"]
    if _count_leaves(mask, ATTR_ELEMENTS) > ATTR_ELEMENTS:
        return f"mask has more than {ATTR_ELEMENTS:,} elements, or is nested more than {MAX_MASK_RANK} deep"
    try:
        _mask_shape(mask)
    except ValueError as error:
        return f"mask must be a rectangular nested list of booleans: {error}"
    return None


def where_shape(a: tuple, b: tuple, attrs: dict) -> tuple:
    mask = _mask_shape(attrs["mask"])
    try:
        return tuple(np.broadcast_shapes(mask, a, b))
    except ValueError:
        raise ShapeError(f"the mask's shape {list(mask)} and shapes {list(a)} and {list(b)} do not broadcast") from None


def where_forward(a: np.ndarray, b: np.ndarray, attrs: dict) -> np.ndarray:
    return np.where(np.asarray(attrs["mask"], dtype=bool), a, b)


def _plan_where(context: PlanContext, shape: tuple):
    (a, b), _ = BROADCASTING.plan(context, shape)
    # The mask's shape: the result's, or with some axes of size 1 or missing in front.
    mask_shape = tuple(1 if size > 1 and context.boolean(0.3) else size for size in shape)
    mask_shape = mask_shape[context.integer(0, len(mask_shape)) if context.boolean(0.3) else 0 :]
    kind = context.integer(0, 2)  # all true, all false, mixed
    elements = int(np.prod(mask_shape))
    if kind == 2 and elements >= 2:
        flat = [context.boolean(0.5) for _ in range(elements)]
        flat[0], flat[-1] = True, False  # mixed for certain
    else:
        flat = [kind == 0] * elements
    mask = np.array(flat, dtype=bool).reshape(mask_shape).tolist()
    return [a, b], {"mask": mask}


def smaller_masks(attrs: dict) -> list[dict]:
    """For shrinking: the mask with one axis dropped (its first slice), or a single boolean."""
    mask = np.asarray(attrs["mask"], dtype=bool)
    if mask.ndim == 0:
        return []
    smaller = [np.take(mask, 0, axis=axis).tolist() for axis in range(mask.ndim)]
    return [{**attrs, "mask": m} for m in [*smaller, bool(mask.flat[0]), not mask.flat[0]]]


WHERE_PLANNER = Planner(lambda shape, max_rank: True, _plan_where)
WHERE_FEATURES = ("where_all_true", "where_all_false", "where_mixed", "where_mask_broadcast")


def where_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    mask = np.asarray(attrs["mask"], dtype=bool)
    found = {"where_all_true" if mask.all() else "where_all_false" if not mask.any() else "where_mixed"}
    if mask.shape != where_shape(*shapes, attrs):
        found.add("where_mask_broadcast")
    return found


WHERE_SAMPLES = (
    Sample(((), ()), {"mask": True}),
    Sample(((3,), (3,)), {"mask": [True, False, True]}),
    Sample(((2, 3), (3,)), {"mask": [[True], [False]]}),
    Sample(((2, 1), (1, 3)), {"mask": [[False, False, False], [False, False, False]]}),
)

# ---- take ------------------------------------------------------------------------------------------


def check_take(attrs: dict) -> str | None:
    indices, axis = attrs["indices"], attrs["axis"]
    if not isinstance(indices, list) or not indices:
        return f"indices must be a non-empty list of integers, got {_short(indices)}"
    if len(indices) > ATTR_ELEMENTS:
        return f"indices has {len(indices):,} entries, more than {ATTR_ELEMENTS:,}"
    if not all(is_int(index) for index in indices):
        return f"indices must be a list of integers, got {_short(indices)}"
    if not is_int(axis):
        return f"axis must be an integer, got {axis!r}"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def take_shape(a: tuple, attrs: dict) -> tuple:
    axis = axis_in(attrs["axis"], len(a))
    length = a[axis]
    outside = [index for index in attrs["indices"] if not -length <= index < length]
    if outside:
        raise ShapeError(f"index {outside[0]} is out of range for axis {attrs['axis']} of length {length}")
    return (*a[:axis], len(attrs["indices"]), *a[axis + 1 :])


def take_forward(a: np.ndarray, attrs: dict) -> np.ndarray:
    return np.take(a, attrs["indices"], axis=attrs["axis"])


def _plan_take(context: PlanContext, shape: tuple):
    axis = context.integer(0, len(shape) - 1)
    count = shape[axis]
    length = context.dim()
    indices = [context.integer(0, length - 1) for _ in range(count)]
    if count >= 2 and context.boolean(0.5):  # a repeat, whose gradients must add up
        indices[context.integer(1, count - 1)] = indices[0]
    indices = [index - length if context.boolean(0.5) else index for index in indices]  # negative spellings
    operand = (*shape[:axis], length, *shape[axis + 1 :])
    return [operand], {"indices": indices, "axis": spelled(context, axis, len(shape))}


def fewer_indices(attrs: dict) -> list[dict]:
    """For shrinking: the first half of the indices, or all but one."""
    indices = attrs["indices"]
    if len(indices) < 2:
        return []
    fewer = [indices[: len(indices) // 2]] + [indices[:k] + indices[k + 1 :] for k in range(len(indices))]
    return [{**attrs, "indices": chosen} for chosen in fewer]


TAKE_PLANNER = Planner(lambda shape, max_rank: len(shape) >= 1, _plan_take)
TAKE_FEATURES = ("take_repeated_index", "take_negative_index", "take_axis_0", "take_axis_1", "take_axis_2")


def take_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    (a,) = shapes
    indices = [index % a[attrs["axis"]] for index in attrs["indices"]]
    found = {f"take_axis_{attrs['axis'] % len(a)}"}
    if len(set(indices)) < len(indices):
        found.add("take_repeated_index")
    if any(index < 0 for index in attrs["indices"]):
        found.add("take_negative_index")
    return found


TAKE_SAMPLES = (
    Sample(((3,),), {"indices": [0, 2, -3], "axis": 0}),
    Sample(((2, 3),), {"indices": [1, 1], "axis": -1}),
    Sample(((3, 2),), {"indices": [-1], "axis": 0}),
)

# ---- slice -----------------------------------------------------------------------------------------


def check_slice(attrs: dict) -> str | None:
    lists = [attrs[name] for name in ("starts", "stops", "steps")]
    for name, entries in zip(("starts", "stops", "steps"), lists):
        if not isinstance(entries, list) or len(entries) > MAX_MASK_RANK:
            return f"{name} must be a list with one entry per axis, got {_short(entries)}"
        if not all(entry is None or (is_int(entry) and abs(entry) <= MAX_BOUND) for entry in entries):
            return f"{name} must hold integers (at most {MAX_BOUND:,} either way) or null, got {_short(entries)}"
    if len({len(entries) for entries in lists}) != 1:
        return "starts, stops and steps must have one entry per axis each"
    if 0 in attrs["steps"]:
        return "a step must not be 0"
    return None


def _slices(attrs: dict) -> tuple:
    return tuple(slice(*bounds) for bounds in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def slice_shape(a: tuple, attrs: dict) -> tuple:
    if len(attrs["starts"]) != len(a):
        raise ShapeError(f"slice has {len(attrs['starts'])} entries per list for an operand of rank {len(a)}")
    shape = tuple(len(range(*part.indices(size))) for part, size in zip(_slices(attrs), a))
    if 0 in shape:
        raise ShapeError(f"the slice of an operand of shape {list(a)} is empty (shape {list(shape)})")
    return shape


def slice_forward(a: np.ndarray, attrs: dict) -> np.ndarray:
    return a[_slices(attrs)]


def _plan_axis_slice(context: PlanContext, count: int) -> tuple[int, int | None, int | None, int]:
    """(operand length, start, stop, step) keeping `count` elements, spelled in the ways slices are."""
    # Steps whose span fits the axis sizes the config allows (any step keeps a single element).
    # A result wider than the config's axes (the operand of a conv1d) is kept by step 1 or -1.
    steps = [step for step in (1, 1, 2, 3, -1, -1, -2) if (count - 1) * abs(step) + 1 <= context.max_dim] or [1, -1]
    step = context.choice(steps)
    span = (count - 1) * abs(step) + 1  # from the first kept element to the last
    length = span + context.integer(0, max(0, min(2, context.max_dim - span)))
    first = context.integer(0, length - span)  # the lowest kept position
    if step > 0:
        start, stop = first, first + span
        start = None if start == 0 and context.boolean(0.5) else start
        stop = None if stop == length and context.boolean(0.5) else stop
    else:
        start, stop = first + span - 1, first - 1  # from the highest kept position down
        stop = None if stop == -1 else stop
    if start is not None and context.boolean(0.5):
        start -= length  # counted from the end
    if stop is not None and 0 <= stop < length and context.boolean(0.3):  # (stop == length is the end, not 0)
        stop -= length
    return length, start, stop, step


def _plan_slice(context: PlanContext, shape: tuple):
    operand, starts, stops, steps = [], [], [], []
    for count in shape:
        length, start, stop, step = _plan_axis_slice(context, count)
        operand.append(length)
        starts.append(start)
        stops.append(stop)
        steps.append(step)
    return [tuple(operand)], {"starts": starts, "stops": stops, "steps": steps}


SLICE_PLANNER = Planner(lambda shape, max_rank: len(shape) >= 1, _plan_slice)
SLICE_FEATURES = ("slice_negative_step", "slice_step_above_1", "slice_single_element", "slice_from_the_end")


def slice_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    found = set()
    if any(step is not None and step < 0 for step in attrs["steps"]):
        found.add("slice_negative_step")
    if any(step is not None and abs(step) > 1 for step in attrs["steps"]):
        found.add("slice_step_above_1")
    if 1 in slice_shape(shapes[0], attrs):
        found.add("slice_single_element")
    if any(bound is not None and bound < 0 for bound in (*attrs["starts"], *attrs["stops"])):
        found.add("slice_from_the_end")
    return found


SLICE_SAMPLES = (
    Sample(((4,),), {"starts": [None], "stops": [None], "steps": [-1]}),
    Sample(((5,),), {"starts": [1], "stops": [None], "steps": [2]}),
    Sample(((2, 4),), {"starts": [-1, 3], "stops": [None, 0], "steps": [1, -2]}),
    Sample(((3, 3),), {"starts": [1, -1], "stops": [2, None], "steps": [None, 1]}),
)


# ---- what the table's entries take from here (besides name, arity, meaning, shape and forward) --------

WHERE = {
    "shape": where_shape,
    "forward": where_forward,
    "attrs": {"mask": True},
    "check_attrs": check_mask,
    "broadcasts": True,
    "planner": WHERE_PLANNER,
    "features": where_features,
    "feature_names": WHERE_FEATURES,
    "samples": WHERE_SAMPLES,
    "smaller_attrs": smaller_masks,
    "notes": "`mask`: nested list of booleans",
}
TAKE = {
    "shape": take_shape,
    "forward": take_forward,
    "attrs": {"indices": [0], "axis": 0},
    "check_attrs": check_take,
    "planner": TAKE_PLANNER,
    "features": take_features,
    "feature_names": TAKE_FEATURES,
    "samples": TAKE_SAMPLES,
    "smaller_attrs": fewer_indices,
    "notes": "each index in `[-n, n)` for the axis length `n`",
}
SLICE = {
    "shape": slice_shape,
    "forward": slice_forward,
    "attrs": {"starts": [], "stops": [], "steps": []},
    "check_attrs": check_slice,
    "planner": SLICE_PLANNER,
    "features": slice_features,
    "feature_names": SLICE_FEATURES,
    "samples": SLICE_SAMPLES,
    "notes": "one entry per axis in each list, an int or null; never empty",
}
