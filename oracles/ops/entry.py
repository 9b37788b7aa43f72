"""What an op table entry is: everything any consumer needs to know about one op, as data.

The generator draws operands from an entry's `domains` and plans its operands with its
`planner`; the validator checks its `attrs` and `shape`; the numeric oracle and the
conditioning run its numpy `forward`; coverage reads its `features`; the table-driven tests
run its `samples`; kink mode and triage read its `kinks`. Nothing outside the table, the
backends' maps and the engine spells an op's name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .planning import Planner, Sample
from .rules import default_planner, default_samples

# A naive exp(a) overflows past these; operands beyond them (a `Domain`'s `far`) keep the true
# result finite, so only a stable implementation survives them.
NAIVE_EXP_OVERFLOW = {"float32": 88.7, "float64": 709.8}
FAR_FROM = 40.0  # "far out" starts here: exp(-40) = 4e-18 is below float64's eps already

# How far a value is kept from a point where an op is not differentiable or not defined, in
# float64 and float32 alike. Finite differences step about 6e-6 max(1, |x|) along their
# direction; an intermediate this far from a kink does not cross it.
MARGIN = 0.05


@dataclass(frozen=True)
class Domain:
    """The values one operand of an op takes: what the generator draws a fresh input from,
    and what it checks a computed operand against before it builds on it.

    - `positive`: a > 0, at least `margin` from 0 (log, sqrt, the base of pow);
    - `away_from`: points every element keeps at least `margin` from (a kink, a pole);
    - `bound`: |a| <= bound[dtype], where the op's result or gradient would lose its digits;
    - `minimum`: a >= minimum (log1p: a >= -0.9, where 1/(1 + a) stays modest);
    - `far`: |a| <= far[dtype]; a fresh input is, part of the time, moved far out on one side:
      past where a naive `exp` overflows (88.7 in float32, 709.8 in float64) half of those
      times. The true result stays finite, and stability bugs hide there (sigmoid's gradient
      as exp(-a) / (1 + exp(-a)) ** 2 is inf / inf below -709.8);
    - `tiny`: a fresh input is, part of the time, scaled down to about 1e-9, where `log(1 + a)`
      and `exp(a) - 1` lose every digit that `log1p` and `expm1` keep;
    - `away_from_attrs`: attrs whose values are points to keep away from too (clip's `lo` and
      `hi`): `resolved(attrs)` adds them to `away_from`.
    """

    positive: bool = False
    away_from: tuple[float, ...] = ()
    bound: Mapping[str, float] | None = None
    margin: float = MARGIN
    minimum: float | None = None
    far: Mapping[str, float] | None = None
    tiny: bool = False
    away_from_attrs: tuple[str, ...] = ()

    def resolved(self, attrs: Mapping) -> Domain:
        """This domain for a node with `attrs`: the points its attrs name added to `away_from`."""
        if not self.away_from_attrs:
            return self
        points = tuple(float(attrs[name]) for name in self.away_from_attrs)
        return dataclasses.replace(self, away_from=self.away_from + points, away_from_attrs=())

    def holds(self, value: np.ndarray, dtype: str) -> bool:
        if self.positive and not np.all(value >= self.margin):
            return False
        if self.minimum is not None and not np.all(value >= self.minimum):
            return False
        for point in self.away_from:
            if not np.all(np.abs(value - point) >= self.margin):
                return False
        if self.far is not None and not np.all(np.abs(value) <= self.far[dtype]):
            return False
        return self.bound is None or bool(np.all(np.abs(value) <= self.bound[dtype]))

    def fit(self, value: np.ndarray, dtype: str) -> np.ndarray:
        """`value` moved into the domain by a fixed rule (no resampling): folded to positive,
        pushed off the points it must avoid, and clipped to the bound."""
        value = np.array(value, dtype=np.float64)
        if self.positive:
            value = self.margin + np.abs(value)
        if self.minimum is not None:  # reflected up, off the minimum
            value = np.where(value < self.minimum, 2 * self.minimum - value, value)
        for point in self.away_from:
            near = np.abs(value - point) < self.margin
            # Push to the side the value is on (up, if it sits exactly on the point).
            value = np.where(near, point + np.where(value < point, -self.margin, self.margin), value)
        if self.bound is not None:
            bound = self.bound[dtype]
            value = np.clip(value, -bound, bound)
        return value

    def describe(self) -> str:
        parts = []
        if self.positive:
            parts.append(f"a > 0 (at least {self.margin} from 0)")
        if self.minimum is not None:
            parts.append(f"a >= {self.minimum:g}")
        parts += [f"at least {self.margin} from {point:g}" for point in self.away_from]
        parts += [f"at least {self.margin} from `{name}`" for name in self.away_from_attrs]
        if self.bound is not None:
            parts.append("abs(a) <= " + ", ".join(f"{bound:g} ({dtype})" for dtype, bound in self.bound.items()))
        if self.far is not None:
            parts.append("sometimes far out, up to " + ", ".join(f"+-{s:g} ({dtype})" for dtype, s in self.far.items()))
        if self.tiny:
            parts.append("sometimes tiny (about 1e-9)")
        return "; ".join(parts) or "real"


REAL = Domain()


@dataclass(frozen=True)
class Kink:
    """A point where the op is not differentiable, and what a valid answer there is.

    `where` is "point" (an operand equal to one of `points`, or to the value of one of the
    attrs `point_attrs`: relu and abs at 0, clip at `lo` and `hi`), "tie" (two different
    operands equal: maximum, minimum), "axis_tie" (equal maxima along the reduced axis:
    reduce_max; equal minima when `lowest`: reduce_min) or "window_tie" (equal maxima within
    a window: max_pool1d). `derivative` is the interval a valid
    local derivative lies in at a point; at a tie, a valid answer gives each tied element a
    convex share of the cotangent, the shares adding up to it.
    """

    where: str
    label: str  # how reports name it: "relu'(0)", "maximum tie"
    points: tuple[float, ...] = ()
    derivative: tuple[float, float] | None = None
    point_attrs: tuple[str, ...] = ()
    lowest: bool = False

    def points_for(self, attrs: Mapping) -> tuple[float, ...]:
        """The points of a point kink at a node with `attrs`."""
        return self.points + tuple(float(attrs[name]) for name in self.point_attrs)

    def describe(self) -> str:
        if self.where == "point":
            low, high = self.derivative or (float("-inf"), float("inf"))
            return f"{self.label} in [{low:g}, {high:g}]"
        extremes = "minima" if self.lowest else "maxima"
        shares = "each side's part" if self.where == "tie" else f"the tied {extremes}'s parts"
        if self.where == "window_tie":
            return f"at a tie within a window, {shares}: convex shares adding up to the window's cotangent"
        return f"at a tie, {shares}: convex shares adding up to the cotangent"


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    meaning: str
    shape: Callable[..., tuple]  # (*operand shapes, attrs) -> result shape, or ShapeError
    forward: Callable[..., np.ndarray]  # (*operands, attrs) -> value, plain numpy
    attrs: Mapping = field(default_factory=dict)  # name -> default
    check_attrs: Callable[[dict], str | None] = lambda attrs: None  # -> a problem, or None
    broadcasts: bool = False
    domains: tuple[Domain, ...] | None = None  # one per operand; None: every operand is real
    # "operands": different operands must not (nearly) tie elementwise; "axis": no two
    # maxima (nearly) tie along the reduced axis; "axis_min": no two minima; "window": no two
    # maxima tie within a window of the last axis (max_pool1d's `kernel` and `stride`). Each
    # is a kink the default audit avoids.
    no_ties: str | None = None
    # Where the op is not differentiable, for every operand value: "zero_spread" (std: a
    # reduced slice whose elements are all equal) or "zero_vector" (norm: a reduced slice of
    # zeros). Every reduced slice keeps at least `margin` of spread, or of norm, from there.
    singular: str | None = None
    # The op subtracts each reduced slice's mean (var, std): x - mean rounds relative to |x| while
    # the result and gradient are of the size of the spread. In float32 the generator keeps each
    # slice's spread within CENTERING_CONDITION of its magnitude (generate/values.py).
    centers: bool = False
    # A fresh operand gets exact zeros in its slices along `axis` (none, one, or several):
    # where a product's `out / a` rule is wrong (reduce_prod, cumprod).
    zeros_in_slices: bool = False
    # The most operands the op takes, for an op of variable arity (concatenate: `arity` 2 to
    # `max_arity` 4); None: exactly `arity`.
    max_arity: int | None = None
    # attrs -> smaller attrs to try when shrinking (fewer indices, a smaller mask), for an op
    # whose attrs hold data; each strictly smaller than `attrs`.
    smaller_attrs: Callable[[dict], list[dict]] = lambda attrs: []
    # (attrs, slot) -> the attrs of the node once operand `slot` is dropped, or None when it
    # cannot be (einsum drops the operand's term from its subscripts); for an op of variable
    # arity. The default keeps the attrs.
    without_operand: Callable[[dict, int], dict | None] = lambda attrs, slot: attrs
    # None: the default for its arity and broadcasting, filled in by __post_init__.
    planner: Planner = None  # type: ignore[assignment]
    # (operand shapes, attrs, operand values in float64) -> the graph features a node of this op has.
    features: Callable[[list[tuple], dict, list[np.ndarray]], set[str]] = lambda shapes, attrs, values: set()
    feature_names: tuple[str, ...] = ()  # every name `features` can return
    samples: tuple[Sample, ...] | None = None  # None: the default for its arity and broadcasting
    kinks: tuple[Kink, ...] = ()
    notes: str = ""

    def __post_init__(self):
        # The defaults for the op's arity and broadcasting, so an entry states only what is its own.
        if self.planner is None:
            object.__setattr__(self, "planner", default_planner(self.arity, self.broadcasts))
        if self.samples is None:
            object.__setattr__(self, "samples", default_samples(self.arity, self.broadcasts))
        if self.domains is not None and len(self.domains) != self.arity:
            raise ValueError(f"op {self.name!r}: {len(self.domains)} domains for {self.arity} operands")

    def with_defaults(self, attrs: Mapping | None) -> dict:
        return {**self.attrs, **(attrs or {})}

    @property
    def arities(self) -> range:
        """The numbers of operands the op takes."""
        return range(self.arity, (self.max_arity or self.arity) + 1)

    def domain(self, slot: int, attrs: Mapping | None = None) -> Domain:
        """The domain of operand `slot` (every operand past the last domain has the last one's),
        for a node with `attrs` when they are given."""
        domain = REAL if self.domains is None else self.domains[min(slot, len(self.domains) - 1)]
        return domain if attrs is None else domain.resolved(attrs)
