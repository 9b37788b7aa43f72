"""Rules of the statistics (var, std, norm): numpy forwards, attr checks, shape rules, planners,
features and samples. Nothing here names an op; `table.py` uses them.

var is smooth everywhere. std = sqrt(var) is not differentiable where a reduced slice has no
spread (all its elements equal), and norm where a slice is all zeros: the entries say so with
`singular`, and the generator keeps every slice a margin away from there.
"""

from __future__ import annotations

import numpy as np

from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import REDUCTION, REDUCTION_SAMPLES, check_axis_and_keepdims, is_int, reduced_shape, reduction_features

MAX_DDOF = 2**31 - 1


def reduced_count(shape: tuple, attrs: dict) -> int:
    """How many elements each reduced slice has."""
    return int(np.prod(shape)) if attrs["axis"] is None else shape[attrs["axis"]]


def check_statistic(attrs: dict) -> str | None:
    ddof = attrs["ddof"]
    if not is_int(ddof) or not 0 <= ddof <= MAX_DDOF:
        return f"ddof must be an integer from 0 to {MAX_DDOF}, got {ddof!r}"
    return check_axis_and_keepdims(attrs)


def statistic_shape(a: tuple, attrs: dict) -> tuple:
    shape = reduced_shape(a, attrs)  # checks the axis first
    if reduced_count(a, attrs) <= attrs["ddof"]:
        raise ShapeError(
            f"ddof {attrs['ddof']} needs more than {attrs['ddof']} elements in each reduced slice, "
            f"got {reduced_count(a, attrs)}"
        )
    return shape


def var(a: np.ndarray, attrs: dict) -> np.ndarray:
    return np.var(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"])


def std(a: np.ndarray, attrs: dict) -> np.ndarray:
    return np.std(a, axis=attrs["axis"], keepdims=attrs["keepdims"], ddof=attrs["ddof"])


def norm(a: np.ndarray, attrs: dict) -> np.ndarray:
    return np.sqrt(np.sum(a * a, axis=attrs["axis"], keepdims=attrs["keepdims"]))


def _planner(least: int, ddofs: tuple[int, ...]) -> Planner:
    """A reduction's planner whose reduced slices have at least `least` elements, and more
    than its ddof, drawn from `ddofs` (none for norm; those the config's axes allow)."""

    def plan(context: PlanContext, shape: tuple):
        [operand], attrs = REDUCTION.plan(context, shape)
        operand = list(operand)
        if ddofs:
            # ddof 1 needs two elements in a slice: an axis (not a scalar), of 2 at least.
            allowed = [ddof for ddof in ddofs if ddof == 0 or (ddof < context.max_dim and context.max_rank >= 1)]
            attrs["ddof"] = context.choice(allowed)
        enough = max(least, attrs.get("ddof", 0) + 1)
        if attrs["axis"] is not None:
            operand[attrs["axis"]] = max(operand[attrs["axis"]], enough)
        elif int(np.prod(operand)) < enough:
            if operand:
                operand[0] = enough  # keepdims or not, every size is the operand's to choose
            else:
                operand, attrs["keepdims"] = [enough], False  # a scalar result either way
        return [tuple(operand)], attrs

    # A scalar slice has one element: `least` 2 needs an axis, of 2.
    return Planner(
        lambda shape, max_rank: REDUCTION.produces(shape, max_rank) and (least < 2 or max_rank >= 1),
        plan,
        least_dim=lambda shape: least,
    )


def statistic_features(prefix: str, ddof: bool):
    """A reduction's features, whether its axis is spelled from the end, and its ddof."""
    by_axis = reduction_features(prefix)

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        found = by_axis(shapes, attrs, values)
        if attrs["axis"] is not None and attrs["axis"] < 0:
            found.add(f"{prefix}_negative_axis")
        if ddof and attrs["ddof"] in (0, 1):
            found.add(f"{prefix}_ddof_{attrs['ddof']}")
        return found

    return features


def statistic_feature_names(prefix: str, ddof: bool, max_rank: int = 3) -> tuple[str, ...]:
    axes = (f"{prefix}_all", *(f"{prefix}_axis_{axis}" for axis in range(max_rank)), f"{prefix}_keepdims")
    return (*axes, f"{prefix}_negative_axis", *((f"{prefix}_ddof_0", f"{prefix}_ddof_1") if ddof else ()))


# Each reduced slice has two elements at least (std's spread, and ddof 1).
_SAMPLES = tuple(sample for sample in REDUCTION_SAMPLES if reduced_count(sample.shapes[0], sample.attrs) >= 2)
VAR_SAMPLES = _SAMPLES + tuple(Sample(s.shapes, {**s.attrs, "ddof": 1}) for s in _SAMPLES)


def _statistic(prefix: str, forward, least: int) -> dict:
    """What the table's entries of var and std take from here."""
    return {
        "shape": statistic_shape,
        "forward": forward,
        "attrs": {"axis": None, "keepdims": False, "ddof": 0},
        "check_attrs": check_statistic,
        "planner": _planner(least, (0, 1)),
        "features": statistic_features(prefix, ddof=True),
        "feature_names": statistic_feature_names(prefix, ddof=True),
        "samples": VAR_SAMPLES,
    }


VAR = {**_statistic("var", var, least=1), "centers": True}
STD = {**_statistic("std", std, least=2), "singular": "zero_spread", "centers": True}
NORM = {
    "shape": reduced_shape,
    "forward": norm,
    "attrs": {"axis": None, "keepdims": False},
    "check_attrs": check_axis_and_keepdims,
    "planner": _planner(1, ()),
    "features": statistic_features("norm", ddof=False),
    "feature_names": statistic_feature_names("norm", ddof=False),
    "samples": REDUCTION_SAMPLES,
    "singular": "zero_vector",
}
