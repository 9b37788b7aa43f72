"""Kinks and ties as data: where an op's operands sit on one of its entry's `kinks`, and whether a
backend's local answer there is valid.

A kink is judged on one node alone (triage's one-node case): operand values, the cotangent `g`
at the node, and a backend's VJP for each operand slot. A valid answer is:
- at a point kink (relu and abs at 0): a local derivative vjp / g inside the entry's interval;
- at a tie between operands (maximum): shares s_a = vjp_a / g and s_b = vjp_b / g in [0, 1]
  that add up to 1. The operands must have the result's shape here (the caller broadcasts
  them first), so every element's shares can be read;
- at a tie along the reduced axis (reduce_max; reduce_min, of minima): shares of the row's
  cotangent among the tied maxima, each in [0, 1], adding up to 1, and nothing for the other
  elements of that row;
- at a tie within a window (max_pool1d): the same for each window, whose shares then add up
  over the windows that overlap. What the windows without a tie owe their maximum is taken off
  first; the rest must sit on the tied maxima only. A tied window that shares no tied maximum
  with another is judged alone, like a reduce_max row; windows whose tied maxima overlap are
  judged together: their parts must add up to their cotangents.

Nothing here names an op: it reads the `Kink` of an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .entry import Kink, Op
from .table import OPS


@dataclass
class KinkAnswer:
    """One backend's answer at a kink: what it is, in words, and whether it is valid."""

    summary: str  # "0", "0.5 / 0.5" (a tie's shares), "split evenly", ...
    valid: bool
    detail: str = ""  # why it is not valid


def _expand_reduced(array: np.ndarray, operand: np.ndarray, attrs: dict) -> np.ndarray:
    """A reduction's result or cotangent with its reduced axes back, as size 1."""
    axis = attrs.get("axis")
    if axis is None:
        return np.reshape(array, (1,) * operand.ndim)
    return array if attrs.get("keepdims") else np.expand_dims(array, axis)


def kink_at(op: Op, operands: list[np.ndarray], attrs: dict, same_operand: bool = False) -> Kink | None:
    """The kink of `op` its operands sit on, or None. The same operand in both slots is no tie:
    maximum(x, x) is x."""
    for kink in op.kinks:
        if kink_mask(kink, operands, attrs, same_operand).any():
            return kink
    return None


def kink_mask(kink: Kink, operands: list[np.ndarray], attrs: dict, same_operand: bool = False) -> np.ndarray:
    """Which elements sit on the kink: operand elements (point, and the tied maxima of a window
    tie), result elements (tie), or rows of the reduced axis, in the reduced shape with
    keepdims (axis tie)."""
    if kink.where == "window_tie":
        return _window_ties(operands[0], attrs)[1].any(axis=-2)
    if kink.where == "point":
        return np.isin(operands[0], kink.points_for(attrs))
    if kink.where == "tie":
        if same_operand:
            return np.zeros(np.broadcast_shapes(*(np.shape(o) for o in operands)), dtype=bool)
        a, b = np.broadcast_arrays(*operands)
        return a == b
    (a,) = operands
    top = _extreme(kink, a, attrs)
    return np.sum(a == top, axis=attrs.get("axis"), keepdims=True) >= 2


def _extreme(kink: Kink, a: np.ndarray, attrs: dict) -> np.ndarray:
    """The maximum along the reduced axis (the minimum, for a kink of the lowest), with keepdims."""
    return (np.min if kink.lowest else np.max)(a, axis=attrs.get("axis"), keepdims=True)


