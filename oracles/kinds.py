"""The kinds of finding, each declared once with everything the harness does with it.

`compare` finds value, gradient, nan-inf, crash, timeout, shape, dtype and references-disagree,
and in forward mode and second order (check/modes.py) jvp, hvp and mode-mismatch;
triage sharpens a wrong value or gradient to the kind of the first wrong local rule, or to
composition; kink mode adds convention and reference-conventions; and an engine whose answer
to a failing case changes when the case is asked again is nondeterministic. What follows from a
kind (the exit status, shrinking, triage, the order in which a culprit is named, where the
report lists and shows it) is read from its `Rule` here, never from its spelling.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

WHAT_TO_FIX, CONVENTIONS = "what to fix", "conventions at kinks"  # report.md's sections of groups


@dataclass(frozen=True)
class Rule:
    discrepancy: bool = True  # a finding of this kind makes the audit fail (exit status 1)
    shrunk: bool = True  # its failing graphs are shrunk to a minimal case
    sharpened: bool = False  # triage replaces it by the wrong local rule's kind, or composition
    # Among several wrong nodes of one case, the culprit is the one of the lowest rank: a wrong
    # forward poisons everything after it (0), a wrong rule comes next (1), a convention last (2).
    culprit_rank: int = 1
    judged_at_kinks: bool = False  # a local verdict of this kind is judged again at a kink (ops/kinks.py)
    located: bool = True  # triage may name the op at fault (a nondeterministic engine has none)
    why_not_shrunk: str = ""  # for a kind that is not shrunk: why, as the report says it
    listed_in: str = "discrepancies"  # report.json's list for it: discrepancies, or reference_conventions
    shown_under: str = WHAT_TO_FIX  # report.md's section for its groups: WHAT_TO_FIX or CONVENTIONS


class Kind(str, enum.Enum):
    """A finding's kind. Its value is its name in reports, JSON and the campaign store."""

    VALUE = "value"  # a wrong output value
    GRADIENT = "gradient"  # a wrong vector-Jacobian product
    COMPOSITION = "composition"  # every local rule is right, the whole graph is not (fan-out, ordering)
    CONVENTION = "convention"  # at a kink, a valid answer that no reference gives
    NAN_INF = "nan-inf"  # NaN or Inf where the others are finite
    CRASH = "crash"  # the backend raised, or its process died
    TIMEOUT = "timeout"  # the engine took longer than the time limit
    NONDETERMINISTIC = "nondeterministic"  # the engine's answers changed between identical calls
    SHAPE = "shape"  # an answer of the wrong shape, or not an array of real numbers
    DTYPE = "dtype"  # an answer in another dtype than the case's
    REFERENCES_DISAGREE = "references-disagree"  # the references among themselves
    REFERENCE_CONVENTIONS = "reference-conventions"  # ... only in their valid conventions at kinks
    JVP = "jvp"  # a wrong Jacobian-vector product (forward mode)
    HVP = "hvp"  # a wrong Hessian-vector product (second order)
    MODE_MISMATCH = "mode-mismatch"  # the engine's own modes disagree: forward with reverse, or H not symmetric

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def rule(self) -> Rule:
        return RULES[self]


RULES: dict[Kind, Rule] = {
    Kind.VALUE: Rule(sharpened=True, culprit_rank=0),
    Kind.GRADIENT: Rule(sharpened=True, judged_at_kinks=True),
    Kind.COMPOSITION: Rule(),
    Kind.JVP: Rule(sharpened=True),
    Kind.HVP: Rule(sharpened=True),
    Kind.MODE_MISMATCH: Rule(sharpened=True),
    Kind.CONVENTION: Rule(culprit_rank=2, shown_under=CONVENTIONS),
    Kind.NAN_INF: Rule(),
    Kind.CRASH: Rule(),
    # A hang says nothing about the case's size, and shrinking it would wait out the time
    # limit once per candidate.
    Kind.TIMEOUT: Rule(shrunk=False, why_not_shrunk="each candidate would wait out the time limit"),
    # Answers that change between identical calls say nothing about an op, and a shrink of
    # them would keep or drop candidates by chance.
    Kind.NONDETERMINISTIC: Rule(
        shrunk=False, located=False, why_not_shrunk="a smaller case would fail or pass by chance"
    ),
    Kind.SHAPE: Rule(),
    Kind.DTYPE: Rule(),
    Kind.REFERENCES_DISAGREE: Rule(),
    # References that disagree only in their valid conventions at kinks blame nobody: shown
    # with the conventions, never counted, never shrunk.
    Kind.REFERENCE_CONVENTIONS: Rule(
        discrepancy=False, shrunk=False, listed_in="reference_conventions", shown_under=CONVENTIONS
    ),
}
