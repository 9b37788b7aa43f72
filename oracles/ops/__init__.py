"""The op table (`OPS`, in `table.py`) and what an entry is (`entry.py`)."""

from __future__ import annotations

import json

from .entry import MARGIN, REAL, Domain, Kink, Op
from .planning import PlanContext, Planner, Sample, ShapeError
from .table import OPS

__all__ = [
    "MARGIN",
    "OPS",
    "REAL",
    "Domain",
    "Kink",
    "Op",
    "PlanContext",
    "Planner",
    "Sample",
    "ShapeError",
    "op_table_markdown",
]


def _domain_text(op: Op) -> str:
    if op.domains is None:
        text = "real"
    elif len(op.domains) == 1:
        text = op.domains[0].describe()
    else:
        text = "; ".join(f"operand {slot + 1}: {domain.describe()}" for slot, domain in enumerate(op.domains))
    if op.no_ties == "operands":
        text += "; operands apart (no ties)"
    elif op.no_ties == "axis":
        text += "; no ties along the axis"
    elif op.no_ties == "axis_min":
        text += "; no ties of minima along the axis"
    elif op.no_ties == "window":
        text += "; no ties within a window"
    if op.singular == "zero_spread":
        text += "; each reduced slice has a spread (std is not differentiable without one)"
    elif op.singular == "zero_vector":
        text += "; no reduced slice is all zeros (norm is not differentiable there)"
    return text


def op_table_markdown(support: dict[str, dict[str, str | None]] | None = None) -> str:
    """The op table as Markdown, for the docs and `autodiff-audit ops`.

    `support` maps backend name -> {op name: None if supported, else the reason}.
    """
    backends = sorted(support or {})
    header = ["op", "arity", "meaning", "attrs (default)", "broadcasts", "domain", "valid at a kink", *backends]
    rows = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for op in OPS.values():
        attrs = ", ".join(f"`{k}`: {json.dumps(v)}" for k, v in op.attrs.items()) or "none"
        domain = _domain_text(op) + (f"; {op.notes}" if op.notes else "")
        kinks = "; ".join(kink.describe() for kink in op.kinks) or "-"
        arity = f"{op.arity} to {op.max_arity}" if op.max_arity else str(op.arity)
        cells = [f"`{op.name}`", arity, op.meaning, attrs, "yes" if op.broadcasts else "no", domain, kinks]
        for backend in backends:
            reason = support[backend].get(op.name, "not declared")  # type: ignore[index]
            cells.append("yes" if reason is None else f"no ({reason})")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
