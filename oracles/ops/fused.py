"""Rules of the fused ops (softmax, log_softmax, logsumexp): stable numpy forwards, attr checks,
planners, features and samples. Nothing here names an op; `table.py` uses them."""

from __future__ import annotations

import numpy as np

from .entry import NAIVE_EXP_OVERFLOW, Domain
from .planning import PlanContext, Planner, Sample, ShapeError
from .rules import P_NEGATIVE_AXIS, is_int

# Operands far out part of the time, on either side, past a naive exp's overflow half of those
# times: where softmax without its max shift is inf / inf (or 0 / 0), and sigmoid's gradient
# as exp(-a) / (1 + exp(-a)) ** 2 is NaN. Up to 800 (100 in float32): within VALUE_BOUND.
FAR_OUT = Domain(far={"float64": 800.0, "float32": 100.0})


def _axis_max(a: np.ndarray, axis, keepdims: bool = True) -> np.ndarray:
    return np.max(a, axis=axis, keepdims=keepdims)


def softmax(a: np.ndarray, attrs: dict) -> np.ndarray:
    shifted = np.exp(a - _axis_max(a, attrs["axis"]))  # exponents <= 0: nothing overflows
    return shifted / np.sum(shifted, axis=attrs["axis"], keepdims=True)


def log_softmax(a: np.ndarray, attrs: dict) -> np.ndarray:
    shifted = a - _axis_max(a, attrs["axis"])
    return shifted - np.log(np.sum(np.exp(shifted), axis=attrs["axis"], keepdims=True))


def logsumexp(a: np.ndarray, attrs: dict) -> np.ndarray:
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    top = _axis_max(a, axis)
    total = top + np.log(np.sum(np.exp(a - top), axis=axis, keepdims=True))
    if keepdims:
        return total
    return total.reshape(()) if axis is None else np.squeeze(total, axis=axis)


def check_axis(attrs: dict) -> str | None:
    if not is_int(attrs["axis"]):
        return f"axis must be an integer, got {attrs['axis']!r}"
    return None


def along_axis_shape(a: tuple, attrs: dict) -> tuple:
    axis = attrs["axis"]
    if not -len(a) <= axis < len(a):
        raise ShapeError(f"axis {axis} is out of range for shape {list(a)}")
    return a


def _plan_along_axis(context: PlanContext, shape: tuple):
    axis = context.integer(0, len(shape) - 1)
    if context.boolean(P_NEGATIVE_AXIS):
        axis -= len(shape)
    return [shape], {"axis": axis}


ALONG_AXIS = Planner(lambda shape, max_rank: len(shape) >= 1, _plan_along_axis)


def large_operand(values: list) -> bool:
    """Whether an operand is past where a naive exp overflows in float32, on either side."""
    return bool(values) and float(np.max(np.abs(values[0]), initial=0.0)) > NAIVE_EXP_OVERFLOW["float32"]


def along_axis_features(prefix: str):
    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        found = {f"{prefix}_axis_{attrs['axis'] % len(shapes[0])}"}
        if large_operand(values):
            found.add(f"{prefix}_large_operands")
        return found

    return features


def along_axis_feature_names(prefix: str, max_rank: int = 3) -> tuple[str, ...]:
    return (*(f"{prefix}_axis_{axis}" for axis in range(max_rank)), f"{prefix}_large_operands")


ALONG_AXIS_SAMPLES = (
    Sample(((1,),), {"axis": -1}),
    Sample(((3,),), {"axis": -1}),
    Sample(((2, 3),), {"axis": 0}),
    Sample(((2, 3),), {"axis": -1}),
    Sample(((2, 3, 2),), {"axis": 1}),
)
