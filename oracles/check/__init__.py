"""Checking a case: the backends as one object and `check_case` (`core.py`), and the error
model, comparison and blame (`compare.py`)."""

from .compare import RTOL, Check, Evaluation, Finding, NumericResult, Verdict, compare
from .core import Backends, CaseResult, check_case, describe_error, load_backends

__all__ = [
    "RTOL",
    "Backends",
    "CaseResult",
    "Check",
    "Evaluation",
    "Finding",
    "NumericResult",
    "Verdict",
    "check_case",
    "compare",
    "describe_error",
    "load_backends",
]
