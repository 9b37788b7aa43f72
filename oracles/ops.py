"""THE op table: every op of the graph format, declared once.

An entry gives the op's name (as in JSON, code and docs), arity, attrs with defaults, the
input domain the generator draws from, whether it broadcasts, its shape rule and a
plain-numpy reference of its forward. The generator, the validator, every oracle's
mapping, the numeric oracle and the docs table all derive from `OPS`; a test fails if an
op here lacks a mapping in any backend.

Adding an op = one entry here + one line per oracle mapping + the engine's node class.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


class ShapeError(ValueError):
    """Operand shapes an op cannot take. The message says why, without a location."""


def _broadcast(a: tuple, b: tuple, attrs: dict) -> tuple:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def _same(a: tuple, attrs: dict) -> tuple:
    return a


def _reduce_sum_shape(a: tuple, attrs: dict) -> tuple:
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    if axis is None:
        return (1,) * len(a) if keepdims else ()
    if not -len(a) <= axis < len(a):
        raise ShapeError(f"axis {axis} is out of range for shape {list(a)}")
    axis %= len(a)
    return a[:axis] + ((1,) if keepdims else ()) + a[axis + 1 :]


def _dot_shape(a: tuple, b: tuple, attrs: dict) -> tuple:
    if len(a) not in (1, 2) or len(b) not in (1, 2):
        raise ShapeError(f"dot takes 1-D or 2-D operands, got shapes {list(a)} and {list(b)}")
    if a[-1] != b[0]:
        raise ShapeError(f"shapes {list(a)} and {list(b)} do not fit a @ b ({a[-1]} != {b[0]})")
    return a[:-1] + b[1:]


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-a)) for a >= 0, exp(a) / (1 + exp(a)) for a < 0: no exponent is positive.
    return np.exp(np.minimum(a, 0)) / (1 + np.exp(-np.abs(a)))


def _check_power(attrs: dict) -> str | None:
    exponent = attrs["exponent"]
    if isinstance(exponent, bool) or not isinstance(exponent, int):
        return f"exponent must be an integer, got {exponent!r}"
    return None


def _check_reduce_sum(attrs: dict) -> str | None:
    axis, keepdims = attrs["axis"], attrs["keepdims"]
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, int)):
        return f"axis must be null or an integer, got {axis!r}"
    if not isinstance(keepdims, bool):
        return f"keepdims must be true or false, got {keepdims!r}"
    return None


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    meaning: str
    shape: Callable[..., tuple]  # (*operand shapes, attrs) -> result shape, or ShapeError
    forward: Callable[..., np.ndarray]  # (*operands, attrs) -> value, plain numpy
    attrs: dict = field(default_factory=dict)  # name -> default
    check_attrs: Callable[[dict], str | None] = lambda attrs: None  # -> a problem, or None
    broadcasts: bool = False
    domain: str = "real"  # what the generator draws operands from
    notes: str = ""

    def with_defaults(self, attrs: dict | None) -> dict:
        return {**self.attrs, **(attrs or {})}


OPS: dict[str, Op] = {
    op.name: op
    for op in [
        Op("add", 2, "elementwise `a + b`", _broadcast, lambda a, b, _: a + b, broadcasts=True),
        Op("subtract", 2, "elementwise `a - b`", _broadcast, lambda a, b, _: a - b, broadcasts=True),
        Op("mult", 2, "elementwise `a * b`", _broadcast, lambda a, b, _: a * b, broadcasts=True),
        Op(
            "power",
            1,
            "elementwise `a ** exponent`",
            _same,
            lambda a, attrs: a ** attrs["exponent"],
            attrs={"exponent": 2},
            check_attrs=_check_power,
            domain="real; nonzero when exponent < 0",
        ),
        Op(
            "reduce_sum",
            1,
            "sum of elements, all or along one axis",
            _reduce_sum_shape,
            lambda a, attrs: np.sum(a, axis=attrs["axis"], keepdims=attrs["keepdims"]),
            attrs={"axis": None, "keepdims": False},
            check_attrs=_check_reduce_sum,
        ),
        Op("dot", 2, "numpy `a @ b` for 1-D and 2-D operands", _dot_shape, lambda a, b, _: a @ b),
        Op("sigmoid", 1, "`1 / (1 + exp(-a))`", _same, lambda a, _: _sigmoid(a)),
    ]
}


def op_table_markdown(support: dict[str, dict[str, str | None]] | None = None) -> str:
    """The op table as Markdown, for the docs and `autodiff-audit ops`.

    `support` maps backend name -> {op name: None if supported, else the reason}.
    """
    backends = sorted(support or {})
    header = ["op", "arity", "meaning", "attrs (default)", "broadcasts", "domain", *backends]
    rows = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for op in OPS.values():
        attrs = ", ".join(f"`{k}`: {json.dumps(v)}" for k, v in op.attrs.items()) or "none"
        cells = [f"`{op.name}`", str(op.arity), op.meaning, attrs, "yes" if op.broadcasts else "no", op.domain]
        for backend in backends:
            reason = support[backend].get(op.name, "not declared")  # type: ignore[index]
            cells.append("yes" if reason is None else f"no ({reason})")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
