"""What a value made for an operand slot must satisfy (`Need`), and the fixed rules that make a
drawn value satisfy it: kept apart from the other operand of an op that must not tie, given
one clear maximum along the axis of an op that must not tie there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import REAL, Domain, Op
from ..ops.windows import windows_of


@dataclass(frozen=True)
class Need:
    """What a value made for an operand slot must satisfy, beyond being finite and bounded."""

    domain: Domain = REAL
    apart_from: np.ndarray | None = None  # elementwise (as broadcast) at least domain.margin from these
    distinct_max: bool = False  # one clear maximum along `axis` (all elements when axis is None)
    lowest: bool = False  # with distinct_max: one clear minimum instead
    axis: int | None = None
    zeros: bool = False  # a fresh value gets exact zeros in its slices along `axis`
    window: tuple[int, int] | None = None  # (kernel, stride): one clear maximum in each window of the last axis
    singular: str | None = None  # "zero_spread" or "zero_vector": each slice along `axis` keeps away from it
    centered: bool = False  # each slice along `axis` has a spread within CENTERING_CONDITION of its magnitude


# The largest |slice|_inf / std(slice) of an operand of var or std, by dtype (none in float64). x - mean
# rounds by eps |x|, so the gradient's relative error is about eps times this, times what the graph
# does to it after: 100 eps = 1.2e-5 in float32 leaves a hundredfold to rtol (2e-3, check/compare.py).
# In float64, values of at most 1e3 (VALUE_BOUND) leave eps |x| = 2e-13, far below 1e-9.
CENTERING_CONDITION = {"float32": 100.0}


ANY = Need()


def slot_need(op: Op, attrs: dict, slot: int, first_operand: np.ndarray | None = None) -> Need:
    """What operand `slot` of `op` needs: its domain, one clear maximum along the axis of an op
    that must not tie there, and, for an op whose operands must not tie, distance from the
    first operand's value (when it is known)."""
    domain = op.domain(slot, attrs)
    if op.no_ties in ("axis", "axis_min"):
        return Need(domain, distinct_max=True, lowest=op.no_ties == "axis_min", axis=attrs.get("axis"))
    if op.no_ties == "operands" and slot > 0 and first_operand is not None:
        return Need(domain, apart_from=first_operand)
    if op.zeros_in_slices:
        return Need(domain, axis=attrs.get("axis"), zeros=True)
    if op.no_ties == "window":
        return Need(domain, window=(attrs["kernel"], attrs["stride"] or attrs["kernel"]))
    if op.singular is not None or op.centers:
        return Need(domain, axis=attrs.get("axis"), singular=op.singular, centered=op.centers)
    return Need(domain)


def _rows(value: np.ndarray, axis: int | None) -> np.ndarray:
    """`value`'s slices along `axis` (every element, for None) as the last axis of a view."""
    return value.reshape(1, -1) if axis is None else np.moveaxis(value, axis, -1)


def apart(value: np.ndarray, other: np.ndarray, margin: float) -> bool:
    """Whether every element of `value` is at least `margin` from each element of `other` it meets."""
    return bool(np.all(np.abs(value - other) >= margin))


