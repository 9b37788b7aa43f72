"""Rules of the ops that join operands (concatenate, stack), which take 2 to 4 of them: shape
rules, attr checks, planners, features and samples. Nothing here names an op; `table.py` uses
them."""

from __future__ import annotations

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import is_int
from .selection import axis_in, spelled

# ---- concatenate and stack -------------------------------------------------------------------------


def check_join_axis(attrs: dict) -> str | None:
    return None if is_int(attrs["axis"]) else f"axis must be an integer, got {attrs['axis']!r}"


def concatenate_shape(*shapes_and_attrs) -> tuple:
    *shapes, attrs = shapes_and_attrs
    first = shapes[0]
    if any(len(shape) != len(first) for shape in shapes):
        raise ShapeError(f"operands of shapes {', '.join(map(str, map(list, shapes)))} differ in rank")
    axis = axis_in(attrs["axis"], len(first), "operands")
    for shape in shapes:
        if shape[:axis] + shape[axis + 1 :] != first[:axis] + first[axis + 1 :]:
            raise ShapeError(
                f"operands of shapes {', '.join(map(str, map(list, shapes)))} differ off axis {attrs['axis']}"
            )
    return (*first[:axis], sum(shape[axis] for shape in shapes), *first[axis + 1 :])


def concatenate_forward(*operands_and_attrs) -> np.ndarray:
    *operands, attrs = operands_and_attrs
    return np.concatenate(operands, axis=attrs["axis"])


def _concatenate_produces(shape: tuple, max_rank: int) -> bool:
    return any(size >= 2 for size in shape)


def _plan_concatenate(context: PlanContext, shape: tuple):
    axis = context.choice([axis for axis, size in enumerate(shape) if size >= 2])
    total = shape[axis]
    count = context.integer(2, min(4, total))
    # Lengths from count - 1 distinct cut points (a repeated one would make an empty operand).
    points = list(range(1, total))
    cuts = sorted(points.pop(context.integer(0, len(points) - 1)) for _ in range(count - 1))
    lengths = [high - low for low, high in zip([0, *cuts], [*cuts, total])]
    operands = [(*shape[:axis], length, *shape[axis + 1 :]) for length in lengths]
    return operands, {"axis": spelled(context, axis, len(shape))}


CONCATENATE_PLANNER = Planner(_concatenate_produces, _plan_concatenate)


def stack_shape(*shapes_and_attrs) -> tuple:
    *shapes, attrs = shapes_and_attrs
    if len(set(shapes)) != 1:
        raise ShapeError(f"stack needs operands of one shape, got {', '.join(map(str, map(list, shapes)))}")
    axis = axis_in(attrs["axis"], len(shapes[0]) + 1, "the result")
    return (*shapes[0][:axis], len(shapes), *shapes[0][axis:])


def stack_forward(*operands_and_attrs) -> np.ndarray:
    *operands, attrs = operands_and_attrs
    return np.stack(operands, axis=attrs["axis"])


def _stack_produces(shape: tuple, max_rank: int) -> bool:
    return any(2 <= size <= 4 for size in shape)


def _plan_stack(context: PlanContext, shape: tuple):
    axis = context.choice([axis for axis, size in enumerate(shape) if 2 <= size <= 4])
    operand = shape[:axis] + shape[axis + 1 :]
    return [operand] * shape[axis], {"axis": spelled(context, axis, len(shape))}


STACK_PLANNER = Planner(_stack_produces, _plan_stack)


def join_features(prefix: str):
    """`features` of concatenate and stack: how many operands, along which axis (normalised),
    whether spelled from the end, and (concatenate) whether the operands' lengths differ."""

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        rank = len(shapes[0]) + (1 if prefix == "stack" else 0)
        found = {f"{prefix}_{len(shapes)}_operands", f"{prefix}_axis_{attrs['axis'] % rank}"}
        if attrs["axis"] < 0:
            found.add(f"{prefix}_negative_axis")
        if prefix == "concatenate" and len({shape[attrs["axis"]] for shape in shapes}) > 1:
            found.add("concatenate_different_lengths")
        return found

    return features


def join_feature_names(prefix: str, max_rank: int = 3) -> tuple[str, ...]:
    counts = tuple(f"{prefix}_{count}_operands" for count in (2, 3, 4))
    axes = tuple(f"{prefix}_axis_{axis}" for axis in range(max_rank))
    extra = ("concatenate_different_lengths",) if prefix == "concatenate" else ()
    return (*counts, *axes, f"{prefix}_negative_axis", *extra)


CONCATENATE_SAMPLES = (
    Sample(((1,), (2,)), {"axis": 0}),
    Sample(((2, 1), (2, 2), (2, 1)), {"axis": -1}),
    Sample(((3, 1), (3, 1), (3, 2), (3, 1)), {"axis": -1}),
)
STACK_SAMPLES = (
    Sample(((), ()), {"axis": 0}),
    Sample(((3,), (3,), (3,)), {"axis": -1}),
    Sample(((2, 3), (2, 3)), {"axis": -2}),
    Sample(((2,), (2,), (2,), (2,)), {"axis": -2}),
)


def _join(prefix: str, shape, forward, planner: Planner, samples: tuple[Sample, ...]) -> dict:
    """What the table's entries of concatenate and stack take from here."""
    return {
        "shape": shape,
        "forward": forward,
        "attrs": {"axis": 0},
        "check_attrs": check_join_axis,
        "max_arity": 4,
        "planner": planner,
        "features": join_features(prefix),
        "feature_names": join_feature_names(prefix),
        "samples": samples,
    }


CONCATENATE = _join("concatenate", concatenate_shape, concatenate_forward, CONCATENATE_PLANNER, CONCATENATE_SAMPLES)
STACK = _join("stack", stack_shape, stack_forward, STACK_PLANNER, STACK_SAMPLES)
