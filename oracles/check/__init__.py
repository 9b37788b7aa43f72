"""Checking a case: the backends as one object and `check_case` (`core.py`), and the error
model, comparison and blame (`compare.py`)."""

from .compare import RTOL, Check, Evaluation, Finding, NumericResult, Verdict, compare
from .core import (
    MODES,
    Backends,
    CaseResult,
    CheckMode,
    answer_again,
    check_case,
    check_in_mode,
    evaluate,
    load_backends,
)

__all__ = [
    "MODES",
    "RTOL",
    "Backends",
    "CaseResult",
    "Check",
    "CheckMode",
    "Evaluation",
    "Finding",
    "NumericResult",
    "Verdict",
    "answer_again",
    "check_case",
    "check_in_mode",
    "compare",
    "evaluate",
    "load_backends",
]