def _sum_to_shape(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """Where any element broadcast from a position of `shape` is set."""
    leading = mask.ndim - len(shape)
    axes = tuple(range(leading)) + tuple(leading + k for k, size in enumerate(shape) if size == 1)
    return np.any(mask, axis=axes, keepdims=True).reshape(shape)


def move_apart(value: np.ndarray, other: np.ndarray, margin: float) -> np.ndarray:
    """`value` with each element that comes within `margin` of an element of `other` it meets
    moved up by 2 margin, until none does. Each move leaves one element of `other` behind for
    good, so it ends within other.size + 1 rounds."""
    for _ in range(other.size + 1):
        close = np.abs(value - other) < margin
        if not close.any():
            break
        value = np.where(_sum_to_shape(np.broadcast_to(close, np.broadcast_shapes(value.shape, other.shape)),
                                       value.shape), value + 2 * margin, value)  # fmt: skip
    return value


def _top_two_gap(value: np.ndarray, axis: int | None) -> np.ndarray:
    rows = _rows(value, axis)
    if rows.shape[-1] < 2:
        return np.full(rows.shape[:-1], np.inf)
    top = np.sort(rows, axis=-1)[..., -2:]
    return top[..., 1] - top[..., 0]


def has_distinct_max(value: np.ndarray, axis: int | None, margin: float, lowest: bool = False) -> bool:
    """Whether `value` has one clear maximum (minimum, if `lowest`) along `axis`."""
    return bool(np.all(_top_two_gap(-value if lowest else value, axis) >= margin))


def make_distinct_max(value: np.ndarray, axis: int | None, margin: float, lowest: bool = False) -> np.ndarray:
    """`value` with each row's maximum along `axis` raised to 2 margin above the next, where it
    was within margin (with `lowest`, each row's minimum lowered below the next)."""
    if lowest:
        return -make_distinct_max(-value, axis, margin)
    rows = _rows(value, axis)
    if rows.shape[-1] < 2:
        return value
    rows = rows.copy()
    lift = np.where(
        _top_two_gap(value, axis) < margin, 2 * margin - _top_two_gap(value, axis), 0.0
    )  # a gap of 2 margin
    top = np.argmax(rows, axis=-1)[..., None]
    np.put_along_axis(rows, top, np.take_along_axis(rows, top, axis=-1) + lift[..., None], axis=-1)
    return rows.reshape(value.shape) if axis is None else np.moveaxis(rows, -1, axis)


def plant_zeros(value: np.ndarray, axis: int | None, source) -> np.ndarray:
    """`value` with exact zeros in its slices along `axis` (the whole value when axis is None):
    each slice gets, as often as each other, no zero, exactly one, or two or more (when its
    length allows). `source` is the generator's ChoiceSource."""
    if value.ndim == 0:
        return np.zeros_like(value) if source.boolean(0.5) else value
    rows = _rows(value, axis).copy()
    length = rows.shape[-1]
    for index in np.ndindex(rows.shape[:-1]):
        kind = source.integer(0, 2 if length >= 2 else 1)
        count = (0, 1, source.integer(2, length) if length >= 2 else 1)[kind]
        positions = list(range(length))
        for _ in range(count):
            rows[(*index, positions.pop(source.integer(0, len(positions) - 1)))] = 0.0
    return rows.reshape(value.shape) if axis is None else np.moveaxis(rows, -1, axis)


def has_distinct_window_max(value: np.ndarray, window: tuple[int, int], margin: float) -> bool:
    """Whether every window (kernel, stride) of the last axis has one clear maximum."""
    kernel, stride = window
    if value.ndim == 0 or value.shape[-1] < kernel or kernel < 2:
        return True
    top = np.sort(windows_of(value, kernel, stride), axis=-1)[..., -2:]
    return bool(np.all(top[..., 1] - top[..., 0] >= margin))


def make_distinct_along_last(value: np.ndarray, margin: float) -> np.ndarray:
    """`value` with the elements of each row of the last axis at least 2 margin apart, the
    order kept: each element, in sorted order, lifted to 2 margin above the one before where it
    was closer. Then no window of the row can tie."""
    if value.ndim == 0 or value.shape[-1] < 2:
        return value
    order = np.argsort(value, axis=-1, kind="stable")
    ranked = np.take_along_axis(value, order, axis=-1).copy()
    for position in range(1, ranked.shape[-1]):
        ranked[..., position] = np.maximum(ranked[..., position], ranked[..., position - 1] + 2 * margin)
    result = np.empty_like(ranked)
    np.put_along_axis(result, order, ranked, axis=-1)
    return result


def away_from_singular(value: np.ndarray, singular: str, axis: int | None, margin: float) -> bool:
    """Whether each slice along `axis` keeps at least `margin` of spread ("zero_spread", std's
    singular point) or of norm ("zero_vector", norm's)."""
    rows = _rows(value, axis)
    if singular == "zero_spread":
        return rows.shape[-1] < 2 or bool(np.all(np.std(rows, axis=-1) >= margin))
    return bool(np.all(np.sqrt(np.sum(rows * rows, axis=-1)) >= margin))


def well_centered(value: np.ndarray, axis: int | None, dtype: str) -> bool:
    """Whether each slice along `axis` has a spread of at least its magnitude / CENTERING_CONDITION."""
    condition = CENTERING_CONDITION.get(dtype)
    rows = _rows(value, axis)
    if condition is None or value.ndim == 0 or rows.shape[-1] < 2:
        return True
    return bool(np.all(np.std(rows, axis=-1) * condition >= np.max(np.abs(rows), axis=-1)))


def make_centered(value: np.ndarray, axis: int | None, dtype: str) -> np.ndarray:
    """`value` with each slice that fails `well_centered` given a ramp from -4 m to 4 m, m its
    magnitude / CENTERING_CONDITION: the ramp's spread (at least 2.3 m) leaves at least 1.3 m, over
    a magnitude grown by at most 4 m (4% of it)."""
    condition = CENTERING_CONDITION.get(dtype)
    if condition is None or value.ndim == 0 or _rows(value, axis).shape[-1] < 2:
        return value
    rows = _rows(value, axis).copy()
    margin = np.max(np.abs(rows), axis=-1, keepdims=True) / condition
    close = np.std(rows, axis=-1, keepdims=True) < margin
    rows = rows + np.where(close, np.linspace(-4.0, 4.0, rows.shape[-1]) * margin, 0.0)
    return rows.reshape(value.shape) if axis is None else np.moveaxis(rows, -1, axis)


def make_away_from_singular(value: np.ndarray, singular: str, axis: int | None, margin: float) -> np.ndarray:
    """`value` with each slice along `axis` that comes within `margin` of the singular point
    moved off it: a ramp from -4 margin to 4 margin added (its spread, at least 2.3 margin,
    leaves at least margin whatever the slice had), or 2 margin added to its first element
    (its norm then at least margin)."""
    rows = _rows(value, axis).copy()
    if singular == "zero_spread":
        if rows.shape[-1] < 2:
            return value
        close = np.std(rows, axis=-1, keepdims=True) < margin
        rows = rows + np.where(close, np.linspace(-4 * margin, 4 * margin, rows.shape[-1]), 0.0)
    else:
        close = np.sqrt(np.sum(rows * rows, axis=-1)) < margin
        rows[..., 0] = rows[..., 0] + np.where(close, 2 * margin, 0.0)
    return rows.reshape(value.shape) if axis is None else np.moveaxis(rows, -1, axis)
