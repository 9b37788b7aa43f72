"""Rules of the products and running ops (reduce_prod, cumsum, cumprod): forwards, and the
features that say where a product's gradient is hard (a reduced slice with no zero, exactly
one zero, or two or more: the classic `out / a` rule is wrong at one and twice wrong at two).
Nothing here names an op; `table.py` uses them."""

from __future__ import annotations

import numpy as np

from .entry import Domain
from .fused import along_axis_feature_names, along_axis_features
from .rules import reduction_feature_names, reduction_features

# A product of up to 27 factors stays within the generator's value bound of 1e3 when they are
# this small; a computed operand beyond it is simply not used.
FACTOR = Domain(bound={"float64": 4.0, "float32": 4.0})

ZERO_FEATURES = ("no_zero", "one_zero", "two_or_more_zeros")


def zeros_in_slices(a: np.ndarray, axis: int | None) -> set[str]:
    """Which of ZERO_FEATURES the slices of `a` along `axis` (all of `a` when None) show."""
    a = np.asarray(a)
    counts = np.array([int(a == 0)]) if a.ndim == 0 else np.sum(a == 0, axis=axis)
    counts = np.atleast_1d(counts)
    found = set()
    if np.any(counts == 0):
        found.add("no_zero")
    if np.any(counts == 1):
        found.add("one_zero")
    if np.any(counts >= 2):
        found.add("two_or_more_zeros")
    return found


def reduce_prod_forward(a: np.ndarray, attrs: dict) -> np.ndarray:
    return np.prod(a, axis=attrs["axis"], keepdims=attrs["keepdims"])


def cumulative_forward(function):
    return lambda a, attrs: function(a, axis=attrs["axis"])


def product_features(prefix: str, reduction: bool):
    """`features` of reduce_prod (a reduction) or cumprod (along an axis): the axis features,
    and how many zeros the operand's slices hold."""
    by_axis = reduction_features(prefix) if reduction else along_axis_features(prefix)

    def features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
        found = {name for name in by_axis(shapes, attrs, values) if not name.endswith("_large_operands")}
        if values:
            found |= {f"{prefix}_{name}" for name in zeros_in_slices(values[0], attrs["axis"])}
        return found

    return features


def product_feature_names(prefix: str, reduction: bool) -> tuple[str, ...]:
    by_axis = reduction_feature_names(prefix) if reduction else along_axis_feature_names(prefix)[:-1]
    return (*by_axis, *(f"{prefix}_{name}" for name in ZERO_FEATURES))


def axis_features(prefix: str):
    """`features` of cumsum: which axis, normalised."""
    by_axis = along_axis_features(prefix)
    return lambda shapes, attrs, values: {n for n in by_axis(shapes, attrs, []) if not n.endswith("_large_operands")}


def axis_feature_names(prefix: str) -> tuple[str, ...]:
    return along_axis_feature_names(prefix)[:-1]
