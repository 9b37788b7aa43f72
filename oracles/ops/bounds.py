"""Rules of clip: its attr check, planner, features and samples. Nothing here names an op;
`table.py` uses them."""

from __future__ import annotations

import math

import numpy as np

from .entry import Domain
from .planning import PlanContext, Planner, Sample
from .rules import same_shape

# Bounds are multiples of 1/4, exact in float32 too, and a standard normal operand falls on
# both sides of each and between them.
CLIP_LOWS = (-1.5, -1.0, -0.75, -0.5, -0.25, 0.25)
CLIP_WIDTHS = (0.5, 1.0, 1.5, 2.0)


def _is_number(value) -> bool:
    """A finite number, as JSON gives it (an integer of any size, or a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float64
        return False


def check_clip(attrs: dict) -> str | None:
    lo, hi = attrs["lo"], attrs["hi"]
    for name, value in (("lo", lo), ("hi", hi)):
        if not _is_number(value):
            return f"{name} must be a finite number (clip needs both lo and hi), got {value!r}"
    if not lo < hi:
        return f"lo must be below hi, got lo={lo!r} and hi={hi!r}"
    return None


def _plan_clip(context: PlanContext, shape: tuple):
    lo = context.choice(CLIP_LOWS)
    return [shape], {"lo": lo, "hi": lo + context.choice(CLIP_WIDTHS)}


CLIP_PLANNER = Planner(lambda shape, max_rank: True, _plan_clip)
CLIP_FEATURES = ("clip_below_lo", "clip_between", "clip_above_hi")


def clip_features(shapes: list[tuple], attrs: dict, values: list) -> set[str]:
    a = np.asarray(values[0]) if values else np.zeros(0)
    found = set()
    if np.any(a < attrs["lo"]):
        found.add("clip_below_lo")
    if np.any((a > attrs["lo"]) & (a < attrs["hi"])):
        found.add("clip_between")
    if np.any(a > attrs["hi"]):
        found.add("clip_above_hi")
    return found


CLIP_SAMPLES = tuple(Sample(shapes, {"lo": -0.5, "hi": 0.75}) for shapes in (((),), ((3,),), ((2, 3),)))


# What the table's entry takes from here (besides name, arity and meaning).
CLIP = {
    "shape": same_shape,
    "forward": lambda a, attrs: np.clip(a, attrs["lo"], attrs["hi"]),
    "attrs": {"lo": None, "hi": None},
    "check_attrs": check_clip,
    "domains": (Domain(away_from_attrs=("lo", "hi")),),
    "planner": CLIP_PLANNER,
    "features": clip_features,
    "feature_names": CLIP_FEATURES,
    "samples": CLIP_SAMPLES,
    "notes": "`lo` < `hi`, both required",
}