def _window_ties(a: np.ndarray, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """For the windows of a max_pool1d (kernel, stride: `attrs`) over `a` of shape (N, C, W):
    which elements are each window's maxima, and those of the windows with a tie, each as a
    mask of shape (N, C, windows, W)."""
    kernel = attrs["kernel"]
    stride = attrs["stride"] or kernel
    count = (a.shape[-1] - kernel) // stride + 1
    inside = np.zeros((count, a.shape[-1]), dtype=bool)
    for window in range(count):
        inside[window, window * stride : window * stride + kernel] = True
    values = np.where(inside, a[..., None, :], -np.inf)
    maxima = inside & (values == np.max(values, axis=-1, keepdims=True))
    tied = maxima & (np.sum(maxima, axis=-1, keepdims=True) >= 2)
    return maxima, tied


def _judge_window_tie(a: np.ndarray, g: np.ndarray, vjp: np.ndarray, attrs: dict, tolerance: float) -> KinkAnswer:
    maxima, tied = _window_ties(a, attrs)
    scale = float(np.max(np.abs(g), initial=0.0))
    untied = maxima & ~tied
    rest = vjp - np.sum(np.where(untied, g[..., None], 0.0), axis=-2)  # what the tied windows got
    on_ties = tied.any(axis=-2)
    if np.any(np.abs(rest[~on_ties]) > tolerance * scale):
        return KinkAnswer("a part off the maximum", False, "an element off a window's tied maxima gets a part")
    totals, shares, evenly = [], [], []
    for row in np.ndindex(a.shape[:-1]):
        windows = [w for w in range(tied.shape[-2]) if tied[(*row, w)].any()]
        while windows:  # one group of tied windows whose maxima overlap at a time
            group = [windows.pop(0)]
            elements = tied[(*row, group[0])].copy()
            joining = [w for w in windows if (tied[(*row, w)] & elements).any()]
            while joining:
                for w in joining:
                    group.append(w)
                    windows.remove(w)
                    elements |= tied[(*row, w)]
                joining = [w for w in windows if (tied[(*row, w)] & elements).any()]
            owed = float(sum(g[(*row, w)] for w in group))
            if abs(owed) > tolerance * scale:
                totals.append(float(np.sum(rest[row][elements])) / owed)
                if len(group) == 1:
                    parts = list(rest[row][elements] / owed)
                    shares, evenly = shares + parts, evenly + [1 / len(parts)] * len(parts)
    shares_array = np.asarray(shares)
    if not shares:
        summary = "parts shared by windows" if totals else "unseen"
    elif np.all(np.abs(shares_array - np.asarray(evenly)) <= tolerance):
        summary = "split evenly"
    elif np.all((np.abs(shares_array) <= tolerance) | (np.abs(shares_array - 1) <= tolerance)):
        summary = "one takes all"
    else:
        summary = f"shares {_describe(shares_array, tolerance)}"
    if np.any(np.abs(np.asarray(totals) - 1) > tolerance):
        return KinkAnswer(
            summary, False, f"the tie's parts add up to {_describe(np.asarray(totals), tolerance)} of the cotangent"
        )
    if np.any(shares_array < -tolerance):
        return KinkAnswer(summary, False, "a tie's part is negative: not a convex share")
    return KinkAnswer(summary, True)


def kink_region(kink: Kink, operands: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    """Per operand slot, the elements whose VJP the kink decides (the rest must match the references)."""
    mask = kink_mask(kink, operands, attrs)
    if kink.where in ("point", "window_tie"):
        return [mask]
    if kink.where == "tie":
        return [mask, mask]
    return [np.broadcast_to(mask, operands[0].shape)]


def _describe(values: np.ndarray, tolerance: float) -> str:
    if values.size == 0:
        return "unseen"
    low, high = float(np.min(values)), float(np.max(values))
    # + 0.0: a share of -0.0 reads as 0
    return f"{(low + high) / 2 + 0.0:.3g}" if high - low <= tolerance else f"{low + 0.0:.3g}..{high + 0.0:.3g}"


def judge(
    kink: Kink, operands: list[np.ndarray], attrs: dict, cotangent: np.ndarray, vjps: list, tolerance: float
) -> KinkAnswer:
    """A backend's answer (`vjps`, one per operand slot) at `kink`, given the node's operands and
    its cotangent. `tolerance` is relative to the cotangent (shares are compared to 1 within it)."""
    g = np.asarray(cotangent, dtype=np.float64)
    vjps = [np.asarray(v, dtype=np.float64) for v in vjps]
    scale = float(np.max(np.abs(g), initial=0.0))
    if kink.where == "window_tie":
        return _judge_window_tie(np.asarray(operands[0], dtype=np.float64), g, vjps[0], attrs, tolerance)
    if kink.where == "point":
        seen = kink_mask(kink, operands, attrs) & (np.abs(g) > tolerance * scale)
        derivative = vjps[0][seen] / g[seen]
        low, high = kink.derivative or (-np.inf, np.inf)
        outside = derivative[(derivative < low - tolerance) | (derivative > high + tolerance)]
        detail = f"local derivative {outside[0]:.3g} at the kink, outside [{low:g}, {high:g}]" if outside.size else ""
        return KinkAnswer(_describe(derivative, tolerance), not outside.size, detail)
    if kink.where == "tie":
        seen = kink_mask(kink, operands, attrs) & (np.abs(g) > tolerance * scale)
        shares_a, shares_b = vjps[0][seen] / g[seen], vjps[1][seen] / g[seen]
        total = shares_a + shares_b
        summary = f"{_describe(shares_a, tolerance)} / {_describe(shares_b, tolerance)}"
        if np.any(np.abs(total - 1) > tolerance):
            return KinkAnswer(
                summary, False, f"the tie's parts add up to {_describe(total, tolerance)} of the cotangent"
            )
        if np.any((shares_a < -tolerance) | (shares_b < -tolerance)):
            return KinkAnswer(summary, False, "a tie's part is negative: not a convex share")
        return KinkAnswer(summary, True)
    (a,) = operands
    gk = _expand_reduced(g, a, attrs)
    top = _extreme(kink, a, attrs)
    rows = kink_mask(kink, operands, attrs) & (np.abs(gk) > tolerance * scale)
    winners = (a == top) & rows
    shares = np.where(winners, vjps[0] / np.where(gk == 0, 1, gk), 0.0)
    axis = attrs.get("axis")
    totals = np.sum(shares, axis=axis, keepdims=True)[rows]
    tied = np.broadcast_to(np.sum(winners, axis=axis, keepdims=True), a.shape)[winners]  # maxima in each one's row
    losers = np.broadcast_to(rows, a.shape) & ~winners
    if np.any(np.abs(vjps[0][losers]) > tolerance * scale):
        extreme = "minimum" if kink.lowest else "maximum"
        return KinkAnswer(f"a part off the {extreme}", False, f"an element off the tied {extreme} gets a part")
    seen_shares = shares[winners]
    if np.all(np.abs(seen_shares - 1 / np.maximum(tied, 1)) <= tolerance):
        summary = "split evenly"
    elif np.all((np.abs(seen_shares) <= tolerance) | (np.abs(seen_shares - 1) <= tolerance)):
        summary = "one takes all"
    else:
        summary = f"shares {_describe(seen_shares, tolerance)}"
    if np.any(np.abs(totals - 1) > tolerance):
        return KinkAnswer(summary, False, f"the tie's parts add up to {_describe(totals, tolerance)} of the cotangent")
    if np.any(seen_shares < -tolerance):
        return KinkAnswer(summary, False, "a tie's part is negative: not a convex share")
    return KinkAnswer(summary, True)


def case_kinks(graph: dict, values: dict[str, np.ndarray]) -> list[tuple[str, Kink]]:
    """(node, kink) for every node of `graph` whose operands, in `values` (every node's value),
    sit on a kink of its op."""
    found = []
    for node in graph["nodes"]:
        op = OPS.get(node["op"])
        if op is None or not op.kinks:
            continue
        operands = [np.asarray(values[name]) for name in node["inputs"]]
        same = len(set(node["inputs"])) < len(node["inputs"])
        kink = kink_at(op, operands, op.with_defaults(node.get("attrs")), same)
        if kink is not None:
            found.append((node["name"], kink))
    return found
