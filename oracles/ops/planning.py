"""What a planner is: how the generator makes an op's operands (`Planner`, asking a
`PlanContext`), the shapes the table-driven tests use (`Sample`), and `ShapeError`.

Apart from `entry.py`, so that the default planners (`rules.py`) and the entry that falls back
on them (`Op`) import it, and not each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class ShapeError(ValueError):
    """Operand shapes an op cannot take. The message says why, without a location."""


@dataclass(frozen=True)
class Sample:
    """Operand shapes and attrs for the table-driven tests; values come from the op's domains."""

    shapes: tuple[tuple[int, ...], ...]
    attrs: Mapping = field(default_factory=dict)

    def __str__(self) -> str:
        attrs = "".join(f",{k}={v}" for k, v in self.attrs.items())
        return "x".join(str(list(shape)) for shape in self.shapes).replace(" ", "") + attrs


class PlanContext(Protocol):
    """What a planner may ask of the generator: random choices and shapes within its limits."""

    max_rank: int
    max_dim: int

    def integer(self, lo: int, hi: int) -> int: ...

    def boolean(self, p: float) -> bool: ...

    def choice(self, options): ...

    def dim(self) -> int:
        """An axis size within the config (1 sometimes, for broadcasting and keepdims)."""

    def shape(self, rank: int) -> tuple[int, ...]: ...


@dataclass(frozen=True)
class Planner:
    """How the generator makes operands for a result of a given shape.

    `produces(shape, max_rank)`: whether the op can yield `shape` from operands of rank at
    most `max_rank` (and `can_produce`, with axes of at most `max_dim` too).
    `plan(context, shape)`: (operand shapes, attrs) for such a shape.
    """

    produces: Callable[[tuple, int], bool]
    plan: Callable[[PlanContext, tuple], tuple[list[tuple], dict]]
    # The least max_dim the op needs to yield `shape` (std's slices need 2 elements; a
    # max_pool1d's window of 2 needs a wider input than its result).
    least_dim: Callable[[tuple], int] = lambda shape: 1

    def can_produce(self, shape: tuple, max_rank: int, max_dim: int) -> bool:
        return self.produces(shape, max_rank) and self.least_dim(shape) <= max_dim
